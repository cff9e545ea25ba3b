/**
 * AccountLedger: one Durable Object per account, the only writer of that account's balance.
 *
 * Storage (SQLite, created in the constructor, gated by `meta.schema_version`):
 * - `state`     one row: account id, plan, the two buckets (CHECK >= 0), cycle bounds,
 *               auto-recharge settings, payment-method flag, last recharge failure.
 * - `ledger`    every balance change: unique `ref` (debit id, `refund:<debit>`, recharge id,
 *               invoice id, adjustment id), signed deltas per bucket. Replaying it gives the
 *               balance exactly (money rule 4).
 * - `recharges` purchases this account started (auto-recharge or top-up) and their outcome.
 *               At most one auto-recharge is `pending` at a time.
 * - `outbox`    queue messages written in the same transaction as the recharge that needs them;
 *               deleted once the Queue accepted them, re-sent by the alarm otherwise.
 * - `usage`     per-minute rollups (requests, credits) with a dirty flag; the alarm flushes
 *               dirty minutes to D1 so the proxied request never writes D1.
 *
 * Every mutation is one `transactionSync`: no await between the check and the write, so the
 * runtime's serialization is the only lock needed. Business outcomes are returned, not thrown.
 */
import { DurableObject } from "cloudflare:workers";
import { dbFor } from "../db/client";
import { recordMonthlyGrant, recordPendingPurchase } from "../db/transactions";
import { upsertUsageMinutes } from "../db/usage-minutes";
import { mailAccount } from "../email/account-mail";
import * as templates from "../email/templates";
import type { Bindings } from "../env";
import {
  CURRENCY,
  DEFAULT_PACKAGE,
  isPackageId,
  PACKAGES,
  type PackageId,
  PLANS,
  type PlanId,
  RECHARGE_THRESHOLD,
} from "../pricing";
import { pendingPurchaseOf, RechargeJob } from "../recharge/messages";
import { type RateDecision, type RateWindow, takeFromWindow } from "./rate-window";
import {
  addOneMonth,
  applyDeltas,
  type BalanceView,
  type Buckets,
  fitsSpendLimit,
  minuteOf,
  monthStart,
  nextMonthStart,
  shouldTriggerRecharge,
  splitDebit,
  upgradeGrant,
  withTotal,
} from "./rules";

const SCHEMA_VERSION = 3;
/** Where a new account's monthly spending limit starts (money rule 10). */
export const DEFAULT_SPEND_LIMIT_CENTS = 20_000;
const OUTBOX_RETRY_MS = 5_000;
const USAGE_FLUSH_MS = 20_000;
const USAGE_JITTER_MS = 20_000;

export type RechargeKind = "auto_recharge" | "top_up";
/**
 * `requires_action`: the payment needs the customer (authentication) on the hosted invoice
 * page; nothing was granted, and it is still in flight until paid there or voided.
 */
export type RechargeStatus = "pending" | "requires_action" | "succeeded" | "failed";

export interface AutoRechargeSettings {
  enabled: boolean;
  package: PackageId | null;
  threshold: number;
  pending: boolean;
  /** Set while this month's purchases leave no room for another package under the limit. */
  paused: null | "spending_limit_reached";
  last_failure: null | {
    at: string;
    code: string;
    message: string;
    /** Where the customer completes a payment that needs authentication. */
    action_url: string | null;
    recharge_id: string | null;
  };
}

export interface SpendLimits {
  monthly_spend_limit_cents: number | null;
  spent_this_month_cents: number;
  period_ends_at: string;
}

export interface AccountSnapshot {
  account_id: string;
  plan: PlanId;
  monthly: number;
  purchased: number;
  total: number;
  monthly_allowance: number;
  cycle_started_at: string;
  cycle_ends_at: string;
  has_payment_method: boolean;
  auto_recharge: AutoRechargeSettings;
  limits: SpendLimits;
  rate_limit_per_minute: number;
  /** An operator's per-account rate limit; null means the plan's. */
  rate_limit_override: number | null;
}

export interface RechargeView {
  id: string;
  kind: RechargeKind;
  package: PackageId;
  credits: number;
  amount_cents: number;
  status: RechargeStatus;
  created_at: string;
}

export type DebitResult =
  | { ok: true; charged: Buckets; balance: BalanceView; rate: RateDecision | null }
  | { ok: false; reason: "insufficient_credits"; balance: BalanceView; rate: RateDecision | null }
  | { ok: false; reason: "rate_limited"; rate: RateDecision }
  | { ok: false; reason: "key_revoked"; rate: null };

export type AdjustResult =
  | { ok: true; balance: BalanceView; replayed: boolean }
  | {
      ok: false;
      reason: "insufficient_credits" | "not_initialized" | "idempotency_conflict";
      balance: BalanceView;
    };

export type SettingsResult =
  | { ok: true; settings: AutoRechargeSettings }
  | { ok: false; reason: "payment_method_required" | "not_initialized" };

export type TopUpResult =
  | { ok: true; recharge: RechargeView; replayed: boolean }
  | {
      ok: false;
      reason:
        | "payment_method_required"
        | "not_initialized"
        | "idempotency_conflict"
        | "spending_limit_reached";
    };

export interface AuditResult {
  ledger_total: number;
  balance_total: number;
  consistent: boolean;
  ledger_monthly: number;
  ledger_purchased: number;
  monthly: number;
  purchased: number;
  entries: number;
}

type StateRow = {
  account_id: string;
  plan: PlanId;
  monthly: number;
  purchased: number;
  cycle_started_at: number;
  cycle_ends_at: number;
  stripe_cycles: number;
  plan_version: number;
  auto_enabled: number;
  auto_package: string | null;
  has_payment_method: number;
  last_failure_at: number | null;
  last_failure_code: string | null;
  last_failure_message: string | null;
  last_failure_action_url: string | null;
  last_failure_recharge_id: string | null;
  payment_method_id: string | null;
  spend_limit_cents: number | null;
  rate_limit_override: number | null;
  paused_period: number | null;
  cycle_max_monthly: number;
};

type RechargeRow = {
  id: string;
  kind: RechargeKind;
  package: PackageId;
  credits: number;
  amount_cents: number;
  status: RechargeStatus;
  created_at: number;
};

const iso = (ms: number) => new Date(ms).toISOString();
const ZERO: BalanceView = { monthly: 0, purchased: 0, total: 0 };

export class AccountLedger extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /** The alarm time we last set, so scheduling never pushes an earlier alarm later. */
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.ensureSchema();
    ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  private ensureSchema(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const row = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
      .toArray()[0];
    const version = row ? Number(row.value) : 0;
    if (version >= SCHEMA_VERSION) return;
    this.ctx.storage.transactionSync(() => {
      if (version < 2) this.createTablesV2();
      if (version < 3) {
        // v3: the card a recharge pays with, the spending limit, the rate limit override, the
        // pause, and the largest allowance granted this cycle. Existing accounts get the
        // default limit, and their cycle's bound is their plan's allowance.
        this.sql.exec("ALTER TABLE state ADD COLUMN payment_method_id TEXT");
        this.sql.exec(
          `ALTER TABLE state ADD COLUMN spend_limit_cents INTEGER DEFAULT ${DEFAULT_SPEND_LIMIT_CENTS}`,
        );
        this.sql.exec("ALTER TABLE state ADD COLUMN rate_limit_override INTEGER");
        this.sql.exec("ALTER TABLE state ADD COLUMN paused_period INTEGER");
        this.sql.exec("ALTER TABLE state ADD COLUMN cycle_max_monthly INTEGER NOT NULL DEFAULT 0");
        for (const plan of Object.values(PLANS)) {
          this.sql.exec(
            "UPDATE state SET cycle_max_monthly = ? WHERE plan = ?",
            plan.monthlyCredits,
            plan.id,
          );
        }
        this.sql.exec("ALTER TABLE recharges ADD COLUMN payment_method TEXT");
        this.sql.exec("ALTER TABLE state ADD COLUMN last_failure_action_url TEXT");
        this.sql.exec("ALTER TABLE state ADD COLUMN last_failure_recharge_id TEXT");
      }
      this.sql.exec(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        String(SCHEMA_VERSION),
      );
    });
  }

  /** The tables as schema version 2 had them; later versions alter them in place. */
  private createTablesV2(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account_id TEXT NOT NULL,
        plan TEXT NOT NULL,
        monthly INTEGER NOT NULL CHECK (monthly >= 0),
        purchased INTEGER NOT NULL CHECK (purchased >= 0),
        cycle_started_at INTEGER NOT NULL,
        cycle_ends_at INTEGER NOT NULL,
        stripe_cycles INTEGER NOT NULL DEFAULT 0,
        plan_version INTEGER NOT NULL DEFAULT 0,
        auto_enabled INTEGER NOT NULL DEFAULT 0,
        auto_package TEXT,
        has_payment_method INTEGER NOT NULL DEFAULT 0,
        last_failure_at INTEGER,
        last_failure_code TEXT,
        last_failure_message TEXT
      )`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ref TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        monthly_delta INTEGER NOT NULL,
        purchased_delta INTEGER NOT NULL,
        at INTEGER NOT NULL,
        note TEXT
      )`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS recharges (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        package TEXT NOT NULL,
        credits INTEGER NOT NULL,
        amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        settled_at INTEGER,
        failure_code TEXT
      )`);
    this.sql.exec(
      "CREATE INDEX IF NOT EXISTS recharges_pending ON recharges (kind, status) WHERE status = 'pending'",
    );
    this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      )`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS usage (
        minute INTEGER PRIMARY KEY,
        requests INTEGER NOT NULL,
        credits INTEGER NOT NULL,
        dirty INTEGER NOT NULL DEFAULT 1
      )`);
    // v2: keys revoked since this object knew them; checked on every debit.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS revoked_keys (
        key_id TEXT PRIMARY KEY,
        revoked_at INTEGER NOT NULL
      )`);
  }

  // ---------------------------------------------------------------- reads

  private state(): StateRow | null {
    return this.sql.exec<StateRow>("SELECT * FROM state WHERE id = 1").toArray()[0] ?? null;
  }

  private pendingAutoRecharge(): boolean {
    return (
      this.sql
        .exec("SELECT 1 FROM recharges WHERE kind = 'auto_recharge' AND status = 'pending' LIMIT 1")
        .toArray().length > 0
    );
  }

  private settingsOf(s: StateRow): AutoRechargeSettings {
    return {
      enabled: s.auto_enabled === 1,
      package: isPackageId(s.auto_package) ? s.auto_package : null,
      threshold: RECHARGE_THRESHOLD,
      pending: this.pendingAutoRecharge(),
      paused: s.paused_period === monthStart(Date.now()) ? "spending_limit_reached" : null,
      last_failure:
        s.last_failure_at === null
          ? null
          : {
              at: iso(s.last_failure_at),
              code: s.last_failure_code ?? "unknown",
              message: s.last_failure_message ?? "",
              action_url: s.last_failure_action_url,
              recharge_id: s.last_failure_recharge_id,
            },
    };
  }

  /** The account as the dashboard shows it, read in real time. Null until `init`. */
  snapshot(): AccountSnapshot | null {
    const s = this.state();
    if (!s) return null;
    return {
      account_id: s.account_id,
      plan: s.plan,
      ...withTotal(s),
      monthly_allowance: PLANS[s.plan].monthlyCredits,
      cycle_started_at: iso(s.cycle_started_at),
      cycle_ends_at: iso(s.cycle_ends_at),
      has_payment_method: s.has_payment_method === 1,
      auto_recharge: this.settingsOf(s),
      limits: this.limitsOf(s, Date.now()),
      rate_limit_per_minute: rateLimitOf(s),
      rate_limit_override: s.rate_limit_override,
    };
  }

  private limitsOf(s: StateRow, now: number): SpendLimits {
    return {
      monthly_spend_limit_cents: s.spend_limit_cents,
      spent_this_month_cents: this.spentThisMonth(now),
      period_ends_at: iso(nextMonthStart(now)),
    };
  }

  /** Purchases started this calendar month that took or may take money: pending ones count. */
  private spentThisMonth(now: number): number {
    return this.sql
      .exec<{ cents: number }>(
        "SELECT COALESCE(SUM(amount_cents), 0) AS cents FROM recharges WHERE created_at >= ? AND status != 'failed'",
        monthStart(now),
      )
      .one().cents;
  }

  /** The spending limit and what this month's purchases used of it. Null until `init`. */
  limits(): SpendLimits | null {
    const s = this.state();
    return s ? this.limitsOf(s, Date.now()) : null;
  }

  balance(): BalanceView {
    const s = this.state();
    return s ? withTotal(s) : ZERO;
  }

  autoRecharge(): AutoRechargeSettings | null {
    const s = this.state();
    return s ? this.settingsOf(s) : null;
  }

  recharge(id: string): RechargeView | null {
    const row = this.sql.exec<RechargeRow>("SELECT * FROM recharges WHERE id = ?", id).toArray()[0];
    return row ? rechargeView(row) : null;
  }

  /** Replays the ledger and compares it with the stored buckets (money rule 4). */
  audit(): AuditResult {
    const sums = this.sql
      .exec<{ m: number | null; p: number | null; n: number }>(
        "SELECT SUM(monthly_delta) AS m, SUM(purchased_delta) AS p, COUNT(*) AS n FROM ledger",
      )
      .one();
    const b = this.balance();
    const lm = sums.m ?? 0;
    const lp = sums.p ?? 0;
    return {
      ledger_total: lm + lp,
      balance_total: b.total,
      consistent: lm === b.monthly && lp === b.purchased,
      ledger_monthly: lm,
      ledger_purchased: lp,
      monthly: b.monthly,
      purchased: b.purchased,
      entries: sums.n,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Creates the account's ledger with the plan's monthly credits for the current cycle.
   * Safe to call twice: the second call changes nothing.
   */
  init(input: { accountId: string; plan: PlanId; now?: number }): AccountSnapshot {
    const now = input.now ?? Date.now();
    this.ctx.storage.transactionSync(() => {
      if (this.state()) return;
      const allowance = PLANS[input.plan].monthlyCredits;
      this.sql.exec(
        `INSERT INTO state (id, account_id, plan, monthly, purchased, cycle_started_at, cycle_ends_at,
           spend_limit_cents, cycle_max_monthly)
         VALUES (1, ?, ?, ?, 0, ?, ?, ?, ?)`,
        input.accountId,
        input.plan,
        allowance,
        now,
        addOneMonth(now),
        DEFAULT_SPEND_LIMIT_CENTS,
        allowance,
      );
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
    this.scheduleAlarm(this.state()?.cycle_ends_at ?? now);
    return this.snapshot() as AccountSnapshot;
  }

  // ---------------------------------------------------------------- the hot path

  /**
   * Takes `cost` credits, monthly first, all or nothing. `ref` is the gateway's own id for the
   * request (never client-supplied), so a duplicate can only be a replay of the same debit.
   */
  async debit(cost: number, ref: string, apiKeyId?: string): Promise<DebitResult> {
    const now = Date.now();
    let job: OutboxItem | null = null;
    let rate: RateDecision | null = null;
    const result = this.ctx.storage.transactionSync((): DebitResult => {
      const s = this.state();
      if (!s) return { ok: false, reason: "insufficient_credits", balance: ZERO, rate };
      if (apiKeyId && this.revokedKeys().has(apiKeyId))
        return { ok: false, reason: "key_revoked", rate: null };
      // Proxied traffic (a debit for a key) is rate limited; operator and test debits are not.
      if (apiKeyId) {
        rate = takeFromWindow(this.rateWindow, now, rateLimitOf(s));
        if (!rate.allowed) return { ok: false, reason: "rate_limited", rate };
      }
      const take = splitDebit(s, cost);
      if (!take) {
        // An account at zero whose auto-recharge was paused last month resumes now.
        if (s.paused_period !== null && s.paused_period !== monthStart(now))
          job = this.maybeStartAutoRecharge(s, now);
        return { ok: false, reason: "insufficient_credits", balance: withTotal(s), rate };
      }
      if (cost > 0) {
        // Guarded UPDATE: even a bug above cannot take a bucket below zero.
        const updated = this.sql.exec(
          "UPDATE state SET monthly = monthly - ?, purchased = purchased - ? WHERE id = 1 AND monthly >= ? AND purchased >= ?",
          take.monthly,
          take.purchased,
          take.monthly,
          take.purchased,
        ).rowsWritten;
        if (updated !== 1)
          return { ok: false, reason: "insufficient_credits", balance: withTotal(s), rate };
        this.appendLedger(ref, "debit", -take.monthly, -take.purchased, now, null);
      }
      this.sql.exec(
        `INSERT INTO usage (minute, requests, credits, dirty) VALUES (?, 1, ?, 1)
         ON CONFLICT(minute) DO UPDATE SET requests = requests + 1, credits = credits + excluded.credits, dirty = 1`,
        minuteOf(now),
        cost,
      );
      const after = { monthly: s.monthly - take.monthly, purchased: s.purchased - take.purchased };
      job = this.maybeStartAutoRecharge({ ...s, ...after }, now);
      return { ok: true, charged: take, balance: withTotal(after), rate };
    });
    // Jitter: accounts busy in the same second would otherwise all flush to D1 together.
    if (result.ok)
      this.scheduleAlarm(now + USAGE_FLUSH_MS + Math.floor(Math.random() * USAGE_JITTER_MS));
    if (job) await this.deliver(job);
    return result;
  }

  /** Revoked key ids, read once per object from `revoked_keys` (a handful per account). */
  private revoked: Set<string> | null = null;

  private revokedKeys(): Set<string> {
    if (!this.revoked) {
      this.revoked = new Set(
        this.sql
          .exec<{ key_id: string }>("SELECT key_id FROM revoked_keys")
          .toArray()
          .map((r) => r.key_id),
      );
    }
    return this.revoked;
  }

  /**
   * Refuses `keyId` on every later debit, at once and in every isolate (the isolates' key
   * caches may still map it to this account). Idempotent. Called before D1 marks it revoked.
   */
  revokeKey(keyId: string): void {
    this.sql.exec(
      "INSERT INTO revoked_keys (key_id, revoked_at) VALUES (?, ?) ON CONFLICT(key_id) DO NOTHING",
      keyId,
      Date.now(),
    );
    this.revokedKeys().add(keyId);
  }

  /** The account's request window, all keys together; memory only (see rate-window.ts). */
  private readonly rateWindow: RateWindow = { start: 0, count: 0 };

  /**
   * Reverses the debit `debitRef`, returning each credit to the bucket it came from.
   * Idempotent: a second refund of the same debit changes nothing.
   */
  refund(
    debitRef: string,
  ): { ok: true; balance: BalanceView; refunded: boolean } | { ok: false; reason: "not_found" } {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const debit = this.sql
        .exec<{ monthly_delta: number; purchased_delta: number; at: number }>(
          "SELECT monthly_delta, purchased_delta, at FROM ledger WHERE ref = ? AND kind = 'debit'",
          debitRef,
        )
        .toArray()[0];
      if (!debit) return { ok: false as const, reason: "not_found" as const };
      const refundRef = `refund:${debitRef}`;
      if (this.hasLedgerRef(refundRef))
        return { ok: true as const, balance: this.balance(), refunded: false };
      const monthly = -debit.monthly_delta;
      const purchased = -debit.purchased_delta;
      this.sql.exec(
        "UPDATE state SET monthly = monthly + ?, purchased = purchased + ? WHERE id = 1",
        monthly,
        purchased,
      );
      this.appendLedger(refundRef, "refund", monthly, purchased, now, null);
      // The request was not served: it leaves the usage it was counted in.
      this.sql.exec(
        "UPDATE usage SET requests = MAX(requests - 1, 0), credits = MAX(credits - ?, 0), dirty = 1 WHERE minute = ?",
        monthly + purchased,
        minuteOf(debit.at),
      );
      return { ok: true as const, balance: this.balance(), refunded: true };
    });
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
    const now = Date.now();
    let job: OutboxItem | null = null;
    const result = this.ctx.storage.transactionSync((): AdjustResult => {
      const s = this.state();
      if (!s) return { ok: false, reason: "not_initialized", balance: ZERO };
      const earlier = this.sql
        .exec<{ monthly_delta: number; purchased_delta: number }>(
          "SELECT monthly_delta, purchased_delta FROM ledger WHERE ref = ?",
          input.ref,
        )
        .toArray()[0];
      if (earlier) {
        if (
          earlier.monthly_delta !== input.monthly ||
          earlier.purchased_delta !== input.purchased
        ) {
          return { ok: false, reason: "idempotency_conflict", balance: withTotal(s) };
        }
        return { ok: true, balance: withTotal(s), replayed: true };
      }
      const next = applyDeltas(s, { monthly: input.monthly, purchased: input.purchased });
      if (!next) return { ok: false, reason: "insufficient_credits", balance: withTotal(s) };
      this.sql.exec(
        "UPDATE state SET monthly = ?, purchased = ? WHERE id = 1",
        next.monthly,
        next.purchased,
      );
      this.appendLedger(input.ref, "adjustment", input.monthly, input.purchased, now, input.reason);
      job = this.maybeStartAutoRecharge({ ...s, ...next }, now);
      return { ok: true, balance: withTotal(next), replayed: false };
    });
    if (job) await this.deliver(job);
    return result;
  }

  // ---------------------------------------------------------------- auto-recharge

  /**
   * Records the customer's payment method on file (null: none). A recharge created from now on
   * pays with it, whatever changes later (a retry must send exactly its first attempt's
   * parameters under the same Stripe idempotency key).
   */
  setPaymentMethod(paymentMethodId: string | null): void {
    this.sql.exec(
      "UPDATE state SET has_payment_method = ?, payment_method_id = ? WHERE id = 1",
      paymentMethodId ? 1 : 0,
      paymentMethodId,
    );
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
    | { ok: true; limits: SpendLimits; rate_limit_per_minute: number }
    | { ok: false; reason: "not_initialized" }
  > {
    const now = Date.now();
    let job: OutboxItem | null = null;
    const result = this.ctx.storage.transactionSync(() => {
      const s = this.state();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const spend =
        input.spendLimitCents === undefined ? s.spend_limit_cents : input.spendLimitCents;
      const rate =
        input.rateLimitPerMinute === undefined ? s.rate_limit_override : input.rateLimitPerMinute;
      this.sql.exec(
        "UPDATE state SET spend_limit_cents = ?, rate_limit_override = ?, paused_period = NULL WHERE id = 1",
        spend,
        rate,
      );
      const next = this.state() as StateRow;
      // Re-decided from scratch: still over the limit pauses again (without a second email:
      // the email's reference is the month).
      job = this.maybeStartAutoRecharge(next, now);
      const after = this.state() as StateRow;
      return {
        ok: true as const,
        limits: this.limitsOf(after, now),
        rate_limit_per_minute: rateLimitOf(after),
      };
    });
    if (job) await this.deliver(job);
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
    const now = Date.now();
    let job: OutboxItem | null = null;
    const result = this.ctx.storage.transactionSync((): SettingsResult => {
      const s = this.state();
      if (!s) return { ok: false, reason: "not_initialized" };
      if (input.enabled === true && s.has_payment_method !== 1) {
        return { ok: false, reason: "payment_method_required" };
      }
      const enabled = input.enabled ?? s.auto_enabled === 1;
      const pkg =
        input.package ??
        (isPackageId(s.auto_package) ? s.auto_package : enabled ? DEFAULT_PACKAGE : null);
      this.sql.exec(
        "UPDATE state SET auto_enabled = ?, auto_package = ? WHERE id = 1",
        enabled ? 1 : 0,
        pkg,
      );
      const next = this.state() as StateRow;
      job = this.maybeStartAutoRecharge(next, now);
      return { ok: true, settings: this.settingsOf(next) };
    });
    if (job) await this.deliver(job);
    return result;
  }

  /**
   * Starts a manual top-up through the recharge pipeline. `rechargeId` is derived from the
   * client's Idempotency-Key when it sent one, so a retried request finds its first top-up.
   */
  async requestTopUp(input: { rechargeId: string; package: PackageId }): Promise<TopUpResult> {
    const now = Date.now();
    let job: OutboxItem | null = null;
    const result = this.ctx.storage.transactionSync((): TopUpResult => {
      const s = this.state();
      if (!s) return { ok: false, reason: "not_initialized" };
      const existing = this.recharge(input.rechargeId);
      if (existing) {
        if (existing.package !== input.package)
          return { ok: false, reason: "idempotency_conflict" };
        return { ok: true, recharge: existing, replayed: true };
      }
      if (s.has_payment_method !== 1) return { ok: false, reason: "payment_method_required" };
      const price = PACKAGES[input.package].priceCents;
      if (!fitsSpendLimit(this.spentThisMonth(now), price, s.spend_limit_cents)) {
        return { ok: false, reason: "spending_limit_reached" };
      }
      job = this.createRecharge(s, input.rechargeId, "top_up", input.package, now);
      return {
        ok: true,
        recharge: this.recharge(input.rechargeId) as RechargeView,
        replayed: false,
      };
    });
    if (job) await this.deliver(job);
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
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const s = this.state();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      const r = this.recharge(rechargeId);
      if (!r) return { ok: false as const, reason: "unknown_recharge" as const };
      if (r.credits !== credits) return { ok: false as const, reason: "credits_mismatch" as const };
      if (this.hasLedgerRef(rechargeId))
        return { ok: true as const, granted: false, balance: withTotal(s) };
      this.sql.exec("UPDATE state SET purchased = purchased + ? WHERE id = 1", credits);
      this.appendLedger(rechargeId, "purchase", 0, credits, now, `${r.kind} ${r.package}`);
      this.sql.exec(
        "UPDATE recharges SET status = 'succeeded', settled_at = ?, failure_code = NULL WHERE id = ?",
        now,
        rechargeId,
      );
      this.sql.exec(
        `UPDATE state SET last_failure_at = NULL, last_failure_code = NULL, last_failure_message = NULL,
           last_failure_action_url = NULL, last_failure_recharge_id = NULL WHERE id = 1`,
      );
      return { ok: true as const, granted: true, balance: this.balance() };
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
    return this.recordPaymentProblem(rechargeId, "failed", code, message, null);
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
    return this.recordPaymentProblem(rechargeId, "requires_action", code, message, actionUrl);
  }

  private recordPaymentProblem(
    rechargeId: string,
    status: "failed" | "requires_action",
    code: string,
    message: string,
    actionUrl: string | null,
  ):
    | { ok: true; changed: boolean }
    | { ok: false; reason: "unknown_recharge" | "already_succeeded" } {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const r = this.recharge(rechargeId);
      if (!r) return { ok: false as const, reason: "unknown_recharge" as const };
      if (r.status === "succeeded")
        return { ok: false as const, reason: "already_succeeded" as const };
      // Failed is final; waiting for the customer can only become failed or succeeded.
      if (r.status === "failed" || r.status === status) {
        return { ok: true as const, changed: false };
      }
      this.sql.exec(
        "UPDATE recharges SET status = ?, settled_at = ?, failure_code = ? WHERE id = ?",
        status,
        status === "failed" ? now : null,
        code,
        rechargeId,
      );
      this.sql.exec(
        `UPDATE state SET auto_enabled = 0, last_failure_at = ?, last_failure_code = ?,
           last_failure_message = ?, last_failure_action_url = ?, last_failure_recharge_id = ?
         WHERE id = 1`,
        now,
        code,
        message,
        status === "requires_action" ? actionUrl : null,
        rechargeId,
      );
      return { ok: true as const, changed: true };
    });
  }

  /** Recharges still pending, oldest first (for the reconciler and the dashboard). */
  pendingRecharges(): RechargeView[] {
    return this.sql
      .exec<RechargeRow>("SELECT * FROM recharges WHERE status = 'pending' ORDER BY created_at")
      .toArray()
      .map(rechargeView);
  }

  // ---------------------------------------------------------------- cycles

  /**
   * Starts a billing cycle: monthly credits are set to the plan's allowance (unused monthly
   * credits do not carry over; purchased credits are untouched). Idempotent by `ref`
   * (an invoice id, or `cycle:<start>` for alarm-driven cycles).
   *
   * Order-independent: the invoice's plan is taken only if it is newer (`version`) than the
   * last plan change seen, and an invoice for an older period never moves the cycle back.
   */
  async startCycle(input: {
    ref: string;
    plan: PlanId;
    version: number;
    startsAt: number;
    endsAt: number;
    source: "stripe" | "alarm";
  }): Promise<
    | { ok: true; started: boolean; granted: number; balance: BalanceView }
    | { ok: false; reason: "not_initialized" }
  > {
    const now = Date.now();
    let job: OutboxItem | null = null;
    const result = this.ctx.storage.transactionSync(() => {
      const s = this.state();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      if (this.hasLedgerRef(input.ref)) {
        return { ok: true as const, started: false, granted: 0, balance: withTotal(s) };
      }
      const takePlan = input.version > s.plan_version;
      if (input.source === "stripe" && !takePlan && s.plan === "free") {
        // An invoice older than the cancellation that made the account free (Stripe retries
        // deliveries for days): the subscription has ended, so it starts nothing.
        this.appendLedger(input.ref, "cycle_grant", 0, 0, now, "ignored: subscription ended since");
        return { ok: true as const, started: false, granted: 0, balance: withTotal(s) };
      }
      const plan = takePlan ? input.plan : s.plan;
      const version = takePlan ? input.version : s.plan_version;
      const newer =
        input.endsAt > s.cycle_ends_at || (input.source === "stripe" && s.stripe_cycles === 0);
      const monthly = newer ? PLANS[plan].monthlyCredits : s.monthly;
      this.sql.exec(
        `UPDATE state SET monthly = ?, plan = ?, plan_version = ?,
           cycle_started_at = ?, cycle_ends_at = ?, stripe_cycles = ?, cycle_max_monthly = ?
         WHERE id = 1`,
        monthly,
        plan,
        version,
        newer ? input.startsAt : s.cycle_started_at,
        newer ? input.endsAt : s.cycle_ends_at,
        input.source === "stripe" ? 1 : s.stripe_cycles,
        // A new cycle's bound is what it grants; within the cycle the bound stays.
        newer ? monthly : s.cycle_max_monthly,
      );
      this.appendLedger(
        input.ref,
        "cycle_grant",
        monthly - s.monthly,
        0,
        now,
        newer ? `cycle ${plan}` : `cycle ${plan} (same period)`,
      );
      const next = this.state() as StateRow;
      job = this.maybeStartAutoRecharge(next, now);
      return {
        ok: true as const,
        started: newer,
        granted: newer ? monthly : 0,
        balance: withTotal(next),
      };
    });
    if (result.ok) this.scheduleCycleAlarm();
    if (job) await this.deliver(job);
    return result;
  }

  /**
   * Changes the plan, if `version` is newer than the last change seen (events arrive in any
   * order). An upgrade mid-cycle adds the difference in monthly allowance at once, since the
   * customer pays for the bigger plan from now; a downgrade keeps the monthly credits already
   * granted until the cycle ends, and the next cycle grants the smaller allowance. `cycles`
   * says what starts the next cycle: Stripe invoices (a subscription) or the ledger's alarm.
   */
  changePlan(input: {
    ref: string;
    plan: PlanId;
    version: number;
    cycles: "stripe" | "alarm";
  }):
    | { ok: true; balance: BalanceView; changed: boolean; added: number }
    | { ok: false; reason: "not_initialized" } {
    const now = Date.now();
    const result = this.ctx.storage.transactionSync(() => {
      const s = this.state();
      if (!s) return { ok: false as const, reason: "not_initialized" as const };
      if (input.version <= s.plan_version || this.hasLedgerRef(input.ref)) {
        return { ok: true as const, balance: withTotal(s), changed: false, added: 0 };
      }
      const allowance = PLANS[input.plan].monthlyCredits;
      const added = upgradeGrant(s.cycle_max_monthly, allowance);
      // Invoices take over cycles when the first one arrives (startCycle); an ended
      // subscription hands them back to the alarm at once.
      this.sql.exec(
        `UPDATE state SET plan = ?, plan_version = ?, monthly = monthly + ?, stripe_cycles = ?,
           cycle_max_monthly = MAX(cycle_max_monthly, ?) WHERE id = 1`,
        input.plan,
        input.version,
        added,
        input.cycles === "alarm" ? 0 : s.stripe_cycles,
        allowance,
      );
      this.appendLedger(input.ref, "plan_change", added, 0, now, `${s.plan} -> ${input.plan}`);
      return { ok: true as const, balance: this.balance(), changed: s.plan !== input.plan, added };
    });
    this.scheduleCycleAlarm();
    return result;
  }

  private scheduleCycleAlarm(): void {
    const s = this.state();
    if (s && s.stripe_cycles === 0) this.scheduleAlarm(s.cycle_ends_at);
  }

  // ---------------------------------------------------------------- alarm

  /** Re-sends the outbox, flushes usage to D1 and starts alarm-driven cycles when due. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    await this.flushOutbox();
    await this.flushUsage();
    await this.resumeIfMonthTurned(now);
    const s = this.state();
    if (s && s.stripe_cycles === 0 && s.cycle_ends_at <= now) {
      let start = s.cycle_ends_at;
      let end = addOneMonth(start);
      // A long-idle account catches up to the current cycle in one grant.
      while (end <= now) {
        start = end;
        end = addOneMonth(start);
      }
      const ref = `cycle:${s.account_id}:${start}`;
      const cycle = await this.startCycle({
        ref,
        plan: s.plan,
        version: s.plan_version,
        startsAt: start,
        endsAt: end,
        source: "alarm",
      });
      if (cycle.ok && cycle.started) {
        await recordMonthlyGrant(dbFor(this.env.DB), {
          id: ref,
          accountId: s.account_id,
          credits: cycle.granted,
          at: iso(start),
        });
      }
    }
    this.rescheduleAfterAlarm();
  }

  /** A pause by the spending limit lasts until the calendar month turns. */
  private async resumeIfMonthTurned(now: number): Promise<void> {
    let item: OutboxItem | null = null;
    this.ctx.storage.transactionSync(() => {
      const s = this.state();
      if (s && s.paused_period !== null && s.paused_period !== monthStart(now)) {
        item = this.maybeStartAutoRecharge(s, now);
      }
    });
    if (item) await this.deliver(item);
  }

  private rescheduleAfterAlarm(): void {
    const now = Date.now();
    const outbox = this.sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length > 0;
    const dirty = this.sql.exec("SELECT 1 FROM usage WHERE dirty = 1 LIMIT 1").toArray().length > 0;
    const s = this.state();
    if (outbox) this.scheduleAlarm(now + OUTBOX_RETRY_MS);
    if (dirty) this.scheduleAlarm(now + USAGE_FLUSH_MS);
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
    return this.sql.exec("SELECT 1 FROM ledger WHERE ref = ?", ref).toArray().length > 0;
  }

  private appendLedger(
    ref: string,
    kind: string,
    monthly: number,
    purchased: number,
    at: number,
    note: string | null,
  ) {
    this.sql.exec(
      "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at, note) VALUES (?, ?, ?, ?, ?, ?)",
      ref,
      kind,
      monthly,
      purchased,
      at,
      note,
    );
  }

  /**
   * Inside a transaction: the trigger rule, and if it fires, the recharge and its outbox row.
   * A recharge that would take this month's purchases over the spending limit does not start:
   * auto-recharge is paused for the month instead, with one email (money rule 10).
   */
  private maybeStartAutoRecharge(s: StateRow, now: number): OutboxItem | null {
    const fire = shouldTriggerRecharge({
      total: s.monthly + s.purchased,
      enabled: s.auto_enabled === 1,
      // Only checked near the threshold, so the common debit pays for no extra query.
      pending: s.monthly + s.purchased <= RECHARGE_THRESHOLD ? this.pendingAutoRecharge() : false,
    });
    if (!fire) return null;
    const period = monthStart(now);
    // Already paused this month: nothing changed that could let it through (setLimits clears it).
    if (s.paused_period === period) return null;
    const pkg = isPackageId(s.auto_package) ? s.auto_package : DEFAULT_PACKAGE;
    if (!fitsSpendLimit(this.spentThisMonth(now), PACKAGES[pkg].priceCents, s.spend_limit_cents)) {
      this.sql.exec("UPDATE state SET paused_period = ? WHERE id = 1", period);
      const notice: OutboxItem = {
        type: "email",
        kind: "auto_recharge_paused",
        ref: `auto_recharge_paused:${s.account_id}:${iso(period).slice(0, 7)}`,
        account_id: s.account_id,
        limit_cents: s.spend_limit_cents ?? 0,
        resumes_at: iso(nextMonthStart(now)),
      };
      this.sql.exec(
        "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
        notice.ref,
        JSON.stringify(notice),
        now,
      );
      // Resumes by itself when the month turns, even with no traffic to trigger it.
      this.alarmAfterCommit = nextMonthStart(now);
      return notice;
    }
    if (s.paused_period !== null)
      this.sql.exec("UPDATE state SET paused_period = NULL WHERE id = 1");
    return this.createRecharge(
      s,
      `rch_${crypto.randomUUID().replaceAll("-", "")}`,
      "auto_recharge",
      pkg,
      now,
    );
  }

  /** An alarm a transaction asked for, set once it has committed. */
  private alarmAfterCommit: number | null = null;

  private createRecharge(
    s: StateRow,
    id: string,
    kind: RechargeKind,
    pkg: PackageId,
    now: number,
  ): OutboxItem {
    const p = PACKAGES[pkg];
    // Frozen now: every attempt of this recharge pays with the card on file at its creation.
    const paymentMethod = s.payment_method_id;
    this.sql.exec(
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
    this.sql.exec(
      "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?)",
      id,
      JSON.stringify(job),
      now,
    );
    return { type: "recharge", job };
  }

  /**
   * Delivers one outbox item after the write that created it; a failure leaves it in the
   * outbox and the alarm tries again. Recharge jobs go to the queue (with their D1 row first);
   * notices go out as email, deduplicated in D1 by their reference.
   */
  private async deliver(item: OutboxItem): Promise<void> {
    // Armed before the first await: if the object dies mid-send, the alarm still re-sends.
    this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    if (this.alarmAfterCommit !== null) {
      this.scheduleAlarm(this.alarmAfterCommit);
      this.alarmAfterCommit = null;
    }
    const id = item.type === "recharge" ? item.job.recharge_id : item.ref;
    try {
      if (item.type === "recharge") {
        await recordPendingPurchase(dbFor(this.env.DB), pendingPurchaseOf(item.job));
        await this.env.RECHARGE_QUEUE.send(item.job);
      } else {
        const mail = templates.autoRechargePaused({
          limitCents: item.limit_cents,
          resumesAt: item.resumes_at,
          dashboardUrl: this.env.DASHBOARD_URL,
        });
        await mailAccount(this.env, dbFor(this.env.DB), {
          ref: item.ref,
          accountId: item.account_id,
          kind: item.kind,
          ...mail,
        });
      }
      this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    } catch (err) {
      console.warn(
        item.type === "recharge"
          ? "recharge job not queued yet; the alarm will retry"
          : "notice email not sent yet; the alarm will retry",
        id,
        String(err),
      );
      this.sql.exec("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", id);
      this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  private async flushOutbox(): Promise<void> {
    const rows = this.sql
      .exec<{ id: string; body: string }>("SELECT id, body FROM outbox ORDER BY created_at")
      .toArray();
    for (const row of rows) await this.deliver(outboxItemOf(JSON.parse(row.body)));
  }

  private async flushUsage(): Promise<void> {
    const s = this.state();
    if (!s) return;
    const rows = this.sql
      .exec<{ minute: number; requests: number; credits: number }>(
        "SELECT minute, requests, credits FROM usage WHERE dirty = 1 ORDER BY minute",
      )
      .toArray();
    if (rows.length === 0) return;
    try {
      await upsertUsageMinutes(dbFor(this.env.DB), s.account_id, rows);
    } catch (err) {
      console.error("usage flush failed; will retry", String(err));
      return;
    }
    // Only rows unchanged since the read are clean; a debit during the await re-dirtied others.
    for (const r of rows) {
      this.sql.exec(
        "UPDATE usage SET dirty = 0 WHERE minute = ? AND requests = ? AND credits = ?",
        r.minute,
        r.requests,
        r.credits,
      );
    }
    // Minutes older than a day are in D1 for good; keep the DO small.
    this.sql.exec(
      "DELETE FROM usage WHERE dirty = 0 AND minute < ?",
      minuteOf(Date.now()) - 86_400,
    );
  }
}

function rechargeView(r: RechargeRow): RechargeView {
  return {
    id: r.id,
    kind: r.kind,
    package: r.package,
    credits: r.credits,
    amount_cents: r.amount_cents,
    status: r.status,
    created_at: iso(r.created_at),
  };
}

/** What the outbox holds: recharge jobs for the queue, and notices to email. */
type OutboxItem =
  | { type: "recharge"; job: RechargeJob }
  | {
      type: "email";
      kind: "auto_recharge_paused";
      ref: string;
      account_id: string;
      limit_cents: number;
      resumes_at: string;
    };

/** An outbox row's body: rows written before notices existed are bare recharge jobs. */
function outboxItemOf(body: unknown): OutboxItem {
  if (typeof body === "object" && body !== null && (body as { type?: unknown }).type === "email") {
    return body as OutboxItem;
  }
  return { type: "recharge", job: RechargeJob.parse(body) };
}

/** Requests per minute for the whole account: the operator's override, else the plan's. */
function rateLimitOf(s: Pick<StateRow, "plan" | "rate_limit_override">): number {
  return s.rate_limit_override ?? PLANS[s.plan].rateLimitPerMinute;
}
