/**
 * AccountLedger: one Durable Object per account, the only writer of that account's balance. A
 * thin shell: it keeps memory, runs each command's decide → apply in one `transactionSync`, and
 * flushes the effects after the commit through its outbox. Pure decisions live in `domain/`,
 * their application in `apply/` (`(tx, input) → domain value`), storage steps in `store/`, the
 * follow-ups of every balance change in `follow-ups.ts`, views in `views.ts`, delivery in
 * `outbox-runner.ts`, the alarm's times in `domain/alarms.ts`. The routes build the JSON.
 *
 * Memory, written through: the state row as last read or written, and the open debits (gross
 * debits of the minutes not settled yet), so the live balance is `state − open` without a read;
 * a restarted object rebuilds both from storage (`store/schema.ts`). The hot path (`debit`)
 * reads no row and writes one, the minute's aggregate, in the transaction of its decision (the
 * output gate holds the reply until it is durable). Every other mutation reads the state row
 * afresh, applies its decision, ends by following the low-balance alert, and refreshes memory
 * after the commit. Checkpoints run in the alarm, armed at most once per hour of activity.
 * Business outcomes are returned, not thrown.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../platform/env";
import type { PackageId, PlanId } from "../pricing";
import { AlarmClock } from "./alarms";
import { applyAdjust, applyRefund } from "./apply/balance";
import { applyInit, applyPlanChange, applyStartCycle, applyUpgrade } from "./apply/cycles";
import { applyDebit } from "./apply/debit";
import {
  applyLeaseClose,
  applyLeaseTake,
  type LeaseCloseInput,
  type LeaseTakeInput,
} from "./apply/leases";
import { applyGrantPurchased, applyPaymentProblem, applyTopUp } from "./apply/recharges";
import {
  applyAlerts,
  applyAutoRecharge,
  applyLimits,
  applyPaymentMethod,
  applySuspension,
} from "./apply/settings";
import { alarmsAfterAlarm, cycleAlarm, settleDue } from "./domain/alarms";
import { currentAlarmCycle } from "./domain/cycles";
import { decideDebit } from "./domain/decisions";
import { addEffects, type Effects, noEffects } from "./domain/effects";
import type { AlertSettings } from "./domain/low-balance";
import type { RateWindow } from "./domain/rate-window";
import { clockMarginMs, RecentDebits } from "./domain/recent-debits";
import {
  type BalanceView,
  type Buckets,
  DEFAULT_SPEND_LIMIT_CENTS,
  liveBalance,
  withTotal,
} from "./domain/rules";
import type {
  AdjustInput,
  AdjustResult,
  AlertsResult,
  AuditResult,
  AutoRechargeInput,
  AutoRechargeState,
  CycleInput,
  CycleResult,
  DebitCharge,
  DebitResult,
  GrantResult,
  LedgerAccount,
  LimitsInput,
  LimitsResult,
  LimitsState,
  PaymentDetails,
  PaymentProblemResult,
  PlanChangeInput,
  PlanChangeResult,
  RechargeView,
  RefundResult,
  SettingsResult,
  StateRow,
  SuspendResult,
  TopUpResult,
  UpgradeInput,
  UpgradeResult,
} from "./domain/types";
import {
  balanceFollowUp,
  lowBalanceFollowUp,
  resumeIfMonthTurned,
  triggerRecharge,
} from "./follow-ups";
import { OutboxRunner } from "./outbox-runner";
import {
  debitRecalling,
  nextLeaseAlarm,
  recallLeases,
  wholeAccountShort,
  withLeased,
} from "./shards/recall";
import { checkpoint, openDebits } from "./store/aggregates";
import { awaitingAction, findRecharge, hasOutbox, pendingRecharges } from "./store/recharges";
import { RevokedKeys } from "./store/revoked-keys";
import { ensureSchema } from "./store/schema";
import { readStateRow } from "./store/state";
import {
  keysLastUsed,
  minuteRows,
  ringWindowStart,
  type UsageRowWithPeak,
  usageRows,
} from "./store/usage";
import type { Tx } from "./tx";
import { accountOf, alertsOf, auditOf, autoRechargeOf, limitsOf } from "./views";

export { SETTLE_EVERY_MS } from "./domain/alarms";
export type * from "./domain/types";
export { DEFAULT_SPEND_LIMIT_CENTS };

const NONE: Buckets = { monthly: 0, purchased: 0 };
type Committed<T> = { result: T; fx: Effects };

export class AccountLedger extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly alarms: AlarmClock;
  private readonly outbox: OutboxRunner;
  /** The state row as stored (settled buckets); null until `init`. */
  private s: StateRow | null = null;
  /** Gross debits of the minutes from `s.compacted_until` on, as stored in the ring. */
  private open: Buckets = NONE;
  /** Revoked key ids, read once per object from `revoked_keys` (a handful per account). */
  private readonly revoked: RevokedKeys;
  /** The account's request window, all keys together; memory only (see rate-window.ts). */
  private readonly rateWindow: RateWindow = { start: 0, count: 0 };
  /** This instance's committed debits, for a gateway that lost a reply (recent-debits.ts). */
  private readonly recent = new RecentDebits(Date.now());
  /** Set only by a test (`testSetClock`); null: the real clock. */
  private testClock: number | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.alarms = new AlarmClock(ctx.storage);
    this.outbox = new OutboxRunner(this.sql, env, this.alarms);
    this.revoked = new RevokedKeys(this.sql);
    ensureSchema(ctx.storage);
    this.reload();
    ctx.blockConcurrencyWhile(() => this.alarms.load());
  }

  // ---------------------------------------------------------------- memory and transactions

  /** Rebuilds memory from storage: the checkpoint (state row) and the open minutes after it. */
  private reload(): void {
    this.s = readStateRow(this.sql);
    this.open = this.s ? openDebits(this.sql, this.s.compacted_until) : NONE;
  }

  /** The state row read afresh, with the live buckets in place of the settled ones. */
  private current(): StateRow | null {
    this.s = readStateRow(this.sql);
    // Reads only: credits out on lease to the shards are the account's (docs/ledger-shards.md).
    return this.s ? { ...this.s, ...withLeased(this.sql, liveBalance(this.s, this.open)) } : null;
  }

  /**
   * One mutation: a synchronous transaction that ends by following the low-balance alert, and
   * memory refreshed from what it committed. `rearm: false` (a refund) never arms the alert.
   * Returns the result and the effects the transaction collected (a rolled-back one throws,
   * and its effects are dropped with it); the caller flushes them.
   */
  private transact<T>(fn: (tx: Tx) => T, rearm = true, now = this.now()): Committed<T> {
    const tx: Tx = { sql: this.sql, now, open: this.open, fx: noEffects() };
    try {
      const result = this.ctx.storage.transactionSync(() => {
        const before = this.s ? liveBalance(this.s, this.open) : null;
        const result = fn(tx);
        const after = { ...tx, now: this.now() };
        addEffects(tx.fx, lowBalanceFollowUp(after, rearm));
        // Not for a refund (the one mutation that does not re-arm): there is one per failed
        // upstream call, so it reaches D1 with the next change or checkpoint instead.
        if (rearm) addEffects(tx.fx, balanceFollowUp(after, before));
        return result;
      });
      return { result, fx: tx.fx };
    } finally {
      this.s = readStateRow(this.sql);
    }
  }

  /** A mutation whose caller waits for its outbox items to be delivered. */
  private async run<T>(fn: (tx: Tx) => T, now = this.now()): Promise<T> {
    const { result, fx } = this.transact(fn, true, now);
    await this.outbox.afterCommit(fx);
    return result;
  }

  /** A mutation whose caller delivers nothing itself: its outbox items are left to the alarm. */
  private mutate<T>(fn: (tx: Tx) => T, rearm = true, now = this.now()): T {
    const { result, fx } = this.transact(fn, rearm, now);
    this.outbox.leaveToAlarm(fx);
    return result;
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

  // ---------------------------------------------------------------- reads (views.ts)

  /** A view of the state row read afresh with the live buckets; null until `init`. */
  private view<T>(of: (sql: SqlStorage, s: StateRow, now: number) => T): T | null {
    const s = this.current();
    return s ? of(this.sql, s, this.now()) : null;
  }

  /** The account as its ledger holds it, read in real time. */
  snapshot(): LedgerAccount | null {
    return this.view(accountOf);
  }

  /** The spending limit and what this month's purchases used of it. */
  limits(): LimitsState | null {
    return this.view(limitsOf);
  }

  balance(): BalanceView {
    const s = this.current();
    return withTotal(s ?? NONE);
  }

  autoRecharge(): AutoRechargeState | null {
    return this.view(autoRechargeOf);
  }

  recharge(id: string): RechargeView | null {
    return findRecharge(this.sql, id);
  }

  /** The ledger replayed against the balance in memory and in storage (money rule 4). */
  audit(): AuditResult {
    return auditOf(this.sql, this.s ? liveBalance(this.s, this.open) : null);
  }

  /**
   * The account's usage rows whose period starts in [start, end) (unix seconds), at the finest
   * grain kept: minutes for the last day, hours for 90 days, days before.
   */
  usage(
    start: number,
    end: number,
    opts: { byKey?: boolean; minutes?: boolean } = {},
  ): UsageRowWithPeak[] {
    const now = this.now();
    // Minute rows come from the ring alone, settled or not.
    if (opts.minutes) return minuteRows(this.sql, start, end, now, opts.byKey ?? false);
    const s = readStateRow(this.sql);
    // Hours before the ring's window are complete only once their minutes are settled.
    if (s && s.compacted_until < ringWindowStart(now)) this.settle(now);
    return usageRows(this.sql, start, end, now, opts.byKey ?? false);
  }

  /** Each key's last minute with a debit (unix seconds), by key id; no key, no entry. */
  keysLastUsed(): Record<string, number> {
    const s = readStateRow(this.sql);
    return s ? keysLastUsed(this.sql, s.compacted_until) : {};
  }

  /** Purchases waiting for the customer to authenticate, oldest first (the Billing page). */
  awaitingAction(): RechargeView[] {
    return awaitingAction(this.sql);
  }

  /** Recharges still pending, oldest first (for the reconciler and the dashboard). */
  pendingRecharges(): RechargeView[] {
    return pendingRecharges(this.sql);
  }

  /** The low-balance alert's settings. */
  alerts(): AlertSettings | null {
    return this.view((_, s) => alertsOf(s));
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
        revoked: this.revoked,
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
      if (d.resume) await this.run(triggerRecharge);
      const balance = withTotal(d.balance);
      return { ok: false, reason: "insufficient_credits", balance, rate: d.rate };
    }
    if (!s) throw new Error("unreachable: a debit is taken only from an initialized ledger");
    const fx = this.ctx.storage.transactionSync(() =>
      applyDebit(this.sql, d, s.compacted_until, apiKeyId ?? "", now),
    );
    const { take, after, minute } = d;
    // Committed: remembered at once, before anything else here can throw (recent-debits.ts).
    this.recent.remember(ref, { minute, ...take, key_id: apiKeyId ?? "" }, Date.now());
    // Committed: memory follows.
    if (d.mustSettle || d.nearThreshold || d.crossesAlert) this.reload();
    else
      this.open = {
        monthly: this.open.monthly + take.monthly,
        purchased: this.open.purchased + take.purchased,
      };
    // Compared in memory: an alarm is written only when none is due by then (once an hour).
    if (this.s) this.alarms.schedule(settleDue(this.s));
    await this.outbox.afterCommit(fx);
    return { ok: true, charged: take, minute, balance: withTotal(after), rate: d.rate };
  }

  /**
   * Refuses `keyId` on every later debit, at once and in every isolate (the isolates' key
   * caches may still map it to this account). Idempotent. Called before D1 marks it revoked.
   */
  revokeKey(keyId: string): void {
    this.revoked.revoke(keyId, this.now());
  }

  /** Reverses one debit (money rule 8; `applyRefund`). A refund never re-arms the alert. */
  refund(debitRef: string, charge: DebitCharge | null, sentAt?: number): RefundResult {
    const margin = clockMarginMs(this.env.LEDGER_CLOCK_MARGIN_MS);
    const memory = { recent: this.recent, clockMarginMs: margin };
    return this.mutate((tx) => applyRefund(tx, { debitRef, charge, sentAt }, memory), false);
  }

  // ---------------------------------------------------------------- commands (apply/)

  /** Creates the ledger (`applyInit`); a second call changes nothing. */
  init(input: { accountId: string; plan: PlanId; now?: number }): LedgerAccount {
    this.mutate((tx) => applyInit(tx, input), true, input.now ?? this.now());
    // A second call changes nothing, open debits included: memory follows storage.
    this.reload();
    // The first checkpoint is armed now, so the first hour of debits sets no alarm.
    if (this.s) this.alarms.schedule(Math.min(settleDue(this.s), this.s.cycle_ends_at));
    return this.snapshot() as LedgerAccount;
  }

  /** An operator's signed adjustment, audited and idempotent by `ref` (`applyAdjust`). */
  adjust(input: AdjustInput): Promise<AdjustResult> {
    return this.run((tx) => applyAdjust(tx, input));
  }

  /** A billing cycle's monthly credits, idempotent by `ref` (`applyStartCycle`). */
  async startCycle(input: CycleInput): Promise<CycleResult> {
    const { result, fx } = this.transact((tx) => applyStartCycle(tx, input));
    if (result.ok) this.scheduleCycleAlarm();
    await this.outbox.afterCommit(fx);
    return result;
  }

  /** A plan change, if newer than the last seen; no credits (`applyPlanChange`). */
  changePlan(input: PlanChangeInput): PlanChangeResult {
    const result = this.mutate((tx) => applyPlanChange(tx, input));
    this.scheduleCycleAlarm();
    return result;
  }

  /** A paid upgrade invoice's monthly credits, idempotent by `ref` (`applyUpgrade`). */
  grantUpgrade(input: UpgradeInput): Promise<UpgradeResult> {
    return this.run((tx) => applyUpgrade(tx, input));
  }

  /**
   * Suspends the account (`reason` is shown to its people) or lifts it (null). The debit reads
   * the flag from the state row it holds in memory (`decideDebit`), so a suspended account's
   * requests are refused in the same call, at no extra read (`applySuspension`).
   */
  setSuspension(suspension: { reason: string } | null): Promise<SuspendResult> {
    return this.run((tx) => applySuspension(tx, suspension));
  }

  /** The payment method recharges created from now on pay with (null: none). */
  setPaymentMethod(paymentMethodId: string | null): void {
    this.mutate((tx) => applyPaymentMethod(tx, paymentMethodId));
  }

  /** The spending limit and the rate limit override (`applyLimits`). */
  setLimits(input: LimitsInput): Promise<LimitsResult> {
    return this.run((tx) => applyLimits(tx, input));
  }

  /** Auto-recharge's settings (`applyAutoRecharge`). */
  updateAutoRecharge(input: AutoRechargeInput): Promise<SettingsResult> {
    return this.run((tx) => applyAutoRecharge(tx, input));
  }

  /** The low-balance level, null: no alert (`applyAlerts`). */
  setAlerts(input: { lowBalanceCredits: number | null }): AlertsResult {
    return this.mutate((tx) => applyAlerts(tx, input));
  }

  /** A manual top-up through the recharge pipeline, idempotent by `rechargeId`. */
  requestTopUp(input: { rechargeId: string; package: PackageId }): Promise<TopUpResult> {
    return this.run((tx) => applyTopUp(tx, input));
  }

  /**
   * A paid recharge's credits, once per recharge id. This and the two below own the recharge's
   * status: D1's purchase row and the email follow from the outbox, before the call returns.
   */
  grantPurchased(
    rechargeId: string,
    credits: number,
    payment?: PaymentDetails,
  ): Promise<GrantResult> {
    return this.run((tx) => applyGrantPurchased(tx, { rechargeId, credits, payment }));
  }

  /** A failed payment: no credits, auto-recharge off, the failure kept (money rule 6). */
  rechargeFailed(
    rechargeId: string,
    code: string,
    message: string,
    payment?: PaymentDetails,
  ): Promise<PaymentProblemResult> {
    const problem = { rechargeId, event: "failed" as const, code, message, actionUrl: null };
    return this.run((tx) => applyPaymentProblem(tx, { ...problem, payment }));
  }

  /** A payment that needs the customer: as a failure, with the link to complete it. */
  rechargeNeedsAction(
    rechargeId: string,
    code: string,
    message: string,
    actionUrl: string | null,
    payment?: PaymentDetails,
  ): Promise<PaymentProblemResult> {
    const problem = { rechargeId, event: "requires_action" as const, code, message, actionUrl };
    return this.run((tx) => applyPaymentProblem(tx, { ...problem, payment }));
  }

  // ---------------------------------------------------------------- alarm

  /**
   * The checkpoint (settles the open minutes), the outbox re-sent, a pause lifted when the
   * month turned, and alarm-driven cycles started when due.
   */
  override async alarm(): Promise<void> {
    this.alarms.fired();
    const now = this.now();
    const active = this.settle(now);
    await this.outbox.flush();
    await this.run(resumeIfMonthTurned, now);
    const s = this.current();
    if (s && s.stripe_cycles === 0 && s.cycle_ends_at <= now) {
      const { start, end } = currentAlarmCycle(s.cycle_ends_at, now);
      const ref = `cycle:${s.account_id}:${start}`;
      const cycle = { plan: s.plan, version: s.plan_version, startsAt: start, endsAt: end };
      await this.startCycle({ ref, ...cycle, source: "alarm" });
    }
    await this.leaseRecall(now);
    const outboxWaiting = hasOutbox(this.sql);
    const next = alarmsAfterAlarm({ s: this.s, active, outboxWaiting, now: this.now() });
    for (const at of next) this.alarms.schedule(at);
  }

  /** The checkpoint (`checkpoint`), then memory rebuilt from storage. True: there was any. */
  private settle(now: number): boolean {
    const active = checkpoint(this.ctx.storage, now);
    if (active !== null) this.reload();
    return active === true;
  }

  private scheduleCycleAlarm(): void {
    if (this.s) this.alarms.schedule(cycleAlarm(this.s));
  }

  // ---------------------------------------------------------------- escrow shards (docs/ledger-shards.md)

  leaseTake(input: LeaseTakeInput) {
    return this.leased((tx) => applyLeaseTake(tx, input));
  }

  leaseClose(input: LeaseCloseInput) {
    return this.leased((tx) => applyLeaseClose(tx, input));
  }

  /** A request no shard could cover: refused only once every lease is recalled. */
  leaseDebit(cost: number, ref: string, apiKeyId?: string): Promise<DebitResult> {
    const short = () =>
      wholeAccountShort(this.sql, this.s ? liveBalance(this.s, this.open) : NONE, cost);
    return debitRecalling(
      () => this.debit(cost, ref, apiKeyId),
      short,
      () => this.leaseRecall(),
    );
  }

  /** Recalls every open lease, or those expired by `expiredBy`; returns how many came back. */
  async leaseRecall(expiredBy?: number): Promise<number> {
    const n = await recallLeases(this.env, this.sql, expiredBy, (i) => this.leaseClose(i));
    this.alarms.schedule(nextLeaseAlarm(this.sql, this.now()));
    return n;
  }

  /** As `transact`, without the low-balance step: a lease moves credits, it spends none. */
  private async leased<T>(fn: (tx: Tx) => T): Promise<T> {
    const tx: Tx = { sql: this.sql, now: this.now(), open: this.open, fx: noEffects() };
    const result = this.ctx.storage.transactionSync(() => fn(tx));
    this.reload();
    this.alarms.schedule(nextLeaseAlarm(this.sql, tx.now));
    await this.outbox.afterCommit(tx.fx);
    return result;
  }
}
