/**
 * Projections: the D1 history rows of what the ledger decided, written to the outbox in the
 * caller's `transactionSync`, so the row cannot be lost to a D1 failure after the commit.
 * `src/delivery/outbox.ts` writes them to D1 (idempotent on the row id) and the row leaves the
 * outbox only once D1 has accepted it.
 */
import type { PlanId } from "../../pricing";
import type { Buckets } from "../domain/rules";
import type {
  HistoryDetails,
  HistoryRow,
  OutboxItem,
  PurchaseProjection,
  RechargeView,
} from "../domain/types";

/**
 * An item written to the outbox in the caller's transaction, once per ref (a replay writes
 * nothing); returned for the caller's effects.
 */
export function writeOutbox<I extends OutboxItem & { ref: string }>(
  sql: SqlStorage,
  item: I,
  now: number,
): I {
  sql.exec(
    "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
    item.ref,
    JSON.stringify(item),
    now,
  );
  return item;
}

export function insertProjection(sql: SqlStorage, row: HistoryRow, now: number): OutboxItem {
  const item: OutboxItem = { type: "projection", ref: `history:${row.id}`, row };
  return writeOutbox(sql, item, now);
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * A grant's history row. An alarm-driven cycle's row is dated at the cycle's start; a paid
 * invoice's when its credits were added (the period start has only Stripe's one-second
 * resolution and could sort below rows of the same second).
 */
export function insertGrantHistory(
  sql: SqlStorage,
  accountId: string,
  input: { ref: string; source: "stripe" | "alarm"; startsAt?: number; history?: HistoryDetails },
  credits: number,
  now: number,
): OutboxItem {
  const h = input.history ?? {};
  return insertProjection(
    sql,
    {
      id: input.ref,
      account_id: accountId,
      type: "monthly_grant",
      credits,
      amount_cents: h.amountCents ?? 0,
      invoice_id: h.invoiceId ?? null,
      invoice_url: h.invoiceUrl ?? null,
      description: h.description ?? null,
      created_at: iso(input.source === "alarm" && input.startsAt ? input.startsAt : now),
    },
    now,
  );
}

/** An operator adjustment's history row: the customer sees why the balance changed. */
export function insertAdjustmentHistory(
  sql: SqlStorage,
  accountId: string,
  input: { ref: string; monthly: number; purchased: number; reason: string },
  now: number,
): OutboxItem {
  return insertProjection(
    sql,
    {
      id: input.ref,
      account_id: accountId,
      type: "adjustment",
      credits: input.monthly + input.purchased,
      amount_cents: 0,
      invoice_id: null,
      invoice_url: null,
      description: input.reason,
      created_at: iso(now),
    },
    now,
  );
}

/**
 * A recharge's new status for D1's purchase row and the customer's email, in the outbox of the
 * transaction that moved it (`nextRechargeStatus`): one item per status reached.
 */
export function insertPurchaseProjection(
  sql: SqlStorage,
  accountId: string,
  recharge: RechargeView,
  change: Pick<
    PurchaseProjection,
    "status" | "payment" | "code" | "message" | "action_url" | "balance_total"
  >,
  now: number,
): OutboxItem {
  const item: PurchaseProjection = {
    type: "purchase",
    ref: `purchase:${recharge.id}:${change.status}`,
    account_id: accountId,
    recharge_id: recharge.id,
    kind: recharge.kind,
    package: recharge.package,
    credits: recharge.credits,
    amount_cents: recharge.amountCents,
    created_at: iso(recharge.createdAt),
    ...change,
  };
  return writeOutbox(sql, item, now);
}

/**
 * The account's live balance for the operators' overview (D1 `account_balances`), written when
 * an entry or a checkpoint changed it: never by a request's debit, so between checkpoints (at
 * most `SETTLE_EVERY_MS` of traffic) D1 shows the balance before that traffic. The version is
 * the state row's counter, so D1 can keep the newest whatever order deliveries land in. The
 * purchased credits' value is what this account paid per purchased credit on average (its
 * succeeded purchases), never more than it paid in all.
 */
export function insertBalanceProjection(
  sql: SqlStorage,
  accountId: string,
  live: Buckets,
  now: number,
): OutboxItem {
  sql.exec("UPDATE state SET balance_version = balance_version + 1 WHERE id = 1");
  const { version } = sql
    .exec<{ version: number }>("SELECT balance_version AS version FROM state WHERE id = 1")
    .one();
  const paid = sql
    .exec<{ credits: number; cents: number }>(
      `SELECT COALESCE(SUM(credits), 0) AS credits, COALESCE(SUM(amount_cents), 0) AS cents
       FROM recharges WHERE status = 'succeeded'`,
    )
    .one();
  const value =
    paid.credits > 0
      ? Math.min(paid.cents, Math.round((live.purchased * paid.cents) / paid.credits))
      : 0;
  const item: OutboxItem = {
    type: "balance",
    ref: `balance:${version}`,
    balance: {
      account_id: accountId,
      monthly: live.monthly,
      purchased: live.purchased,
      purchased_value_cents: value,
      version,
      at: iso(now),
    },
  };
  return writeOutbox(sql, item, now);
}

/** The plan's change as an event for customers' webhooks, once per change (its ledger ref). */
export function insertPlanChangedEvent(
  sql: SqlStorage,
  accountId: string,
  change: { ref: string; from: PlanId; to: PlanId },
  now: number,
): OutboxItem {
  const item: OutboxItem = {
    type: "event",
    event: "plan.changed",
    ref: `plan.changed:${change.ref}`,
    account_id: accountId,
    from: change.from,
    to: change.to,
  };
  return writeOutbox(sql, item, now);
}
