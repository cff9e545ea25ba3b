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
import { pendingPurchaseOf, type RechargeJob } from "../recharge/messages";
import { type RateDecision, type RateWindow, takeFromWindow } from "./rate-window";
import {
  addOneMonth,
  applyDeltas,
  type BalanceView,
  type Buckets,
  minuteOf,
  shouldTriggerRecharge,
  splitDebit,
  withTotal,
} from "./rules";

const SCHEMA_VERSION = 2;
const OUTBOX_RETRY_MS = 5_000;
const USAGE_FLUSH_MS = 20_000;
const USAGE_JITTER_MS = 20_000;

export type RechargeKind = "auto_recharge" | "top_up";
export type RechargeStatus = "pending" | "succeeded" | "failed";

export interface AutoRechargeSettings {
  enabled: boolean;
  package: PackageId | null;
  threshold: number;
  pending: boolean;
  last_failure: null | { at: string; code: string; message: string };
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
  | { ok: false; reason: "payment_method_required" | "not_initialized" | "idempotency_conflict" };

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
    if (row && Number(row.value) >= SCHEMA_VERSION) return;
    this.ctx.storage.transactionSync(() => {
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
      this.sql.exec(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        String(SCHEMA_VERSION),
      );
    });
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
      last_failure:
        s.last_failure_at === null
          ? null
          : {
              at: iso(s.last_failure_at),
              code: s.last_failure_code ?? "unknown",
              message: s.last_failure_message ?? "",
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
    };
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
        `INSERT INTO state (id, account_id, plan, monthly, purchased, cycle_started_at, cycle_ends_at)
         VALUES (1, ?, ?, ?, 0, ?, ?)`,
        input.accountId,
        input.plan,
        allowance,
        now,
        addOneMonth(now),
      );
      this.appendLedger(
        `cycle:${input.accountId}:initial`,
        "cycle_grant",
        allowance,
        0,
        now,
        "initial monthly credits",
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
    let job: RechargeJob | null = null;
    let rate: RateDecision | null = null;
    const result = this.ctx.storage.transactionSync((): DebitResult => {
      const s = this.state();
      if (!s) return { ok: false, reason: "insufficient_credits", balance: ZERO, rate };
      if (apiKeyId && this.revokedKeys().has(apiKeyId))
        return { ok: false, reason: "key_revoked", rate: null };
      if (apiKeyId) {
        rate = this.takeRate(apiKeyId, PLANS[s.plan].rateLimitPerMinute, now);
        if (!rate.allowed) return { ok: false, reason: "rate_limited", rate };
      }
      const take = splitDebit(s, cost);
      if (!take) return { ok: false, reason: "insufficient_credits", balance: withTotal(s), rate };
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
    if (job) await this.sendJob(job);
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

  /** Per-key request windows; memory only (see gateway/rate-limit.ts for why that is safe). */
  private readonly rateWindows = new Map<string, RateWindow>();

  private takeRate(apiKeyId: string, limit: number, now: number): RateDecision {
    let window = this.rateWindows.get(apiKeyId);
    if (!window) {
      window = { start: 0, count: 0 };
      this.rateWindows.set(apiKeyId, window);
    }
    return takeFromWindow(window, now, limit);
  }

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
    let job: RechargeJob | null = null;
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
    if (job) await this.sendJob(job);
    return result;
  }

  // ---------------------------------------------------------------- auto-recharge

  /** Records whether the customer has a usable payment method on file. */
  setPaymentMethod(onFile: boolean): void {
    this.sql.exec("UPDATE state SET has_payment_method = ? WHERE id = 1", onFile ? 1 : 0);
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
    let job: RechargeJob | null = null;
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
    if (job) await this.sendJob(job);
    return result;
  }

  /**
   * Starts a manual top-up through the recharge pipeline. `rechargeId` is derived from the
   * client's Idempotency-Key when it sent one, so a retried request finds its first top-up.
   */
  async requestTopUp(input: { rechargeId: string; package: PackageId }): Promise<TopUpResult> {
    const now = Date.now();
    let job: RechargeJob | null = null;
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
      job = this.createRecharge(s.account_id, input.rechargeId, "top_up", input.package, now);
      return {
        ok: true,
        recharge: this.recharge(input.rechargeId) as RechargeView,
        replayed: false,
      };
    });
    if (job) await this.sendJob(job);
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
        "UPDATE state SET last_failure_at = NULL, last_failure_code = NULL, last_failure_message = NULL WHERE id = 1",
      );
      return { ok: true as const, granted: true, balance: this.balance() };
    });
  }

  /**
   * Records a failed payment: no credits, auto-recharge disabled, failure kept for the
   * dashboard (money rule 6). A recharge already credited stays credited.
   */
  rechargeFailed(
    rechargeId: string,
    code: string,
    message: string,
  ):
    | { ok: true; changed: boolean }
    | { ok: false; reason: "unknown_recharge" | "already_succeeded" } {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const r = this.recharge(rechargeId);
      if (!r) return { ok: false as const, reason: "unknown_recharge" as const };
      if (r.status === "succeeded")
        return { ok: false as const, reason: "already_succeeded" as const };
      if (r.status === "failed") return { ok: true as const, changed: false };
      this.sql.exec(
        "UPDATE recharges SET status = 'failed', settled_at = ?, failure_code = ? WHERE id = ?",
        now,
        code,
        rechargeId,
      );
      this.sql.exec(
        `UPDATE state SET auto_enabled = 0, last_failure_at = ?, last_failure_code = ?, last_failure_message = ?
         WHERE id = 1`,
        now,
        code,
        message,
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
    let job: RechargeJob | null = null;
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
           cycle_started_at = ?, cycle_ends_at = ?, stripe_cycles = ?
         WHERE id = 1`,
        monthly,
        plan,
        version,
        newer ? input.startsAt : s.cycle_started_at,
        newer ? input.endsAt : s.cycle_ends_at,
        input.source === "stripe" ? 1 : s.stripe_cycles,
      );
      this.appendLedger(input.ref, "cycle_grant", monthly - s.monthly, 0, now, `cycle ${plan}`);
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
    if (job) await this.sendJob(job);
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
      const added = Math.max(0, PLANS[input.plan].monthlyCredits - PLANS[s.plan].monthlyCredits);
      // Invoices take over cycles when the first one arrives (startCycle); an ended
      // subscription hands them back to the alarm at once.
      this.sql.exec(
        "UPDATE state SET plan = ?, plan_version = ?, monthly = monthly + ?, stripe_cycles = ? WHERE id = 1",
        input.plan,
        input.version,
        added,
        input.cycles === "alarm" ? 0 : s.stripe_cycles,
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

  private rescheduleAfterAlarm(): void {
    const now = Date.now();
    const outbox = this.sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length > 0;
    const dirty = this.sql.exec("SELECT 1 FROM usage WHERE dirty = 1 LIMIT 1").toArray().length > 0;
    const s = this.state();
    if (outbox) this.scheduleAlarm(now + OUTBOX_RETRY_MS);
    if (dirty) this.scheduleAlarm(now + USAGE_FLUSH_MS);
    if (s && s.stripe_cycles === 0) this.scheduleAlarm(s.cycle_ends_at);
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

  /** Inside a transaction: the trigger rule, and if it fires, the recharge and its outbox row. */
  private maybeStartAutoRecharge(s: StateRow, now: number): RechargeJob | null {
    const fire = shouldTriggerRecharge({
      total: s.monthly + s.purchased,
      enabled: s.auto_enabled === 1,
      // Only checked near the threshold, so the common debit pays for no extra query.
      pending: s.monthly + s.purchased <= RECHARGE_THRESHOLD ? this.pendingAutoRecharge() : false,
    });
    if (!fire) return null;
    const pkg = isPackageId(s.auto_package) ? s.auto_package : DEFAULT_PACKAGE;
    return this.createRecharge(
      s.account_id,
      `rch_${crypto.randomUUID().replaceAll("-", "")}`,
      "auto_recharge",
      pkg,
      now,
    );
  }

  private createRecharge(
    accountId: string,
    id: string,
    kind: RechargeKind,
    pkg: PackageId,
    now: number,
  ): RechargeJob {
    const p = PACKAGES[pkg];
    this.sql.exec(
      "INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
      id,
      kind,
      pkg,
      p.credits,
      p.priceCents,
      now,
    );
    const job: RechargeJob = {
      kind,
      recharge_id: id,
      account_id: accountId,
      package: pkg,
      credits: p.credits,
      amount_cents: p.priceCents,
      currency: CURRENCY,
      created_at: iso(now),
    };
    this.sql.exec(
      "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?)",
      id,
      JSON.stringify(job),
      now,
    );
    return job;
  }

  /** Sends after the write; a failed send stays in the outbox and the alarm tries again. */
  private async sendJob(job: RechargeJob): Promise<void> {
    // Armed before the first await: if the object dies mid-send, the alarm still re-sends.
    this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    try {
      await recordPendingPurchase(dbFor(this.env.DB), pendingPurchaseOf(job));
      await this.env.RECHARGE_QUEUE.send(job);
      this.sql.exec("DELETE FROM outbox WHERE id = ?", job.recharge_id);
    } catch (err) {
      console.error(
        "recharge job not queued yet; the alarm will retry",
        job.recharge_id,
        String(err),
      );
      this.sql.exec("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", job.recharge_id);
      this.scheduleAlarm(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  private async flushOutbox(): Promise<void> {
    const rows = this.sql
      .exec<{ id: string; body: string }>("SELECT id, body FROM outbox ORDER BY created_at")
      .toArray();
    for (const row of rows) await this.sendJob(JSON.parse(row.body) as RechargeJob);
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
