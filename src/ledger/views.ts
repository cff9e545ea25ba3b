/**
 * What the ledger shows, as domain values read from the state row (the routes shape the JSON,
 * `accounts/ledger-json.ts`), and the audit that replays the ledger against the balance.
 */
import { isPackageId } from "../pricing";
import { rateLimitOf } from "./domain/decisions";
import type { AlertSettings } from "./domain/low-balance";
import { type Buckets, liveBalance, monthStart, nextMonthStart, withTotal } from "./domain/rules";
import type {
  AuditResult,
  AutoRechargeState,
  LedgerAccount,
  LimitsState,
  StateRow,
} from "./domain/types";
import { aggregateTotals, openDebits } from "./store/aggregates";
import { entryTotals } from "./store/entries";
import { hasPendingAutoRecharge, spentThisMonth } from "./store/recharges";
import { readStateRow } from "./store/state";

const NONE: Buckets = { monthly: 0, purchased: 0 };

export function autoRechargeOf(sql: SqlStorage, s: StateRow, now: number): AutoRechargeState {
  return {
    enabled: s.auto_enabled === 1,
    package: isPackageId(s.auto_package) ? s.auto_package : null,
    pending: hasPendingAutoRecharge(sql),
    pausedThisMonth: s.paused_period === monthStart(now),
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

export function limitsOf(sql: SqlStorage, s: StateRow, now: number): LimitsState {
  return {
    spendLimitCents: s.spend_limit_cents,
    spentThisMonthCents: spentThisMonth(sql, now),
    periodEndsAt: nextMonthStart(now),
  };
}

export function alertsOf(s: Pick<StateRow, "low_balance_credits">): AlertSettings {
  return { lowBalanceCredits: s.low_balance_credits };
}

/** The account as its ledger holds it, `s` carrying the live buckets. */
export function accountOf(sql: SqlStorage, s: StateRow, now: number): LedgerAccount {
  return {
    accountId: s.account_id,
    plan: s.plan,
    balance: withTotal(s),
    cycleStartedAt: s.cycle_started_at,
    cycleEndsAt: s.cycle_ends_at,
    hasPaymentMethod: s.has_payment_method === 1,
    autoRecharge: autoRechargeOf(sql, s, now),
    limits: limitsOf(sql, s, now),
    rateLimitPerMinute: rateLimitOf(s),
    rateLimitOverride: s.rate_limit_override,
    lowBalanceCredits: s.low_balance_credits,
  };
}

/**
 * Replays the ledger (every entry, less the gross debits of every aggregate that counts) and
 * compares it with the live balance in memory (`memory`: null before `init`) and with the
 * balance storage alone gives (money rule 4); reports the object's size.
 */
export function auditOf(sql: SqlStorage, memory: Buckets | null): AuditResult {
  const entries = entryTotals(sql);
  const row = readStateRow(sql);
  const settledUntil = row?.compacted_until ?? 0;
  const debits = aggregateTotals(sql, settledUntil);
  const lm = entries.monthly - debits.monthly;
  const lp = entries.purchased - debits.purchased;
  const mem = memory ?? NONE;
  const stored = row ? liveBalance(row, openDebits(sql, settledUntil)) : NONE;
  return {
    ledger_total: lm + lp,
    balance_total: mem.monthly + mem.purchased,
    consistent:
      lm === mem.monthly &&
      lp === mem.purchased &&
      stored.monthly === mem.monthly &&
      stored.purchased === mem.purchased,
    ledger_monthly: lm,
    ledger_purchased: lp,
    monthly: mem.monthly,
    purchased: mem.purchased,
    entries: entries.count,
    debit_aggregates: debits.rows,
    stored_monthly: stored.monthly,
    stored_purchased: stored.purchased,
    storage_bytes: sql.databaseSize,
  };
}
