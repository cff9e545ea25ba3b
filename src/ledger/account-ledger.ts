/**
 * AccountLedger: one Durable Object per account, the only writer of that account's balance. A
 * thin shell: it keeps memory (`memory.ts`: the state row and the open debits, written through,
 * so the live balance needs no read), runs each command's decide → apply in one
 * `transactionSync` with its follow-ups (`transactions.ts`), and flushes the effects after the
 * commit through its outbox. Pure
 * decisions live in `domain/`, their application in `apply/`, storage steps in `store/`, the
 * follow-ups of every balance change in `follow-ups.ts`, views in `views.ts`, delivery in
 * `outbox-runner.ts`, the alarm's times in `domain/alarms.ts`, the debits' group commit in
 * `debit-batch.ts`. The hot path (`debit`) reads no row; debits decided together share one
 * row write (one per account-minute), and each is answered after it committed. Every other
 * mutation first writes the pending debits, reads the state row afresh, ends by following the
 * low-balance alert, and refreshes memory after the commit. Checkpoints run in the alarm, armed
 * at most once per hour of activity. Business outcomes are returned, not thrown.
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
import { writeAlone } from "./debit-batch";
import { alarmsAfterAlarm, cycleAlarm, settleDue } from "./domain/alarms";
import { currentAlarmCycle } from "./domain/cycles";
import { debitAnswer, debitOutcome } from "./domain/decisions";
import { groupCommitMode } from "./domain/group-commit";
import type { AlertSettings } from "./domain/low-balance";
import { clockMarginMs } from "./domain/recent-debits";
import {
  type BalanceView,
  type Buckets,
  DEFAULT_SPEND_LIMIT_CENTS,
  withTotal,
} from "./domain/rules";
// The commands' inputs and results (the routes and tests import them from here).
import type * as T from "./domain/types";
import { resumeIfMonthTurned, triggerRecharge } from "./follow-ups";
import { LedgerMemory } from "./memory";
import { OutboxRunner } from "./outbox-runner";
import { debitRecalling, nextLeaseAlarm, recallLeases, wholeAccountShort } from "./shards/recall";
import { checkpoint } from "./store/aggregates";
import { awaitingAction, findRecharge, hasOutbox, pendingRecharges } from "./store/recharges";
import { ensureSchema } from "./store/schema";
import { readStateRow } from "./store/state";
import {
  keysLastUsed,
  minuteRows,
  ringWindowStart,
  type UsageRowWithPeak,
  usageRows,
} from "./store/usage";
import { LedgerTransactions } from "./transactions";
import { accountOf, alertsOf, auditOf, autoRechargeOf, limitsOf } from "./views";

export { SETTLE_EVERY_MS } from "./domain/alarms";
export type * from "./domain/types";
export { DEFAULT_SPEND_LIMIT_CENTS };

const NONE: Buckets = { monthly: 0, purchased: 0 };

export class AccountLedger extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly alarms: AlarmClock;
  private readonly outbox: OutboxRunner;
  /** The state row, open debits, rate window, revoked keys, recent debits (memory.ts). */
  private readonly m: LedgerMemory;
  /** Commits each command with its follow-ups (transactions.ts). */
  private readonly tx: LedgerTransactions;
  /** Set only by a test (`testSetClock`); null: the real clock. */
  private testClock: number | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.alarms = new AlarmClock(ctx.storage);
    this.outbox = new OutboxRunner(this.sql, env, this.alarms);
    const mode = groupCommitMode(env.LEDGER_GROUP_COMMIT);
    const clock = () => this.now();
    this.m = new LedgerMemory(ctx.storage, mode, () => this.scheduleSettle(), clock);
    this.tx = new LedgerTransactions(ctx.storage, this.m, this.outbox, this.alarms, clock);
    ensureSchema(ctx.storage);
    this.m.reload();
    ctx.blockConcurrencyWhile(() => this.alarms.load());
  }

  // ---------------------------------------------------------------- memory and transactions

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
  private view<R>(of: (sql: SqlStorage, s: T.StateRow, now: number) => R): R | null {
    const s = this.m.current();
    return s ? of(this.sql, s, this.now()) : null;
  }

  /** The account as its ledger holds it, read in real time. */
  snapshot(): T.LedgerAccount | null {
    return this.view(accountOf);
  }

  /** The spending limit and what this month's purchases used of it. */
  limits(): T.LimitsState | null {
    return this.view(limitsOf);
  }

  balance(): BalanceView {
    return withTotal(this.m.current() ?? NONE);
  }

  autoRecharge(): T.AutoRechargeState | null {
    return this.view(autoRechargeOf);
  }

  recharge(id: string): T.RechargeView | null {
    return findRecharge(this.sql, id);
  }

  /** The ledger replayed against the balance in memory and in storage (money rule 4). */
  audit(): T.AuditResult {
    this.m.flush();
    return auditOf(this.sql, this.m.live());
  }

  /**
   * The account's usage rows whose period starts in [start, end) (unix seconds), at the finest
   * grain kept: minutes for the last day, hours for 90 days, days before.
   */
  usage(start: number, end: number, opts: T.UsageQuery = {}): UsageRowWithPeak[] {
    const now = this.now();
    this.m.flush();
    // Minute rows come from the ring alone, settled or not.
    if (opts.minutes) return minuteRows(this.sql, start, end, now, opts.byKey ?? false);
    const s = readStateRow(this.sql);
    // Hours before the ring's window are complete only once their minutes are settled.
    if (s && s.compacted_until < ringWindowStart(now)) this.settle(now);
    return usageRows(this.sql, start, end, now, opts.byKey ?? false);
  }

  /** Each key's last minute with a debit (unix seconds), by key id; no key, no entry. */
  keysLastUsed(): Record<string, number> {
    this.m.flush();
    const s = readStateRow(this.sql);
    return s ? keysLastUsed(this.sql, s.compacted_until) : {};
  }

  /** Purchases waiting for the customer to authenticate, oldest first (the Billing page). */
  awaitingAction(): T.RechargeView[] {
    return awaitingAction(this.sql);
  }

  /** Recharges still pending, oldest first (for the reconciler and the dashboard). */
  pendingRecharges(): T.RechargeView[] {
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
   * Reads no row: the balance, settings, revoked keys and rate window are in memory. Decided
   * at once, in arrival order; the common debit then joins the pending write (group commit,
   * memory.ts) and is answered once that committed. Near the threshold, the alert level or a
   * ring to settle it writes alone, after the pending ones, and reads what the trigger needs.
   */
  debit(cost: number, ref: string, apiKeyId?: string): Promise<T.DebitResult> {
    return this.take(cost, ref, apiKeyId, true);
  }

  /** Debits one isolate coalesced (gateway/debit-lanes.ts): decided in order, each on its own. */
  async debitMany(items: T.DebitItem[]): Promise<T.DebitOutcome[]> {
    const taken = items.map((i) => this.take(i.cost, i.ref, i.key, true));
    return (await Promise.allSettled(taken)).map(debitOutcome);
  }

  /** The debit; `final: false` (a sharded account's, before its recall) opens no episode. */
  private async take(cost: number, ref: string, apiKeyId: string | undefined, final: boolean) {
    // Not stored: the minute and the amounts identify the debit for its refund; memory keeps
    // the ref only to answer for a reply the gateway never got (`refund` with `sentAt`).
    const now = this.now();
    const s = this.m.s;
    const d = this.m.decide(cost, ref, apiKeyId, now);
    if (d.kind === "refuse") return debitAnswer(d);
    if (d.kind === "insufficient") {
      // Decided on the pending takes: answered once they are written (or failed with them).
      const answer = this.m.after(debitAnswer(d));
      if (d.resume) await this.tx.run(triggerRecharge);
      if (!final || this.m.exhausted || !s) return answer;
      // The episode's mark only once the takes it was decided on are written.
      const refused = await answer;
      this.tx.firstRefusal(s.account_id, d.balance, cost, now);
      return refused;
    }
    if (!s) throw new Error("unreachable: a debit is taken only from an initialized ledger");
    const keyId = apiKeyId ?? "";
    const answer = debitAnswer(d);
    // Committed: remembered at once, before anything else here can throw (recent-debits.ts).
    const charge = { minute: d.minute, ...d.take, key_id: keyId };
    const remember = () => this.m.recent.remember(ref, charge, Date.now());
    // Group commit: the next decision already sees this take; the write comes with the batch.
    const joined = this.m.join(d, keyId, answer, remember);
    if (joined) return joined;
    // Its own write, after the pending batch's (a failed batch fails this decision with it).
    const failed = this.m.flush();
    if (failed) throw failed;
    const fx = writeAlone(this.ctx.storage, this.m.lastMinute, () =>
      applyDebit(this.sql, d, s.compacted_until, keyId, now, this.m.lastMinute),
    );
    remember();
    this.m.tookAlone(d);
    this.scheduleSettle();
    await this.outbox.afterCommit(fx);
    return answer;
  }

  /** Compared in memory: an alarm is written only when none is due by then (once an hour). */
  private scheduleSettle(): void {
    if (this.m.s) this.alarms.schedule(settleDue(this.m.s));
  }

  /**
   * Refuses `keyId` on every later debit, at once and in every isolate (the isolates' key
   * caches may still map it to this account). Idempotent. Called before D1 marks it revoked.
   */
  revokeKey(keyId: string): void {
    this.m.revoked.revoke(keyId, this.now());
  }

  /** Reverses one debit (money rule 8; `applyRefund`). A refund never re-arms the alert. */
  refund(debitRef: string, charge: T.DebitCharge | null, sentAt?: number): T.RefundResult {
    const margin = clockMarginMs(this.env.LEDGER_CLOCK_MARGIN_MS);
    const memory = { recent: this.m.recent, clockMarginMs: margin };
    return this.tx.mutate((tx) => applyRefund(tx, { debitRef, charge, sentAt }, memory), false);
  }

  // ---------------------------------------------------------------- commands (apply/)

  /** Creates the ledger (`applyInit`); a second call changes nothing. */
  init(input: { accountId: string; plan: PlanId; now?: number }): T.LedgerAccount {
    this.tx.mutate((tx) => applyInit(tx, input), true, input.now ?? this.now());
    // A second call changes nothing, open debits included: memory follows storage.
    this.m.reload();
    // The first checkpoint is armed now, so the first hour of debits sets no alarm.
    if (this.m.s) this.alarms.schedule(Math.min(settleDue(this.m.s), this.m.s.cycle_ends_at));
    return this.snapshot() as T.LedgerAccount;
  }

  /** An operator's signed adjustment, audited and idempotent by `ref` (`applyAdjust`). */
  adjust(input: T.AdjustInput): Promise<T.AdjustResult> {
    return this.tx.run((tx) => applyAdjust(tx, input));
  }

  /** A billing cycle's monthly credits, idempotent by `ref` (`applyStartCycle`). */
  async startCycle(input: T.CycleInput): Promise<T.CycleResult> {
    const { result, fx } = this.tx.transact((tx) => applyStartCycle(tx, input));
    if (result.ok) this.scheduleCycleAlarm();
    await this.outbox.afterCommit(fx);
    return result;
  }

  /** A plan change, if newer than the last seen; no credits (`applyPlanChange`). */
  changePlan(input: T.PlanChangeInput): T.PlanChangeResult {
    const result = this.tx.mutate((tx) => applyPlanChange(tx, input));
    this.scheduleCycleAlarm();
    return result;
  }

  /** A paid upgrade invoice's monthly credits, idempotent by `ref` (`applyUpgrade`). */
  grantUpgrade(input: T.UpgradeInput): Promise<T.UpgradeResult> {
    return this.tx.run((tx) => applyUpgrade(tx, input));
  }

  /**
   * Suspends the account (`reason` is shown to its people) or lifts it (null). The debit reads
   * the flag from the state row it holds in memory (`decideDebit`), so a suspended account's
   * requests are refused in the same call, at no extra read (`applySuspension`).
   */
  setSuspension(suspension: { reason: string } | null): Promise<T.SuspendResult> {
    return this.tx.run((tx) => applySuspension(tx, suspension));
  }

  /** The payment method recharges created from now on pay with (null: none). */
  setPaymentMethod(paymentMethodId: string | null): void {
    this.tx.mutate((tx) => applyPaymentMethod(tx, paymentMethodId));
  }

  /** The spending limit and the rate limit override (`applyLimits`). */
  setLimits(input: T.LimitsInput): Promise<T.LimitsResult> {
    return this.tx.run((tx) => applyLimits(tx, input));
  }

  /** Auto-recharge's settings (`applyAutoRecharge`). */
  updateAutoRecharge(input: T.AutoRechargeInput): Promise<T.SettingsResult> {
    return this.tx.run((tx) => applyAutoRecharge(tx, input));
  }

  /** The low-balance level, null: no alert (`applyAlerts`). */
  setAlerts(input: { lowBalanceCredits: number | null }): T.AlertsResult {
    return this.tx.mutate((tx) => applyAlerts(tx, input));
  }

  /** A manual top-up through the recharge pipeline, idempotent by `rechargeId`. */
  requestTopUp(input: { rechargeId: string; package: PackageId }): Promise<T.TopUpResult> {
    return this.tx.run((tx) => applyTopUp(tx, input));
  }

  /**
   * A paid recharge's credits, once per recharge id. This and the two below own the recharge's
   * status: D1's purchase row and the email follow from the outbox, before the call returns.
   */
  grantPurchased(
    rechargeId: string,
    credits: number,
    payment?: T.PaymentDetails,
  ): Promise<T.GrantResult> {
    return this.tx.run((tx) => applyGrantPurchased(tx, { rechargeId, credits, payment }));
  }

  /** A failed payment: no credits, auto-recharge off, the failure kept (money rule 6). */
  rechargeFailed(
    rechargeId: string,
    code: string,
    message: string,
    payment?: T.PaymentDetails,
  ): Promise<T.PaymentProblemResult> {
    const problem = { rechargeId, event: "failed" as const, code, message, actionUrl: null };
    return this.tx.run((tx) => applyPaymentProblem(tx, { ...problem, payment }));
  }

  /** A payment that needs the customer: as a failure, with the link to complete it. */
  rechargeNeedsAction(
    rechargeId: string,
    code: string,
    message: string,
    actionUrl: string | null,
    payment?: T.PaymentDetails,
  ): Promise<T.PaymentProblemResult> {
    const problem = { rechargeId, event: "requires_action" as const, code, message, actionUrl };
    return this.tx.run((tx) => applyPaymentProblem(tx, { ...problem, payment }));
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
    await this.tx.run(resumeIfMonthTurned, now);
    const s = this.m.current();
    if (s && s.stripe_cycles === 0 && s.cycle_ends_at <= now) {
      const { start, end } = currentAlarmCycle(s.cycle_ends_at, now);
      const ref = `cycle:${s.account_id}:${start}`;
      const cycle = { plan: s.plan, version: s.plan_version, startsAt: start, endsAt: end };
      await this.startCycle({ ref, ...cycle, source: "alarm" });
    }
    await this.leaseRecall(now);
    const outboxWaiting = hasOutbox(this.sql);
    const next = alarmsAfterAlarm({ s: this.m.s, active, outboxWaiting, now: this.now() });
    for (const at of next) this.alarms.schedule(at);
  }

  /** The checkpoint (`checkpoint`), then memory rebuilt from storage. True: there was any. */
  private settle(now: number): boolean {
    this.m.flush();
    const active = checkpoint(this.ctx.storage, now);
    if (active !== null) this.m.reload();
    return active === true;
  }

  private scheduleCycleAlarm(): void {
    if (this.m.s) this.alarms.schedule(cycleAlarm(this.m.s));
  }

  // ---------------------------------------------------------------- escrow shards (docs/ledger-shards.md)

  leaseTake(input: LeaseTakeInput) {
    return this.tx.leased((tx) => applyLeaseTake(tx, input));
  }

  leaseClose(input: LeaseCloseInput) {
    return this.tx.leased((tx) => applyLeaseClose(tx, input));
  }

  /**
   * A request no shard could cover: refused only once every lease is recalled, and only that
   * final refusal can open a `credits.exhausted` episode.
   */
  async leaseDebit(cost: number, ref: string, apiKeyId?: string): Promise<T.DebitResult> {
    const short = () => wholeAccountShort(this.sql, this.m.live() ?? NONE, cost);
    const take = () => this.take(cost, ref, apiKeyId, false);
    const r = await debitRecalling(take, short, () => this.leaseRecall());
    const s = this.m.s;
    if (!r.ok && r.reason === "insufficient_credits" && s)
      this.tx.firstRefusal(s.account_id, r.balance, cost, this.now());
    return r;
  }

  /** Recalls every open lease, or those expired by `expiredBy`; returns how many came back. */
  async leaseRecall(expiredBy?: number): Promise<number> {
    const n = await recallLeases(this.env, this.sql, expiredBy, (i) => this.leaseClose(i));
    this.alarms.schedule(nextLeaseAlarm(this.sql, this.now()));
    return n;
  }
}
