/** The Durable Object's public shapes (RPC results) and its row types. */
import type { PackageId, PlanId } from "../../pricing";
import type { RechargeJob } from "../domain/recharge-job";
import type { AlertSettings, LowBalanceSituation } from "./low-balance";
import type { RateDecision } from "./rate-window";
import type { BalanceView, Buckets } from "./rules";

export type { AlertSettings, LowBalanceSituation };
export type RechargeKind = "auto_recharge" | "top_up";
/**
 * `requires_action`: the payment needs the customer (authentication) on the hosted invoice
 * page; nothing was granted, and it is still in flight until paid there or voided.
 */
export type RechargeStatus = "pending" | "requires_action" | "succeeded" | "failed";

/**
 * Auto-recharge as the ledger holds it (domain values, times in ms); the routes shape its JSON
 * (`accounts/ledger-json.ts`).
 */
export interface AutoRechargeState {
  enabled: boolean;
  package: PackageId | null;
  /** An auto-recharge is in flight (pending or waiting for the customer). */
  pending: boolean;
  /** Paused by the spending limit for the current calendar month. */
  pausedThisMonth: boolean;
  lastFailure: null | {
    at: number;
    code: string | null;
    message: string | null;
    /** Where the customer completes a payment that needs authentication. */
    actionUrl: string | null;
    rechargeId: string | null;
  };
}

/** The spending limit and this month's purchases, at `now` (domain values, times in ms). */
export interface LimitsState {
  spendLimitCents: number | null;
  spentThisMonthCents: number;
  /** When this calendar month, and so its spending, ends. */
  periodEndsAt: number;
}

/** The account as its ledger holds it, read in real time (domain values, times in ms). */
export interface LedgerAccount {
  accountId: string;
  plan: PlanId;
  balance: BalanceView;
  cycleStartedAt: number;
  cycleEndsAt: number;
  hasPaymentMethod: boolean;
  autoRecharge: AutoRechargeState;
  limits: LimitsState;
  rateLimitPerMinute: number;
  /** An operator's per-account rate limit; null means the plan's. */
  rateLimitOverride: number | null;
  lowBalanceCredits: number | null;
}

/** A recharge as the ledger holds it (times in ms; the routes build the JSON). */
export interface RechargeView {
  id: string;
  kind: RechargeKind;
  package: PackageId;
  credits: number;
  amountCents: number;
  status: RechargeStatus;
  createdAt: number;
}

export type DebitResult =
  | {
      ok: true;
      charged: Buckets;
      /** The minute (unix seconds) the debit was counted in: with `charged`, its refund. */
      minute: number;
      balance: BalanceView;
      rate: RateDecision | null;
    }
  | { ok: false; reason: "insufficient_credits"; balance: BalanceView; rate: RateDecision | null }
  | { ok: false; reason: "rate_limited"; rate: RateDecision }
  | { ok: false; reason: "key_revoked"; rate: null }
  /** An operator suspended the account: refused before the rate window, nothing taken. */
  | { ok: false; reason: "account_suspended"; rate: null }
  /** A ref declared never committed after its reply was lost (recent-debits.ts). */
  | { ok: false; reason: "not_found"; rate: null };

/** Which usage rows: per key or for the account, minutes (the last day) or the finest kept. */
export interface UsageQuery {
  byKey?: boolean;
  minutes?: boolean;
}

/** One debit of a call that carries several (the gateway's coalesced debits). */
export interface DebitItem {
  cost: number;
  ref: string;
  key?: string;
}

/**
 * One debit's answer in such a call: its result, or the error its take threw (nothing charged).
 * `R`: a shard's result also names the lease the debit was taken from.
 */
export type DebitOutcome<R extends DebitResult = DebitResult> =
  | { result: R }
  | { failure: { message: string; retryable: boolean } };

/** An operator's suspension as the ledger holds it (`at`: ms). */
export interface Suspension {
  at: number;
  reason: string;
}

export type SuspendResult =
  | { ok: true; suspension: Suspension | null }
  | { ok: false; reason: "not_initialized" };

export type AdjustResult =
  | { ok: true; balance: BalanceView; replayed: boolean }
  | {
      ok: false;
      reason: "insufficient_credits" | "not_initialized" | "idempotency_conflict";
      balance: BalanceView;
    };

export type SettingsResult =
  | { ok: true; settings: AutoRechargeState }
  | { ok: false; reason: "payment_method_required" | "not_initialized" };

export type TopUpResult =
  | { ok: true; recharge: RechargeView; replayed: boolean }
  | {
      ok: false;
      reason:
        | "payment_method_required"
        | "not_initialized"
        | "idempotency_conflict"
        | "spending_limit_reached"
        | "account_suspended";
    }
  /** Another purchase waits for the customer's bank: buying again would pay twice for one need. */
  | { ok: false; reason: "payment_pending"; waiting: RechargeView };

export interface AuditResult {
  ledger_total: number;
  balance_total: number;
  consistent: boolean;
  ledger_monthly: number;
  ledger_purchased: number;
  monthly: number;
  purchased: number;
  /** Entries with a reference (grants, plan changes, purchases, adjustments, refunds, voids). */
  entries: number;
  /** Rows of request debits, aggregated per minute, hour and day. */
  debit_aggregates: number;
  /** The balance rebuilt from storage alone, as a restarted object would see it. */
  stored_monthly: number;
  stored_purchased: number;
  /** The object's SQLite size in bytes (`ctx.storage.sql.databaseSize`). */
  storage_bytes: number;
}

/** The `state` row: settings, and the settled buckets (see schema.ts). */
export type StateRow = {
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
  /** Unix seconds: debit minutes before this are settled into `monthly`/`purchased`. */
  compacted_until: number;
  /** The low-balance alert's level in credits; null: no alert. */
  low_balance_credits: number | null;
  /** 1 while the total has been above the level since the last alert (see low-balance.ts). */
  low_balance_armed: number;
  /** Set by an operator (ms): every debit and purchase is refused until it is cleared. */
  suspended_at: number | null;
  /** The operator's reason, shown to the account's people. */
  suspension_reason: string | null;
  /** The last balance projection's version (store/projections.ts). */
  balance_version: number;
};

export type RechargeRow = {
  id: string;
  kind: RechargeKind;
  package: PackageId;
  credits: number;
  amount_cents: number;
  status: RechargeStatus;
  created_at: number;
};

/**
 * What a refund needs to give a debit back exactly: the minute it was counted in and what it
 * took from each bucket (the debit's `minute` and `charged`). The gateway carries it.
 */
export interface DebitCharge {
  minute: number;
  monthly: number;
  purchased: number;
  /** The key whose minute row counts the debit ("" or absent: none, or from before schema 9). */
  key_id?: string;
}

export type RefundResult =
  | { ok: true; balance: BalanceView; refunded: boolean }
  | { ok: false; reason: "not_found" }
  /** A lost debit reply this object cannot account for (it restarted since): see recent-debits.ts. */
  | { ok: false; reason: "outcome_unknown" };

/** One usage row: `at` is the unix second its period starts (a minute, an hour or a day). */
export interface UsageRow {
  at: number;
  requests: number;
  credits: number;
  /** With `group_by=key` only: the key ("" for debits no key made, or from before schema 9). */
  key_id?: string;
}

/**
 * A customer-visible history row the ledger decided (a cycle's or a paid upgrade's grant, an
 * operator's adjustment), as D1's `transactions` copies it: everything the row needs, so the
 * outbox can write it after the commit with no other read. `id` is the row's natural id (the
 * invoice id, the cycle ref, the adjustment ref), so a redelivery writes nothing twice.
 */
export interface HistoryRow {
  id: string;
  account_id: string;
  type: "monthly_grant" | "adjustment";
  credits: number;
  amount_cents: number;
  invoice_id: string | null;
  invoice_url: string | null;
  description: string | null;
  /** ISO 8601. */
  created_at: string;
}

/** What a grant's caller knows of its history row that the ledger does not (Stripe's invoice). */
export interface HistoryDetails {
  amountCents?: number;
  invoiceId?: string | null;
  invoiceUrl?: string | null;
  description?: string | null;
}

/**
 * What the outbox holds: recharge jobs for the queue, notices to email, and projections (D1
 * copies of what the ledger decided; money rule 4: a copy, never a second source of truth).
 */
/** The account's balance as projected to D1 for the operators' overview. */
export interface BalanceRow {
  account_id: string;
  monthly: number;
  purchased: number;
  purchased_value_cents: number;
  /** Grows with every projection of this account: D1 keeps the highest. */
  version: number;
  /** ISO 8601. */
  at: string;
}

export type OutboxItem =
  | { type: "recharge"; job: RechargeJob }
  | { type: "projection"; ref: string; row: HistoryRow }
  | PurchaseProjection
  | { type: "balance"; ref: string; balance: BalanceRow }
  /** A fact for customers' webhooks only (no email, no D1 copy): the plan the ledger now has. */
  | {
      type: "event";
      event: "plan.changed";
      ref: string;
      account_id: string;
      from: PlanId;
      to: PlanId;
    }
  /** The first refusal for lack of credits after the account had some (`store/exhaustion.ts`). */
  | {
      type: "event";
      event: "credits.exhausted";
      ref: string;
      account_id: string;
      /** What was left (below the request's cost) and what the refused request would cost. */
      balance_total: number;
      cost: number;
    }
  | {
      type: "email";
      kind: "auto_recharge_paused";
      ref: string;
      account_id: string;
      limit_cents: number;
      resumes_at: string;
    }
  | {
      type: "email";
      kind: "low_balance";
      ref: string;
      account_id: string;
      /** The level crossed and the total that crossed it. */
      level: number;
      total: number;
      situation: LowBalanceSituation;
    };

// ---------------------------------------------------------------- RPC inputs and results

export type NotInitialized = { ok: false; reason: "not_initialized" };

export interface CycleInput {
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
}

export type CycleResult =
  | { ok: true; started: boolean; granted: number; balance: BalanceView }
  | NotInitialized;

export interface PlanChangeInput {
  ref: string;
  plan: PlanId;
  version: number;
  cycles: "stripe" | "alarm";
  /**
   * The plan read from Stripe's current subscription, after two events of one version (the
   * same second and kind) were seen: it replaces what the first of them applied.
   */
  current?: boolean;
}

export type PlanChangeResult =
  | { ok: true; balance: BalanceView; changed: boolean; added: number }
  | NotInitialized;

export interface UpgradeInput {
  ref: string;
  plan: PlanId;
  cycleEndsAt: number;
  /** The paid invoice, for its history row (written whatever it added, 0 included). */
  history?: HistoryDetails;
}

export type UpgradeResult =
  | {
      ok: true;
      added: number;
      outcome: "granted" | "earlier" | "later" | "replayed";
      balance: BalanceView;
    }
  | NotInitialized;

export interface AdjustInput {
  ref: string;
  monthly: number;
  purchased: number;
  reason: string;
}

export interface LimitsInput {
  spendLimitCents?: number | null;
  rateLimitPerMinute?: number | null;
  /** False for an API key: it may lower the spending limit, not raise it (money rule 11). */
  mayRaise?: boolean;
}

export type LimitsResult =
  | { ok: true; limits: LimitsState; rateLimitPerMinute: number }
  | NotInitialized
  | { ok: false; reason: "session_required" };

export interface AutoRechargeInput {
  enabled?: boolean;
  package?: PackageId;
}

export type GrantResult =
  | { ok: true; granted: boolean; balance: BalanceView }
  | { ok: false; reason: "unknown_recharge" | "credits_mismatch" | "not_initialized" };

export type PaymentProblemResult =
  | { ok: true; changed: boolean }
  | { ok: false; reason: "unknown_recharge" | "already_succeeded" };

export type AlertsResult = { ok: true; alerts: AlertSettings } | NotInitialized;

/** What Stripe said of a purchase's payment, for its D1 row (any of it may be unknown). */
export interface PaymentDetails {
  invoiceId?: string | null;
  invoiceUrl?: string | null;
  paymentIntentId?: string | null;
}

/**
 * A recharge's new status as the ledger decided it, copied to D1's purchase row and told the
 * customer by email (once per status, `ref`) from the outbox: the queue consumer, the webhook
 * and the reconciler write neither.
 */
export interface PurchaseProjection {
  type: "purchase";
  /** `purchase:<recharge>:<status>`. */
  ref: string;
  account_id: string;
  recharge_id: string;
  kind: RechargeKind;
  package: PackageId;
  credits: number;
  amount_cents: number;
  /** ISO 8601: when the recharge was created (its D1 row's, if that row is still missing). */
  created_at: string;
  status: Exclude<RechargeStatus, "pending">;
  payment: PaymentDetails;
  /** Failed or waiting: why, and where the customer can pay (waiting only). */
  code: string | null;
  message: string | null;
  action_url: string | null;
  /** Succeeded: the balance's total after the credits. */
  balance_total: number | null;
}
