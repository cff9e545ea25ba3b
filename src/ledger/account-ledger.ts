/**
 * AccountLedger: one Durable Object per account, the only writer of that account's balance.
 *
 * Storage: see `schema.ts` (tables, schema version). In memory, written through: the state row as
 * last read or written, and the open debits (gross debits of the minutes not settled yet), so
 * the live balance is `state − open` without a read. A restarted object rebuilds both from
 * storage: the state row (the checkpoint) plus the ring's minutes from `compacted_until` on.
 *
 * The hot path (`debit`) reads no row and writes one: the UPSERT of its minute's aggregate, in
 * the same synchronous transaction as the decision, so an acknowledged debit is durable (the
 * output gate holds the reply until the write is). Memory changes only after the commit.
 * Every other mutation is one `transactionSync` that reads the state row afresh, changes the
 * settled buckets by deltas with a ledger entry, and refreshes memory from the row after it.
 * Checkpoints (settling minutes into hours) run in the alarm, armed at most once per hour of
 * activity, never per request. Business outcomes are returned, not thrown.
 *
 * Where things go: a new mutation is a method in the section it belongs to (auto-recharge and
 * recharges, alerts, cycles, operators), shaped like `grantPurchased`: `this.mutate(() => …)`
 * around a pure decision (`domain/commands.ts`, given the facts it reads as getters) and the
 * storage steps that apply it (in `recharges.ts`, `entries.ts`). The RPC returns domain
 * values; the routes build the JSON (`accounts/ledger-json.ts`). Effects (outbox items to deliver,
 * alarms) are values: the transaction collects them in its `Effects` and returns them, and
 * `this.afterCommit(fx)` flushes them after the commit; no effect waits in a field.
 *
 * Low-balance alert (`low-balance.ts`): every mutation ends, in its own transaction, by
 * following the alert: armed and now at or below the level, it is disarmed and its email put
 * in the outbox (delivered by `afterCommit`); disarmed and now above the level, it is armed
 * again. The debit does the same from memory, so it reads and writes nothing more unless it is
 * the debit that crosses the level.
 */
import { DurableObject } from "cloudflare:workers";
import { deliverItem } from "../delivery/outbox";
import type { Bindings } from "../platform/env";
import { isPackageId, type PackageId, type PlanId } from "../pricing";
import {
  decideAdjust,
  decideAutoRecharge,
  decideGrantPurchased,
  decideLimits,
  decidePlanChange,
  decideRefund,
  decideTopUp,
  nextRechargeStatus,
} from "./domain/commands";
import { currentAlarmCycle, decideCycle, decideUpgrade } from "./domain/cycles";
import { decideDebit, decideRecharge, rateLimitOf } from "./domain/decisions";
import { addEffects, type Effects, noEffects } from "./domain/effects";
import { type AlertSettings, lowBalanceStep } from "./domain/low-balance";
import type { RateWindow } from "./domain/rate-window";
import { clockMarginMs, RecentDebits, unansweredDebitOutcome } from "./domain/recent-debits";
import {
  type BalanceView,
  type Buckets,
  DEFAULT_SPEND_LIMIT_CENTS,
  liveBalance,
  minuteOf,
  monthStart,
  nextMonthStart,
  withTotal,
} from "./domain/rules";
import type {
  AdjustResult,
  AuditResult,
  AutoRechargeState,
  DebitCharge,
  DebitResult,
  HistoryDetails,
  LedgerAccount,
  LimitsState,
  OutboxItem,
  RechargeView,
  RefundResult,
  SettingsResult,
  StateRow,
  SuspendResult,
  TopUpResult,
} from "./domain/types";
import {
  aggregateTotals,
  hadTrafficSince,
  openDebits,
  recordDebit,
  refundFromAggregate,
  settleMinutes,
} from "./store/aggregates";
import { appendEntry, entryDeltas, entryTotals, hasEntry } from "./store/entries";
import {
  insertAdjustmentHistory,
  insertBalanceProjection,
  insertGrantHistory,
} from "./store/projections";
import {
  awaitingAction,
  findRecharge,
  hasOutbox,
  hasPendingAutoRecharge,
  insertRecharge,
  markSucceeded,
  outboxId,
  outboxRows,
  pauseForSpendLimit,
  pendingRecharges,
  recordLowBalanceAlert,
  recordPaymentProblem,
  spentThisMonth,
  startAutoRecharge,
} from "./store/recharges";
import { insertRevokedKey, loadRevokedKeys } from "./store/revoked-keys";
import { ensureSchema } from "./store/schema";
import { insertInitialState, readStateRow, writeSuspension } from "./store/state";
import { largestPaidUpgrade, recordedUpgradeDelta, recordPaidUpgrade } from "./store/upgrades";
import { ringWindowStart, type UsageRowWithPeak, usageRows } from "./store/usage";

export type * from "./domain/types";
export { DEFAULT_SPEND_LIMIT_CENTS };

const OUTBOX_RETRY_MS = 5_000;
/** How often an active account's open minutes are settled (the checkpoint). */
export const SETTLE_EVERY_MS = 3_600_000;

const ZERO: BalanceView = { monthly: 0, purchased: 0, total: 0 };
const NONE: Buckets = { monthly: 0, purchased: 0 };

export class AccountLedger extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /** The alarm time we last set, so scheduling never pushes an earlier alarm later. */
  private alarmAt: number | null = null;
  /** The state row as stored (settled buckets); null until `init`. */
  private s: StateRow | null = null;
  /** Gross debits of the minutes from `s.compacted_until` on, as stored in the ring. */
  private open: Buckets = NONE;
  /** Revoked key ids, read once per object from `revoked_keys` (a handful per account). */
  private revoked: Set<string> | null = null;
  /** The account's request window, all keys together; memory only (see rate-window.ts). */
  private readonly rateWindow: RateWindow = { start: 0, count: 0 };
  /** This instance's committed debits, for a gateway that lost a reply (recent-debits.ts). */
  private readonly recent = new RecentDebits(Date.now());
  /** Set only by a test (`testSetClock`); null: the real clock. */
  private testClock: number | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ensureSchema(ctx.storage);
    this.reload();
    ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  // ---------------------------------------------------------------- memory

  /** Rebuilds memory from storage: the checkpoint (state row) and the open minutes after it. */
  private reload(): void {
    this.s = readStateRow(this.sql);
    this.open = this.s ? openDebits(this.sql, this.s.compacted_until) : NONE;
  }

  /** The state row read afresh, with the live buckets in place of the settled ones. */
  private current(): StateRow | null {
    this.s = readStateRow(this.sql);
    return this.s ? { ...this.s, ...liveBalance(this.s, this.open) } : null;
  }

  /**
   * One mutation: a synchronous transaction that ends by following the low-balance alert, and
   * memory refreshed from what it committed. `rearm: false` (a refund) never arms the alert.
   * Returns the result and the effects the transaction collected in `fx` (a rolled-back one
   * throws, and its effects are dropped with it); the caller flushes them (`afterCommit`).
   */
  private mutateFx<T>(
    fn: (fx: Effects) => T,
    alert: { rearm: boolean } = { rearm: true },
  ): { result: T; fx: Effects } {
    const fx = noEffects();
    try {
      const result = this.ctx.storage.transactionSync(() => {
        const before = this.s ? liveBalance(this.s, this.open) : null;
        const result = fn(fx);
        addEffects(fx, this.followLowBalance(this.now(), alert.rearm));
        // Not for a refund (the one mutation that does not re-arm): there is one per failed
        // upstream call, so it reaches D1 with the next change or checkpoint instead.
        if (alert.rearm) addEffects(fx, this.projectBalance(before, this.now()));
        return result;
      });
      return { result, fx };
    } finally {
      this.s = readStateRow(this.sql);
    }
  }

  /**
   * A mutation whose caller delivers nothing itself (none of them moves the balance down): its
   * alarms are set and its outbox items left to the alarm.
   */
  private mutate<T>(fn: (fx: Effects) => T, alert: { rearm: boolean } = { rearm: true }): T {
    const { result, fx } = this.mutateFx(fn, alert);
    this.leaveToAlarm(fx);
    return result;
  }

  /**
   * Inside the mutation's transaction, after its changes: the alert fires when armed and the
   * live total is at or below the level, and is armed again once the total is above it, by
   * whatever raised it except a refund. A refund gives back a request that never happened
   * (its upstream failed); if it re-armed, a client retrying against a failing upstream right
   * at the level would be emailed once per retry.
   */
  private followLowBalance(now: number, rearm: boolean): Effects {
    const fx = noEffects();
    const row = readStateRow(this.sql);
    if (!row) return fx;
    const s = { ...row, ...liveBalance(row, this.open) };
    const step = lowBalanceStep({
      level: s.low_balance_credits,
      armed: s.low_balance_armed === 1,
      total: s.monthly + s.purchased,
    });
    if (step === "arm" && rearm)
      this.sql.exec("UPDATE state SET low_balance_armed = 1 WHERE id = 1");
    else if (step === "alert") fx.deliver.push(recordLowBalanceAlert(this.sql, s, now));
    return fx;
  }

  /**
   * Inside the mutation's transaction: the balance projected to D1 for the operators' overview
   * when the mutation changed it (`before`: the live balance before it, null before `init`).
   */
  private projectBalance(before: Buckets | null, now: number): Effects {
    const fx = noEffects();
    const row = readStateRow(this.sql);
    if (!row) return fx;
    const live = liveBalance(row, this.open);
    // None for `init` (before is null): the account's creation writes its first row to D1
    // itself, so a new account costs no early alarm.
    if (!before || (before.monthly === live.monthly && before.purchased === live.purchased))
      return fx;
    fx.deliver.push(insertBalanceProjection(this.sql, row.account_id, live, now));
    return fx;
  }

  /** The time: the real clock, or the one a test set (`testSetClock`). */
  private now(): number {
    return this.testClock ?? Date.now();
  }

  /**
   * TEST-ONLY SEAM: production code never calls this. Moves this instance's clock (every
   * decision's "now") to `ms`, or back to the real clock with null, so a test can run a day of
   * traffic in seconds. Refused unless the binding `LEDGER_TEST_CLOCK` is "true", which only
   * vitest.config.ts sets. Memory only: a restarted object has the real clock again.
   */
  testSetClock(ms: number | null): void {
    if (this.env.LEDGER_TEST_CLOCK !== "true") throw new Error("testSetClock: tests only");
    this.testClock = ms;
  }

  // ---------------------------------------------------------------- reads

  private pendingAutoRecharge(): boolean {
    return hasPendingAutoRecharge(this.sql);
  }

  private autoRechargeOf(s: StateRow): AutoRechargeState {
    return {
      enabled: s.auto_enabled === 1,
      package: isPackageId(s.auto_package) ? s.auto_package : null,
      pending: this.pendingAutoRecharge(),
      pausedThisMonth: s.paused_period === monthStart(this.now()),
      lastFailure:
        s.last_failure_at === null
          ? null
          : {
              at: s.last_failure_at,
              code: s.last_failure_code,
              message: s.last_failure_message,
              actionUrl: s.last_failure_action_url,
              rechargeId: s.last_failure_recharge_id,
            },
    };
  }

  /**
   * The account as its ledger holds it, read in real time (domain values: the routes shape
   * the JSON, `accounts/ledger-json.ts`). Null until `init`.
   */
  snapshot(): LedgerAccount | null {
    const s = this.current();
    if (!s) return null;
    return {
      accountId: s.account_id,
      plan: s.plan,
      balance: withTotal(s),
      cycleStartedAt: s.cycle_started_at,
      cycleEndsAt: s.cycle_ends_at,
      hasPaymentMethod: s.has_payment_method === 1,
      autoRecharge: this.autoRechargeOf(s),
      limits: this.limitsOf(s, this.now()),
      rateLimitPerMinute: rateLimitOf(s),
      rateLimitOverride: s.rate_limit_override,
      lowBalanceCredits: s.low_balance_credits,
    };
  }

  private limitsOf(s: StateRow, now: number): LimitsState {
    return {
      spendLimitCents: s.spend_limit_cents,
      spentThisMonthCents: spentThisMonth(this.sql, now),
      periodEndsAt: nextMonthStart(now),
    };
  }

  /** The spending limit and what this month's purchases used of it. Null until `init`. */
  limits(): LimitsState | null {
    const s = this.current();
    return s ? this.limitsOf(s, this.now()) : null;
  }

  balance(): BalanceView {
    const s = this.current();
    return s ? withTotal(s) : ZERO;
  }

  autoRecharge(): AutoRechargeState | null {
    const s = this.current();
    return s ? this.autoRechargeOf(s) : null;
  }

  recharge(id: string): RechargeView | null {
    return findRecharge(this.sql, id);
  }

  /**
   * Replays the ledger (every entry, less the gross debits of every aggregate that counts) and
   * compares it with the live balance in memory and with the balance storage alone gives
   * (money rule 4); reports the object's size.
   */
  audit(): AuditResult {
    const entries = entryTotals(this.sql);
    const row = readStateRow(this.sql);
    const settledUntil = row?.compacted_until ?? 0;
    const debits = aggregateTotals(this.sql, settledUntil);
    const lm = entries.monthly - debits.monthly;
    const lp = entries.purchased - debits.purchased;
    const memory = this.s ? liveBalance(this.s, this.open) : NONE;
    const stored = row ? liveBalance(row, openDebits(this.sql, settledUntil)) : NONE;
    return {
      ledger_total: lm + lp,
      balance_total: memory.monthly + memory.purchased,
      consistent:
        lm === memory.monthly &&
        lp === memory.purchased &&
        stored.monthly === memory.monthly &&
        stored.purchased === memory.purchased,
      ledger_monthly: lm,
      ledger_purchased: lp,
      monthly: memory.monthly,
      purchased: memory.purchased,
      entries: entries.count,
      debit_aggregates: debits.rows,
      stored_monthly: stored.monthly,
      stored_purchased: stored.purchased,
      storage_bytes: this.sql.databaseSize,
    };
  }

  /**
   * The account's usage rows whose period starts in [start, end) (unix seconds), at the finest
   * grain kept: minutes for the last day, hours for 90 days, days before.
   */
  usage(start: number, end: number): UsageRowWithPeak[] {
    const now = this.now();
    const s = readStateRow(this.sql);
    // Hours before the ring's window are complete only once their minutes are settled.
    if (s && s.compacted_until < ringWindowStart(now)) this.settle(now);
    return usageRows(this.sql, start, end, now);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Creates the account's ledger with the plan's monthly credits for the current cycle.
   * Safe to call twice: the second call changes nothing.
   */
  init(input: { accountId: string; plan: PlanId; now?: number }): LedgerAccount {
    const now = input.now ?? this.now();
    this.mutate(() => {
      if (readStateRow(this.sql)) return;
      const allowance = insertInitialState(this.sql, input.accountId, input.plan, now);
      this.appendLedger(
        `cycle:${input.accountId}:initial`,
        "cycle_grant",
        allowance,
        0,
        now,
        // The plan is named so a replay can tell what the cycle started with (money rule 9).
        `initial monthly credits ${input.plan}`,
      );
    });
    // A second call changes nothing, open debits included: memory follows storage.
    this.reload();
    // The first checkpoint is armed now, so the first hour of debits sets no alarm.
    if (this.s) this.scheduleAlarm(Math.min(settleDue(this.s), this.s.cycle_ends_at));
    return this.snapshot() as LedgerAccount;
  }

  // ---------------------------------------------------------------- the hot path

  /**
   * Takes `cost` credits, monthly first, all or nothing. `ref` is the gateway's own id for the
   * request (never client-supplied). The result's `minute` and `charged` are what a refund of
   * this debit gives back (`refund(ref, { minute, ...charged })`).
   *
   * Reads no row: the balance, settings, revoked keys and rate window are in memory. Writes
   * one: the minute's aggregate. Near the threshold it also reads what the trigger needs.
   */
  async debit(cost: number, ref: string, apiKeyId?: string): Promise<DebitResult> {
    // Not stored: the minute and the amounts identify the debit for its refund; memory keeps
    // the ref only to answer for a reply the gateway never got (`refund` with `sentAt`).
    const now = this.now();
    const s = this.s;
    const d = decideDebit(
      {
        settled: s,
        open: this.open,
        voided: this.recent.isVoided(ref),
        // Loaded on the first keyed debit only: an operator's debit reads nothing.
        revoked: { has: (keyId) => this.revokedKeys().has(keyId) },
        window: this.rateWindow,
      },
      cost,
      apiKeyId,
      now,
    );
    if (d.kind === "refuse")
      return d.reason === "rate_limited"
        ? { ok: false, reason: d.reason, rate: d.rate }
        : { ok: false, reason: d.reason, rate: null };
    if (d.kind === "insufficient") {
      if (d.resume) {
        const { fx } = this.mutateFx((fx) =>
          this.maybeStartAutoRecharge(this.liveState(), now, fx),
        );
        await this.afterCommit(fx);
      }
      return {
        ok: false,
        reason: "insufficient_credits",
        balance: withTotal(d.balance),
        rate: d.rate,
      };
    }
    if (!s) throw new Error("unreachable: a debit is taken only from an initialized ledger");
    const { take, after, minute, mustSettle, nearThreshold, crossesAlert: crosses, rate } = d;
    const fx = this.ctx.storage.transactionSync((): Effects => {
      const fx = noEffects();
      // Rare: no checkpoint for a day (an idle object); settle before reusing a slot.
      if (mustSettle) settleMinutes(this.sql, s.compacted_until, minute, Math.floor(now / 1000));
      recordDebit(this.sql, minute, take);
      // The trigger reads the stored settings (and the pending check) only near the threshold.
      if (nearThreshold)
        this.maybeStartAutoRecharge({ ...(readStateRow(this.sql) as StateRow), ...after }, now, fx);
      // Worded after the trigger: the email says whether a recharge is now in flight.
      if (crosses)
        fx.deliver.push(
          recordLowBalanceAlert(
            this.sql,
            { ...(readStateRow(this.sql) as StateRow), ...after },
            now,
          ),
        );
      return fx;
    });
    // Committed: remembered at once, before anything else here can throw (recent-debits.ts).
    this.recent.remember(ref, { minute, ...take }, Date.now());
    // Committed: memory follows.
    if (mustSettle || nearThreshold || crosses) this.reload();
    else
      this.open = {
        monthly: this.open.monthly + take.monthly,
        purchased: this.open.purchased + take.purchased,
      };
    // Compared in memory: an alarm is written only when none is due by then (once an hour).
    if (this.s) this.scheduleAlarm(settleDue(this.s));
    await this.afterCommit(fx);
    return { ok: true, charged: take, minute, balance: withTotal(after), rate };
  }

  /** The state row read afresh with the live buckets (inside a transaction). */
  private liveState(): StateRow {
    const row = readStateRow(this.sql) as StateRow;
    return { ...row, ...liveBalance(row, this.open) };
  }

  private revokedKeys(): Set<string> {
    if (!this.revoked) {
      this.revoked = loadRevokedKeys(this.sql);
    }
    return this.revoked;
  }

  /**
   * Refuses `keyId` on every later debit, at once and in every isolate (the isolates' key
   * caches may still map it to this account). Idempotent. Called before D1 marks it revoked.
   */
  revokeKey(keyId: string): void {
    insertRevokedKey(this.sql, keyId, this.now());
    this.revokedKeys().add(keyId);
  }

  /**
   * Reverses the debit `debitRef`, returning each credit to the bucket it came from, as the
   * entry `refund:<debit>` (money rule 8). `charge` is the debit's own `minute` and `charged`.
   * The minute's aggregate must still hold what the refund returns, so no refund returns more
   * than was taken. Idempotent: a second refund of the same debit changes nothing.
   *
   * No `charge` but `sentAt` (the gateway's clock): a debit whose reply was lost, so it may
   * or may not have committed. Remembered, it is refunded; absent while memory covers the time
   * it was sent, it never committed, and `void:<debit>` records that (a late arrival is then
   * refused); otherwise the answer is `outcome_unknown`, for an operator (recent-debits.ts).
   * Neither: nothing says what the debit took, so `not_found`.
   */
  refund(debitRef: string, charge: DebitCharge | null, sentAt?: number): RefundResult {
    const now = this.now();
    return this.mutate(
      (): RefundResult => {
        const s = this.current();
        if (!s) return { ok: false, reason: "not_found" };
        const refundRef = `refund:${debitRef}`;
        const self = this;
        const d = decideRefund(charge, sentAt, {
          // Already refunded: a replay (the queue, D1, the reconciler) changes nothing.
          get refunded() {
            return self.hasLedgerRef(refundRef);
          },
          get voidRecorded() {
            return self.hasLedgerRef(`void:${debitRef}`);
          },
          get unanswered() {
            return unansweredDebitOutcome({
              remembered: self.recent.charge(debitRef),
              memorySince: self.recent.memorySince,
              sentAt: sentAt ?? 0,
              marginMs: clockMarginMs(self.env.LEDGER_CLOCK_MARGIN_MS),
            });
          },
        });
        if (d.kind === "replay") return { ok: true, balance: withTotal(s), refunded: false };
        if (d.kind === "outcome_unknown") return { ok: false, reason: "outcome_unknown" };
        if (d.kind === "void") {
          // Written only on this failure path: the decision outlives a restart.
          this.appendLedger(
            `void:${debitRef}`,
            "void",
            0,
            0,
            now,
            "debit never committed; reply lost",
          );
          this.recent.void(debitRef);
          return { ok: false, reason: "not_found" };
        }
        if (d.kind === "not_found") return { ok: false, reason: "not_found" };
        const c = d.charge;
        if (!refundFromAggregate(this.sql, c, s.compacted_until))
          return { ok: false, reason: "not_found" };
        this.sql.exec(
          "UPDATE state SET monthly = monthly + ?, purchased = purchased + ? WHERE id = 1",
          c.monthly,
          c.purchased,
        );
        this.appendLedger(refundRef, "refund", c.monthly, c.purchased, now, null);
        return {
          ok: true,
          balance: withTotal({
            monthly: s.monthly + c.monthly,
            purchased: s.purchased + c.purchased,
          }),
          refunded: true,
        };
      },
      { rearm: false },
    );
  }

  // ---------------------------------------------------------------- operators

  /**
   * Adds signed amounts to the buckets as one audited ledger entry. Refused, changing nothing,
   * when either bucket would go below zero. Idempotent by `ref`.
   */
  async adjust(input: {
    ref: string;
    monthly: number;
    purchased: number;
    reason: string;
  }): Promise<AdjustResult> {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx): AdjustResult => {
      const s = this.current();
      if (!s) return { ok: false, reason: "not_initialized", balance: ZERO };
      const d = decideAdjust(s, entryDeltas(this.sql, input.ref), {
        monthly: input.monthly,
        purchased: input.purchased,
      });
      if (d.kind === "conflict")
        return { ok: false, reason: "idempotency_conflict", balance: withTotal(s) };
      if (d.kind === "replay") return { ok: true, balance: withTotal(s), replayed: true };
      if (d.kind === "insufficient")
        return { ok: false, reason: "insufficient_credits", balance: withTotal(s) };
      const next = d.next;
      this.sql.exec(
        "UPDATE state SET monthly = monthly + ?, purchased = purchased + ? WHERE id = 1",
        input.monthly,
        input.purchased,
      );
      this.appendLedger(input.ref, "adjustment", input.monthly, input.purchased, now, input.reason);
      // The customer's history says why the balance changed, not only by how much.
      fx.deliver.push(insertAdjustmentHistory(this.sql, s.account_id, input, now));
      this.maybeStartAutoRecharge({ ...s, ...next }, now, fx);
      return { ok: true, balance: withTotal(next), replayed: false };
    });
    await this.afterCommit(fx);
    return result;
  }

  /**
   * Suspends the account (`reason` is shown to its people) or lifts it (null). The debit reads
   * the flag from the state row it holds in memory (`decideDebit`), so a suspended account's
   * requests are refused in the same call, at no extra read; no purchase starts meanwhile
   * (`decideTopUp`, `decideRecharge`). Suspending again keeps the first time and takes the new
   * reason. Lifting it re-decides auto-recharge, as any change that lets one through does.
   */
  async setSuspension(suspension: { reason: string } | null): Promise<SuspendResult> {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx): SuspendResult => {
      const s = this.current();
      if (!s) return { ok: false, reason: "not_initialized" };
      const next = suspension ? { at: s.suspended_at ?? now, reason: suspension.reason } : null;
      writeSuspension(this.sql, next);
      if (!next) this.maybeStartAutoRecharge(this.liveState(), now, fx);
      return { ok: true, suspension: next };
    });
    await this.afterCommit(fx);
    return result;
  }

  // ---------------------------------------------------------------- auto-recharge and recharges

  /**
   * Records the customer's payment method on file (null: none). A recharge created from now on
   * pays with it, whatever changes later (a retry must send exactly its first attempt's
   * parameters under the same Stripe idempotency key).
   */
  setPaymentMethod(paymentMethodId: string | null): void {
    this.mutate(() => {
      this.sql.exec(
        "UPDATE state SET has_payment_method = ?, payment_method_id = ? WHERE id = 1",
        paymentMethodId ? 1 : 0,
        paymentMethodId,
      );
    });
  }

  /**
   * Operator and customer limits: the monthly spending limit (null: none) and the per-account
   * rate limit override (null: the plan's). Raising the limit ends a pause at once, and starts
   * the recharge the pause held back if the balance is still at or below the threshold.
   */
  async setLimits(input: {
    spendLimitCents?: number | null;
    rateLimitPerMinute?: number | null;
  }): Promise<
    | { ok: true; limits: LimitsState; rateLimitPerMinute: number }
    | { ok: false; reason: "not_initialized" }
  > {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx) => {
      const s = this.current();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const d = decideLimits(s, input);
      this.sql.exec(
        "UPDATE state SET spend_limit_cents = ?, rate_limit_override = ?, paused_period = NULL WHERE id = 1",
        d.spendLimitCents,
        d.rateLimitOverride,
      );
      // Re-decided from scratch: still over the limit pauses again (without a second email:
      // the email's reference is the month).
      this.maybeStartAutoRecharge(this.liveState(), now, fx);
      const after = this.liveState();
      return {
        ok: true as const,
        limits: this.limitsOf(after, now),
        rateLimitPerMinute: rateLimitOf(after),
      };
    });
    await this.afterCommit(fx);
    return result;
  }

  /**
   * Changes auto-recharge settings. Enabling needs a payment method on file; enabling at or
   * below the threshold starts a recharge at once. A package change affects the next trigger
   * only: a pending recharge keeps the package it was created with.
   */
  async updateAutoRecharge(input: {
    enabled?: boolean;
    package?: PackageId;
  }): Promise<SettingsResult> {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx): SettingsResult => {
      const s = this.current();
      if (!s) return { ok: false, reason: "not_initialized" };
      const d = decideAutoRecharge(s, input);
      if (d.kind === "refuse") return { ok: false, reason: d.reason };
      this.sql.exec(
        "UPDATE state SET auto_enabled = ?, auto_package = ? WHERE id = 1",
        d.enabled ? 1 : 0,
        d.package,
      );
      const next = this.liveState();
      this.maybeStartAutoRecharge(next, now, fx);
      return { ok: true, settings: this.autoRechargeOf(next) };
    });
    await this.afterCommit(fx);
    return result;
  }

  /**
   * Starts a manual top-up through the recharge pipeline. `rechargeId` is derived from the
   * client's Idempotency-Key when it sent one, so a retried request finds its first top-up.
   */
  async requestTopUp(input: { rechargeId: string; package: PackageId }): Promise<TopUpResult> {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx): TopUpResult => {
      const s = this.current();
      if (!s) return { ok: false, reason: "not_initialized" };
      const sql = this.sql;
      const d = decideTopUp(s, input.package, {
        get existing() {
          return findRecharge(sql, input.rechargeId);
        },
        get waiting() {
          return awaitingAction(sql)[0] ?? null;
        },
        get spentThisMonthCents() {
          return spentThisMonth(sql, now);
        },
      });
      if (d.kind === "replay") return { ok: true, recharge: d.recharge, replayed: true };
      if (d.kind === "refuse") return { ok: false, reason: d.reason };
      if (d.kind === "payment_pending")
        return { ok: false, reason: "payment_pending", waiting: d.waiting };
      fx.deliver.push(insertRecharge(this.sql, s, input.rechargeId, "top_up", input.package, now));
      return {
        ok: true,
        recharge: findRecharge(this.sql, input.rechargeId) as RechargeView,
        replayed: false,
      };
    });
    await this.afterCommit(fx);
    return result;
  }

  /**
   * Credits a paid recharge to the purchased bucket. Idempotent by recharge id: the ledger ref
   * is the recharge id, so no retry, redelivery or reconciliation can credit it twice. A
   * recharge first recorded as failed is still credited if the payment did go through.
   */
  grantPurchased(
    rechargeId: string,
    credits: number,
  ):
    | { ok: true; granted: boolean; balance: BalanceView }
    | { ok: false; reason: "unknown_recharge" | "credits_mismatch" | "not_initialized" } {
    const now = this.now();
    return this.mutate(() => {
      const s = this.current();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const self = this;
      const d = decideGrantPurchased(findRecharge(this.sql, rechargeId), credits, {
        get granted() {
          return self.hasLedgerRef(rechargeId);
        },
      });
      if (d.kind === "refuse") return { ok: false as const, reason: d.reason };
      if (d.kind === "replay") return { ok: true as const, granted: false, balance: withTotal(s) };
      this.sql.exec("UPDATE state SET purchased = purchased + ? WHERE id = 1", credits);
      this.appendLedger(rechargeId, "purchase", 0, credits, now, d.note);
      // Succeeded is reached only with its ledger entry, so a grant always moves the status.
      if (d.transition.kind === "move") markSucceeded(this.sql, rechargeId, now);
      return {
        ok: true as const,
        granted: true,
        balance: withTotal({ monthly: s.monthly, purchased: s.purchased + credits }),
      };
    });
  }

  /**
   * Records a failed payment: no credits, auto-recharge disabled, failure kept for the
   * dashboard (money rule 6). A recharge already credited stays credited. Also ends one that
   * was waiting for the customer (its invoice voided).
   */
  rechargeFailed(
    rechargeId: string,
    code: string,
    message: string,
  ):
    | { ok: true; changed: boolean }
    | { ok: false; reason: "unknown_recharge" | "already_succeeded" } {
    return this.paymentProblem(rechargeId, "failed", code, message, null);
  }

  /**
   * Records a payment that needs the customer (authentication): nothing granted, auto-recharge
   * disabled as for a failure (money rule 6), and the link where they can complete it. Paying
   * there grants the credits once (`grantPurchased`, same recharge id).
   */
  rechargeNeedsAction(
    rechargeId: string,
    code: string,
    message: string,
    actionUrl: string | null,
  ):
    | { ok: true; changed: boolean }
    | { ok: false; reason: "unknown_recharge" | "already_succeeded" } {
    return this.paymentProblem(rechargeId, "requires_action", code, message, actionUrl);
  }

  /** A payment problem, through the recharge state machine (`nextRechargeStatus`). */
  private paymentProblem(
    rechargeId: string,
    event: "failed" | "requires_action",
    code: string,
    message: string,
    actionUrl: string | null,
  ):
    | { ok: true; changed: boolean }
    | { ok: false; reason: "unknown_recharge" | "already_succeeded" } {
    const now = this.now();
    return this.mutate(() => {
      const r = findRecharge(this.sql, rechargeId);
      if (!r) return { ok: false as const, reason: "unknown_recharge" as const };
      const t = nextRechargeStatus(r.status, event);
      if (t.kind === "refuse") return { ok: false as const, reason: t.reason };
      if (t.kind === "same") return { ok: true as const, changed: false };
      recordPaymentProblem(this.sql, {
        rechargeId,
        from: t.from,
        to: event,
        code,
        message,
        actionUrl,
        now,
      });
      return { ok: true as const, changed: true };
    });
  }

  /** Purchases waiting for the customer to authenticate, oldest first (the Billing page). */
  awaitingAction(): RechargeView[] {
    return awaitingAction(this.sql);
  }

  /** Recharges still pending, oldest first (for the reconciler and the dashboard). */
  pendingRecharges(): RechargeView[] {
    return pendingRecharges(this.sql);
  }

  // ---------------------------------------------------------------- alerts

  /** The low-balance alert's settings. Null until `init`. */
  alerts(): AlertSettings | null {
    const s = this.current();
    return s ? alertsOf(s) : null;
  }

  /**
   * Sets the low-balance level (null: no alert). A level at or above the current total sends
   * nothing now: the customer just chose it looking at their balance. The alert is armed once
   * the total is above the level, at once if it already is (`followLowBalance`, at the end of
   * this mutation), and the next fall to the level emails.
   */
  setAlerts(input: {
    lowBalanceCredits: number | null;
  }): { ok: true; alerts: AlertSettings } | { ok: false; reason: "not_initialized" } {
    return this.mutate(() => {
      if (!readStateRow(this.sql))
        return { ok: false as const, reason: "not_initialized" as const };
      this.sql.exec(
        "UPDATE state SET low_balance_credits = ?, low_balance_armed = 0 WHERE id = 1",
        input.lowBalanceCredits,
      );
      return { ok: true as const, alerts: { low_balance_credits: input.lowBalanceCredits } };
    });
  }

  // ---------------------------------------------------------------- cycles

  /**
   * Starts a billing cycle: monthly credits are set to the plan's allowance (unused monthly
   * credits do not carry over; purchased credits are untouched). Idempotent by `ref`
   * (an invoice id, or `cycle:<start>` for alarm-driven cycles). Order-independent
   * (`decideCycle`).
   */
  async startCycle(input: {
    ref: string;
    plan: PlanId;
    version: number;
    startsAt: number;
    endsAt: number;
    source: "stripe" | "alarm";
    /** The paid invoice, for the history row of a new period's grant. */
    history?: HistoryDetails;
    /** Stripe holds the invoice's subscription live now (`decideCycle`). */
    live?: boolean;
  }): Promise<
    | { ok: true; started: boolean; granted: number; balance: BalanceView }
    | { ok: false; reason: "not_initialized" }
  > {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx) => {
      const s = this.current();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      if (this.hasLedgerRef(input.ref)) {
        return { ok: true as const, started: false, granted: 0, balance: withTotal(s) };
      }
      const d = decideCycle(s, {
        ...input,
        paidUpgrade: input.source === "stripe" ? largestPaidUpgrade(this.sql, input.endsAt) : null,
      });
      if (d.kind === "ignore") {
        // Stripe retries deliveries for days: an invoice from before the subscription ended.
        this.appendLedger(input.ref, "cycle_grant", 0, 0, now, "ignored: subscription ended since");
        return { ok: true as const, started: false, granted: 0, balance: withTotal(s) };
      }
      const delta = d.monthly - s.monthly;
      this.sql.exec(
        `UPDATE state SET monthly = monthly + ?, plan = ?, plan_version = ?,
           cycle_started_at = ?, cycle_ends_at = ?, stripe_cycles = ?, cycle_max_monthly = ?
         WHERE id = 1`,
        delta,
        d.plan,
        d.version,
        d.startedAt,
        d.endsAt,
        d.stripeCycles,
        d.cycleMaxMonthly,
      );
      this.appendLedger(
        input.ref,
        "cycle_grant",
        delta,
        0,
        now,
        // Named so a replay can tell a new period's grant from a same-period one, and which
        // plan's allowance it granted (money rule 9).
        d.newer ? `cycle ${d.granted}` : `cycle ${d.plan} (same period)`,
      );
      if (d.newer)
        fx.deliver.push(insertGrantHistory(this.sql, s.account_id, input, d.monthly, now));
      const next = this.liveState();
      this.maybeStartAutoRecharge(next, now, fx);
      return {
        ok: true as const,
        started: d.newer,
        granted: d.newer ? d.monthly : 0,
        balance: withTotal(next),
      };
    });
    if (result.ok) this.scheduleCycleAlarm();
    await this.afterCommit(fx);
    return result;
  }

  /**
   * Changes the plan, if `version` is newer than the last change seen (events arrive in any
   * order): what the account shows and its rate limit. It adds no monthly credits, up or down:
   * credits follow money that was paid (money rule 9), so an upgrade's come with its paid
   * invoice (`grantUpgrade`) and the next cycle's invoice grants the allowance it billed.
   * `cycles` says what starts the next cycle: Stripe invoices (a subscription) or the ledger's
   * alarm.
   */
  changePlan(input: {
    ref: string;
    plan: PlanId;
    version: number;
    cycles: "stripe" | "alarm";
    /**
     * The plan read from Stripe's current subscription, after two events of one version (the
     * same second and kind) were seen: it replaces what the first of them applied.
     */
    current?: boolean;
  }):
    | { ok: true; balance: BalanceView; changed: boolean; added: number }
    | { ok: false; reason: "not_initialized" } {
    const now = this.now();
    const result = this.mutate(() => {
      const s = this.current();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const self = this;
      const d = decidePlanChange(s, input, {
        get seen() {
          return self.hasLedgerRef(input.ref);
        },
      });
      if (d.kind === "ignore")
        return { ok: true as const, balance: withTotal(s), changed: false, added: 0 };
      this.sql.exec(
        "UPDATE state SET plan = ?, plan_version = ?, stripe_cycles = ? WHERE id = 1",
        input.plan,
        input.version,
        d.stripeCycles,
      );
      this.appendLedger(input.ref, "plan_change", 0, 0, now, d.note);
      return { ok: true as const, balance: withTotal(s), changed: d.changed, added: 0 };
    });
    this.scheduleCycleAlarm();
    return result;
  }

  /**
   * A paid upgrade invoice (`subscription_update`): monthly credits raised by the difference up
   * to the new plan's allowance for the cycle it is for, never past the largest allowance paid
   * for in that cycle (`decideUpgrade`). Idempotent by `ref` (the invoice id). One for a cycle
   * whose own invoice has not arrived yet is kept, and that cycle starts with it (`startCycle`);
   * one for an earlier cycle grants nothing. The plan itself follows the subscription's events.
   */
  async grantUpgrade(input: {
    ref: string;
    plan: PlanId;
    cycleEndsAt: number;
    /** The paid invoice, for its history row (written whatever it added, 0 included). */
    history?: HistoryDetails;
  }): Promise<
    | {
        ok: true;
        added: number;
        outcome: "granted" | "earlier" | "later" | "replayed";
        balance: BalanceView;
      }
    | { ok: false; reason: "not_initialized" }
  > {
    const now = this.now();
    const { result, fx } = this.mutateFx((fx) => {
      const s = this.current();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const seen = recordedUpgradeDelta(this.sql, input.ref);
      if (seen !== null) {
        // What it added the first time, so a retried history row says the same.
        return {
          ok: true as const,
          added: seen,
          outcome: "replayed" as const,
          balance: withTotal(s),
        };
      }
      recordPaidUpgrade(this.sql, input.ref, input.cycleEndsAt, input.plan, now);
      const d = decideUpgrade(s, input);
      fx.deliver.push(
        insertGrantHistory(
          this.sql,
          s.account_id,
          { ...input, source: "stripe" },
          d.kind === "grant" ? d.added : 0,
          now,
        ),
      );
      if (d.kind !== "grant") {
        this.appendLedger(
          input.ref,
          "upgrade_grant",
          0,
          0,
          now,
          d.kind === "earlier"
            ? `paid upgrade -> ${input.plan} (an earlier cycle: nothing)`
            : `paid upgrade -> ${input.plan} (awaits its cycle)`,
        );
        return { ok: true as const, added: 0, outcome: d.kind, balance: withTotal(s) };
      }
      this.sql.exec(
        "UPDATE state SET monthly = monthly + ?, cycle_max_monthly = ? WHERE id = 1",
        d.added,
        d.cycleMaxMonthly,
      );
      this.appendLedger(
        input.ref,
        "upgrade_grant",
        d.added,
        0,
        now,
        `paid upgrade -> ${input.plan}`,
      );
      const next = this.liveState();
      this.maybeStartAutoRecharge(next, now, fx);
      return {
        ok: true as const,
        added: d.added,
        outcome: "granted" as const,
        balance: withTotal(next),
      };
    });
    await this.afterCommit(fx);
    return result;
  }

  private scheduleCycleAlarm(): void {
    const s = this.s;
    if (s && s.stripe_cycles === 0) this.scheduleAlarm(s.cycle_ends_at);
  }

  // ---------------------------------------------------------------- alarm

  /**
   * The checkpoint (settles the open minutes), the outbox re-sent, a pause lifted when the
   * month turned, and alarm-driven cycles started when due.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = this.now();
    const active = this.settle(now);
    await this.flushOutbox();
    await this.resumeIfMonthTurned(now);
    const s = this.current();
    if (s && s.stripe_cycles === 0 && s.cycle_ends_at <= now) {
      const { start, end } = currentAlarmCycle(s.cycle_ends_at, now);
      const ref = `cycle:${s.account_id}:${start}`;
      // Its history row is the cycle's projection, in the same transaction as the grant.
      await this.startCycle({
        ref,
        plan: s.plan,
        version: s.plan_version,
        startsAt: start,
        endsAt: end,
        source: "alarm",
      });
    }
    this.rescheduleAfterAlarm(active);
  }

  /**
   * The checkpoint: settles every closed minute (before the current one) into its hour and the
   * state row, in one transaction, then rebuilds memory from storage. True if there was any.
   */
  private settle(now: number): boolean {
    const s = readStateRow(this.sql);
    const until = minuteOf(now);
    if (!s || until <= s.compacted_until) return false;
    let moved: Buckets = NONE;
    this.ctx.storage.transactionSync(() => {
      moved = settleMinutes(this.sql, s.compacted_until, until, Math.floor(now / 1000));
      // The traffic since the last projection reaches D1 now, once per checkpoint.
      const row = readStateRow(this.sql);
      if (row && moved.monthly + moved.purchased > 0)
        insertBalanceProjection(
          this.sql,
          row.account_id,
          liveBalance(row, openDebits(this.sql, row.compacted_until)),
          now,
        );
    });
    this.reload();
    return moved.monthly + moved.purchased > 0 || hadTrafficSince(this.sql, s.compacted_until);
  }

  /** A pause by the spending limit lasts until the calendar month turns. */
  private async resumeIfMonthTurned(now: number): Promise<void> {
    const { fx } = this.mutateFx((fx) => {
      const s = this.current();
      if (s && s.paused_period !== null && s.paused_period !== monthStart(now)) {
        this.maybeStartAutoRecharge(s, now, fx);
      }
    });
    await this.afterCommit(fx);
  }

  private rescheduleAfterAlarm(active: boolean): void {
    const now = this.now();
    const s = this.s;
    if (hasOutbox(this.sql)) this.scheduleAlarm(now + OUTBOX_RETRY_MS);
    // Still busy: the next checkpoint now, so the debits of the next hour set no alarm.
    if (active && s) this.scheduleAlarm(settleDue(s));
    if (s && s.stripe_cycles === 0) this.scheduleAlarm(s.cycle_ends_at);
    if (s && s.paused_period !== null) this.scheduleAlarm(nextMonthStart(s.paused_period));
  }

  private scheduleAlarm(at: number): void {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  // ---------------------------------------------------------------- internals

  private hasLedgerRef(ref: string): boolean {
    return hasEntry(this.sql, ref);
  }

  private appendLedger(
    ref: string,
    kind: string,
    monthly: number,
    purchased: number,
    at: number,
    note: string | null,
  ) {
    appendEntry(this.sql, { ref, kind, monthly, purchased, at }, note);
  }

  /**
   * Inside a transaction, with `s` carrying the live buckets: the trigger decided
   * (`decideRecharge`) and applied, its outbox item and any alarm added to `fx`. The facts are
   * getters: each is read only if the rule gets to it, as before the rule was pure.
   */
  private maybeStartAutoRecharge(s: StateRow, now: number, fx: Effects): void {
    const sql = this.sql;
    const d = decideRecharge(
      s,
      {
        get pending() {
          return hasPendingAutoRecharge(sql);
        },
        get spentThisMonthCents() {
          return spentThisMonth(sql, now);
        },
      },
      now,
    );
    if (d.kind === "pause") {
      fx.alarms.push(d.resumesAt);
      fx.deliver.push(pauseForSpendLimit(sql, s, now, d.resumesAt));
    } else if (d.kind === "start") {
      fx.deliver.push(startAutoRecharge(sql, s, d.package, d.clearPause, now));
    }
  }

  /**
   * Delivers what a committed mutation put in the outbox: its history row (so a caller that
   * reads the history after the call sees it), its job, then its alert email.
   */
  private async afterCommit(fx: Effects): Promise<void> {
    for (const at of fx.alarms) this.scheduleAlarm(at);
    for (const item of fx.deliver) await this.deliver(item);
  }

  /** Effects of a mutation whose caller delivers nothing: the alarm delivers its items. */
  private leaveToAlarm(fx: Effects): void {
    for (const at of fx.alarms) this.scheduleAlarm(at);
    // A balance projection is sent now, without holding the reply; the rest waits for the alarm.
    for (const item of fx.deliver) if (item.type === "balance") void this.deliver(item);
    if (fx.deliver.length > 0) this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
  }

  /**
   * Delivers one outbox item after the write that created it; a failure leaves it in the
   * outbox and the alarm tries again.
   */
  private async deliver(item: OutboxItem): Promise<void> {
    // Armed before the first await: if the object dies mid-send, the alarm still re-sends.
    this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    const id = outboxId(item);
    try {
      await deliverItem(this.env, item);
      this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    } catch (err) {
      console.warn(
        item.type === "recharge"
          ? "recharge job not queued yet; the alarm will retry"
          : item.type === "projection" || item.type === "balance"
            ? "history row not written to D1 yet; the alarm will retry"
            : "notice email not sent yet; the alarm will retry",
        id,
        String(err),
      );
      this.sql.exec("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", id);
      this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  private async flushOutbox(): Promise<void> {
    for (const item of outboxRows(this.sql)) await this.deliver(item);
  }
}

/** When the open minutes are next due to be settled: an hour after the last checkpoint. */
function settleDue(s: Pick<StateRow, "compacted_until">): number {
  return s.compacted_until * 1000 + SETTLE_EVERY_MS;
}

function alertsOf(s: Pick<StateRow, "low_balance_credits">): AlertSettings {
  return { low_balance_credits: s.low_balance_credits };
}
