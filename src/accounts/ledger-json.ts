/**
 * The ledger's state as the HTTP contract shows it (API.md): snake_case fields, ISO dates, the
 * defaults a customer sees. The Durable Object returns domain values (`LedgerAccount`); the
 * routes, the Billing page and operators build their JSON here, so the wire shape has one home.
 */
import type {
  AlertSettings,
  AutoRechargeState,
  LedgerAccount,
  LimitsState,
} from "../ledger/domain/types";
import { type PackageId, PLANS, type PlanId, RECHARGE_THRESHOLD } from "../pricing";

const iso = (ms: number) => new Date(ms).toISOString();

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
  alerts: AlertsJson;
}

/** `GET /v1/account/alerts`: the low-balance level (null: no alert). */
export interface AlertsJson {
  low_balance_credits: number | null;
}

export function alertsJson(a: AlertSettings): AlertsJson {
  return { low_balance_credits: a.lowBalanceCredits };
}

export function autoRechargeJson(a: AutoRechargeState): AutoRechargeSettings {
  const f = a.lastFailure;
  return {
    enabled: a.enabled,
    package: a.package,
    threshold: RECHARGE_THRESHOLD,
    pending: a.pending,
    paused: a.pausedThisMonth ? "spending_limit_reached" : null,
    last_failure:
      f === null
        ? null
        : {
            at: iso(f.at),
            code: f.code ?? "unknown",
            message: f.message ?? "",
            action_url: f.actionUrl,
            recharge_id: f.rechargeId,
          },
  };
}

export function limitsJson(l: LimitsState): SpendLimits {
  return {
    monthly_spend_limit_cents: l.spendLimitCents,
    spent_this_month_cents: l.spentThisMonthCents,
    period_ends_at: iso(l.periodEndsAt),
  };
}

export function accountSnapshotJson(a: LedgerAccount): AccountSnapshot {
  return {
    account_id: a.accountId,
    plan: a.plan,
    ...a.balance,
    monthly_allowance: PLANS[a.plan].monthlyCredits,
    cycle_started_at: iso(a.cycleStartedAt),
    cycle_ends_at: iso(a.cycleEndsAt),
    has_payment_method: a.hasPaymentMethod,
    auto_recharge: autoRechargeJson(a.autoRecharge),
    limits: limitsJson(a.limits),
    rate_limit_per_minute: a.rateLimitPerMinute,
    rate_limit_override: a.rateLimitOverride,
    alerts: alertsJson({ lowBalanceCredits: a.lowBalanceCredits }),
  };
}
