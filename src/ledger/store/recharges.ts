/**
 * Recharges and the outbox, as the account's Durable Object keeps them. The synchronous
 * functions run inside the caller's `transactionSync`; delivering an outbox item is
 * `src/delivery/outbox.ts`, after the write that created its row has committed.
 *
 * New recharge flows (for example Stripe invoice states) add their storage steps here and
 * their RPC method to the "auto-recharge" section of `AccountLedger`.
 */
import {
  CURRENCY,
  DEFAULT_PACKAGE,
  isPackageId,
  PACKAGES,
  type PackageId,
  RECHARGE_THRESHOLD,
} from "../../pricing";
import { lowBalanceSituation } from "../domain/low-balance";
import { RechargeJob } from "../domain/recharge-job";
import { fitsSpendLimit, monthStart, nextMonthStart } from "../domain/rules";
import type {
  OutboxItem,
  RechargeKind,
  RechargeRow,
  RechargeStatus,
  RechargeView,
  StateRow,
} from "../domain/types";

const iso = (ms: number) => new Date(ms).toISOString();

export function rechargeView(r: RechargeRow): RechargeView {
  return {
    id: r.id,
    kind: r.kind,
    package: r.package,
    credits: r.credits,
    amountCents: r.amount_cents,
    status: r.status,
    createdAt: r.created_at,
  };
}

export function findRecharge(sql: SqlStorage, id: string): RechargeView | null {
  const row = sql.exec<RechargeRow>("SELECT * FROM recharges WHERE id = ?", id).toArray()[0];
  return row ? rechargeView(row) : null;
}

export function pendingRecharges(sql: SqlStorage): RechargeView[] {
  return sql
    .exec<RechargeRow>("SELECT * FROM recharges WHERE status = 'pending' ORDER BY created_at")
    .toArray()
    .map(rechargeView);
}

/**
 * Whether an auto-recharge is in flight: pending, or waiting for the customer to authenticate
 * (`requires_action`: its invoice is still payable, so a second one would mean two charges for
 * one low balance). At most one at a time (money rule 10). One indexed lookup
 * (`recharges_in_flight`, whose WHERE this query repeats word for word so SQLite uses it).
 */
export function hasPendingAutoRecharge(sql: SqlStorage): boolean {
  return (
    sql
      .exec(
        "SELECT 1 FROM recharges WHERE kind = 'auto_recharge' AND status IN ('pending', 'requires_action') LIMIT 1",
      )
      .toArray().length > 0
  );
}

/**
 * Purchases (auto-recharges and top-ups) waiting for the customer to authenticate the payment,
 * oldest first. While one waits, no top-up is started: the customer would pay twice for one
 * shortfall once they complete the first.
 */
export function awaitingAction(sql: SqlStorage): RechargeView[] {
  // The WHERE of `recharges_in_flight`, word for word, so SQLite reads that small index only.
  return sql
    .exec<RechargeRow>("SELECT * FROM recharges WHERE status IN ('pending', 'requires_action')")
    .toArray()
    .filter((r) => r.status === "requires_action")
    .sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : 1))
    .map(rechargeView);
}

/** Purchases started this calendar month that took or may take money: pending ones count. */
export function spentThisMonth(sql: SqlStorage, now: number): number {
  return sql
    .exec<{ cents: number }>(
      "SELECT COALESCE(SUM(amount_cents), 0) AS cents FROM recharges WHERE created_at >= ? AND status != 'failed'",
      monthStart(now),
    )
    .one().cents;
}

/** The recharge row and its outbox job, in the caller's transaction (money rules 5, 7). */
export function insertRecharge(
  sql: SqlStorage,
  s: StateRow,
  id: string,
  kind: RechargeKind,
  pkg: PackageId,
  now: number,
): OutboxItem {
  const p = PACKAGES[pkg];
  // Frozen now: every attempt of this recharge pays with the card on file at its creation.
  const paymentMethod = s.payment_method_id;
  sql.exec(
    "INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at, payment_method) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
    id,
    kind,
    pkg,
    p.credits,
    p.priceCents,
    now,
    paymentMethod,
  );
  const job: RechargeJob = {
    kind,
    recharge_id: id,
    account_id: s.account_id,
    package: pkg,
    credits: p.credits,
    amount_cents: p.priceCents,
    currency: CURRENCY,
    created_at: iso(now),
    payment_method: paymentMethod,
  };
  sql.exec(
    "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?)",
    id,
    JSON.stringify(job),
    now,
  );
  return { type: "recharge", job };
}

/**
 * A new auto-recharge (`decideRecharge` said start), in the caller's transaction: a pause of an
 * earlier month ended, the recharge row and its outbox job.
 */
export function startAutoRecharge(
  sql: SqlStorage,
  s: StateRow,
  pkg: PackageId,
  clearPause: boolean,
  now: number,
): OutboxItem {
  if (clearPause) sql.exec("UPDATE state SET paused_period = NULL WHERE id = 1");
  const id = `rch_${crypto.randomUUID().replaceAll("-", "")}`;
  return insertRecharge(sql, s, id, "auto_recharge", pkg, now);
}

/** The month's pause by the spending limit, with its one notice in the outbox (money rule 10). */
export function pauseForSpendLimit(sql: SqlStorage, s: StateRow, now: number, resumesAt: number) {
  const period = monthStart(now);
  sql.exec("UPDATE state SET paused_period = ? WHERE id = 1", period);
  const notice: OutboxItem = {
    type: "email",
    kind: "auto_recharge_paused",
    ref: `auto_recharge_paused:${s.account_id}:${iso(period).slice(0, 7)}`,
    account_id: s.account_id,
    limit_cents: s.spend_limit_cents ?? 0,
    resumes_at: iso(resumesAt),
  };
  sql.exec(
    "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
    notice.ref,
    JSON.stringify(notice),
    now,
  );
  return notice;
}

/**
 * The low-balance alert of one crossing, in the caller's transaction: disarmed (no second
 * email until the total has been above the level), and its email in the outbox, worded by what
 * auto-recharge will do at this moment. `s` carries the live buckets, after the change and
 * after any recharge the same change started.
 */
export function recordLowBalanceAlert(sql: SqlStorage, s: StateRow, now: number): OutboxItem {
  const pkg = isPackageId(s.auto_package) ? s.auto_package : DEFAULT_PACKAGE;
  const p = PACKAGES[pkg];
  const inFlight = s.auto_enabled === 1 && hasPendingAutoRecharge(sql);
  const lastFailed = s.last_failure_recharge_id
    ? findRecharge(sql, s.last_failure_recharge_id)
    : null;
  // Turned back on while an auto-recharge still waits for the customer: nothing is bought until
  // they authenticate, so the email asks for that (with the link), not "no action is needed".
  const awaiting =
    inFlight && lastFailed?.kind === "auto_recharge" && lastFailed.status === "requires_action";
  const situation = lowBalanceSituation({
    autoEnabled: s.auto_enabled === 1 && !awaiting,
    package: p,
    threshold: RECHARGE_THRESHOLD,
    pending: inFlight && !awaiting,
    pausedThisMonth: s.paused_period === monthStart(now),
    nextFits: fitsSpendLimit(spentThisMonth(sql, now), p.priceCents, s.spend_limit_cents),
    limitCents: s.spend_limit_cents,
    resumesAt: iso(nextMonthStart(now)),
    lastFailure:
      s.last_failure_at === null
        ? null
        : {
            kind: lastFailed?.kind ?? "auto_recharge",
            code: s.last_failure_code ?? "unknown",
            message: s.last_failure_message ?? "",
            actionUrl: s.last_failure_action_url,
          },
  });
  sql.exec("UPDATE state SET low_balance_armed = 0 WHERE id = 1");
  const notice: OutboxItem = {
    type: "email",
    kind: "low_balance",
    // One per crossing: a crossing happens once between two rises above the level.
    ref: `low_balance:${s.account_id}:${now}:${crypto.randomUUID().slice(0, 8)}`,
    account_id: s.account_id,
    level: s.low_balance_credits ?? 0,
    total: s.monthly + s.purchased,
    situation,
  };
  sql.exec(
    "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?)",
    notice.ref,
    JSON.stringify(notice),
    now,
  );
  return notice;
}

/**
 * A paid recharge: succeeded, and the account's last failure cleared, unless that names
 * another recharge still waiting for the customer (its payment link stays on the settings).
 */
export function markSucceeded(sql: SqlStorage, rechargeId: string, now: number): void {
  sql.exec(
    "UPDATE recharges SET status = 'succeeded', settled_at = ?, failure_code = NULL WHERE id = ?",
    now,
    rechargeId,
  );
  sql.exec(
    `UPDATE state SET last_failure_at = NULL, last_failure_code = NULL, last_failure_message = NULL,
       last_failure_action_url = NULL, last_failure_recharge_id = NULL
     WHERE id = 1 AND (last_failure_recharge_id IS NULL OR last_failure_recharge_id = ?
       OR NOT EXISTS (SELECT 1 FROM recharges
                       WHERE id = state.last_failure_recharge_id AND status = 'requires_action'))`,
    rechargeId,
  );
}

/**
 * A failed payment, or one waiting for the customer (`nextRechargeStatus` moved it `from` →
 * `to`), in the caller's transaction: no credits, auto-recharge off (money rule 6).
 */
export function recordPaymentProblem(
  sql: SqlStorage,
  input: {
    rechargeId: string;
    from: RechargeStatus;
    to: Extract<RechargeStatus, "failed" | "requires_action">;
    code: string;
    message: string;
    actionUrl: string | null;
    now: number;
  },
): void {
  const { rechargeId, to: status, code, now } = input;
  sql.exec(
    "UPDATE recharges SET status = ?, settled_at = ?, failure_code = ? WHERE id = ?",
    status,
    status === "failed" ? now : null,
    code,
    rechargeId,
  );
  if (input.from === "requires_action") {
    // Waiting for the customer, now failed (its invoice voided). Auto-recharge was turned off
    // when it started waiting; on now means the customer turned it back on, and only they
    // decide that (money rule 6), so it stays as it is. The last failure is rewritten only if
    // it still is this recharge (its link is dead now); a newer one stands.
    sql.exec(
      `UPDATE state SET last_failure_at = ?, last_failure_code = ?, last_failure_message = ?,
         last_failure_action_url = NULL WHERE id = 1 AND last_failure_recharge_id = ?`,
      now,
      code,
      input.message,
      rechargeId,
    );
    return;
  }
  sql.exec(
    `UPDATE state SET auto_enabled = 0, last_failure_at = ?, last_failure_code = ?,
       last_failure_message = ?, last_failure_action_url = ?, last_failure_recharge_id = ?
     WHERE id = 1`,
    now,
    code,
    input.message,
    status === "requires_action" ? input.actionUrl : null,
    rechargeId,
  );
}

export function outboxRows(sql: SqlStorage): OutboxItem[] {
  return sql
    .exec<{ id: string; body: string }>("SELECT id, body FROM outbox ORDER BY created_at")
    .toArray()
    .map((row) => outboxItemOf(JSON.parse(row.body)));
}

export function hasOutbox(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length > 0;
}

export function outboxId(item: OutboxItem): string {
  return item.type === "recharge" ? item.job.recharge_id : item.ref;
}

/** An outbox row's body: rows written before notices existed are bare recharge jobs. */
export function outboxItemOf(body: unknown): OutboxItem {
  const type = typeof body === "object" && body !== null ? (body as { type?: unknown }).type : null;
  if (
    type === "email" ||
    type === "projection" ||
    type === "purchase" ||
    type === "balance" ||
    type === "event"
  )
    return body as OutboxItem;
  return { type: "recharge", job: RechargeJob.parse(body) };
}
