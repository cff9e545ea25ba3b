/**
 * The ledger's decisions, pure: each takes the state, a command and the time and says what to
 * do; the Durable Object applies it (storage through `store/`, effects after the commit). No
 * I/O here, so a table of cases tests them (test/unit/ledger-decisions.test.ts).
 */
import { DEFAULT_PACKAGE, isPackageId, PACKAGES, type PackageId, PLANS } from "../../pricing";
import { lowBalanceStep } from "./low-balance";
import { type RateDecision, type RateWindow, takeFromWindow } from "./rate-window";
import {
  atRechargeThreshold,
  type Buckets,
  debitMinute,
  fitsSpendLimit,
  liveBalance,
  monthStart,
  nextMonthStart,
  ringNeedsSettling,
  shouldTriggerRecharge,
  splitDebit,
  withTotal,
} from "./rules";
import type { DebitOutcome, DebitResult, StateRow } from "./types";

// ---------------------------------------------------------------- auto-recharge trigger

export type RechargeState = Pick<
  StateRow,
  | "monthly"
  | "purchased"
  | "auto_enabled"
  | "auto_package"
  | "paused_period"
  | "spend_limit_cents"
  | "suspended_at"
>;

/**
 * What the trigger needs beyond the state row, read by the shell. The decision reads each one
 * only when the rule gets to it (`pending` at or below the threshold, `spentThisMonthCents`
 * only for a recharge that would start), so a shell that passes getters does no more queries
 * than the rule needs; a test passes plain values.
 */
export interface RechargeFacts {
  /** An auto-recharge is in flight (pending or waiting for the customer). */
  readonly pending: boolean;
  /** This calendar month's purchases that took or may take money. */
  readonly spentThisMonthCents: number;
}

export type RechargeDecision =
  | { kind: "none" }
  /** Over the spending limit: paused for the month, one email, resumes at `resumesAt`. */
  | { kind: "pause"; resumesAt: number }
  /** A new auto-recharge of `package`; `clearPause`: a pause of an earlier month ends. */
  | { kind: "start"; package: PackageId; clearPause: boolean };

/**
 * The trigger rule, with `s` carrying the live buckets: at or below the threshold, enabled,
 * none in flight, not already paused this month. A recharge that would take this month's
 * purchases over the spending limit does not start: auto-recharge is paused for the month
 * instead (money rule 10).
 */
export function decideRecharge(
  s: RechargeState,
  facts: RechargeFacts,
  now: number,
): RechargeDecision {
  // A suspended account buys nothing, by itself or otherwise; unsuspending re-decides.
  if (s.suspended_at !== null) return { kind: "none" };
  const total = s.monthly + s.purchased;
  const fire = shouldTriggerRecharge({
    total,
    enabled: s.auto_enabled === 1,
    // Read only near the threshold, so the common debit pays for no extra query.
    pending: atRechargeThreshold(total) ? facts.pending : false,
  });
  if (!fire) return { kind: "none" };
  // Already paused this month: nothing changed that could let it through (setLimits clears it).
  if (s.paused_period === monthStart(now)) return { kind: "none" };
  const pkg = isPackageId(s.auto_package) ? s.auto_package : DEFAULT_PACKAGE;
  if (!fitsSpendLimit(facts.spentThisMonthCents, PACKAGES[pkg].priceCents, s.spend_limit_cents))
    // Resumes by itself when the month turns, even with no traffic to trigger it.
    return { kind: "pause", resumesAt: nextMonthStart(now) };
  return { kind: "start", package: pkg, clearPause: s.paused_period !== null };
}

// ---------------------------------------------------------------- the debit

export type DebitState = Pick<
  StateRow,
  | "monthly"
  | "purchased"
  | "compacted_until"
  | "plan"
  | "rate_limit_override"
  | "low_balance_credits"
  | "low_balance_armed"
  | "paused_period"
  | "suspended_at"
>;

/** What the debit decides from, all in memory (the hot path reads no row). */
export interface DebitInput {
  /** The state row as last read or written (settled buckets); null before `init`. */
  settled: DebitState | null;
  /** Gross debits of the minutes not settled yet. */
  open: Buckets;
  /** The ref was declared never committed after its reply was lost. */
  voided: boolean;
  /** Revoked key ids; asked only for a debit with a key (the shell loads them lazily). */
  revoked: { has(keyId: string): boolean };
  /**
   * The account's request window (memory only). A keyed debit within the limit takes a slot
   * from it in place: the one change this decision makes, to memory, not to storage.
   */
  window: RateWindow;
}

export type DebitDecision =
  | { kind: "refuse"; reason: "not_found" | "key_revoked" | "account_suspended"; rate: null }
  | { kind: "refuse"; reason: "rate_limited"; rate: RateDecision }
  | {
      kind: "insufficient";
      /** The live balance (zero before `init`). */
      balance: Buckets;
      rate: RateDecision | null;
      /** A pause of an earlier month: auto-recharge is re-decided now (it may start). */
      resume: boolean;
    }
  | {
      kind: "take";
      take: Buckets;
      /** The live balance after the debit. */
      after: Buckets;
      /** The minute the debit is counted in. */
      minute: number;
      rate: RateDecision | null;
      /** The ring must be settled before this minute's slot is reused (an idle day). */
      mustSettle: boolean;
      /** At or below the recharge threshold after it: the trigger is decided too. */
      nearThreshold: boolean;
      /** This debit crosses the low-balance level while armed: the alert fires. */
      crossesAlert: boolean;
    };

/** Requests per minute for the whole account: the operator's override, else the plan's. */
export function rateLimitOf(s: Pick<StateRow, "plan" | "rate_limit_override">): number {
  return s.rate_limit_override ?? PLANS[s.plan].rateLimitPerMinute;
}

/**
 * A debit of `cost`, monthly first, all or nothing. Proxied traffic (a debit for a key) is
 * rate limited; operator and test debits (no key) are not.
 */
export function decideDebit(
  input: DebitInput,
  cost: number,
  keyId: string | undefined,
  now: number,
): DebitDecision {
  const s = input.settled;
  if (!s)
    return {
      kind: "insufficient",
      balance: { monthly: 0, purchased: 0 },
      rate: null,
      resume: false,
    };
  // Arrived after the gateway gave up on it and it was declared never committed.
  if (input.voided) return { kind: "refuse", reason: "not_found", rate: null };
  // Read from the state row in memory: suspension costs the hot path no read. Before the rate
  // window, so a suspended account's requests use up nothing at all.
  if (s.suspended_at !== null) return { kind: "refuse", reason: "account_suspended", rate: null };
  if (keyId && input.revoked.has(keyId))
    return { kind: "refuse", reason: "key_revoked", rate: null };
  let rate: RateDecision | null = null;
  if (keyId) {
    rate = takeFromWindow(input.window, now, rateLimitOf(s));
    if (!rate.allowed) return { kind: "refuse", reason: "rate_limited", rate };
  }
  const live = liveBalance(s, input.open);
  const take = splitDebit(live, cost);
  if (!take)
    return {
      kind: "insufficient",
      balance: live,
      rate,
      // An account at zero whose auto-recharge was paused last month resumes now.
      resume: s.paused_period !== null && s.paused_period !== monthStart(now),
    };
  const after = {
    monthly: live.monthly - take.monthly,
    purchased: live.purchased - take.purchased,
  };
  const total = after.monthly + after.purchased;
  const minute = debitMinute(now, s.compacted_until);
  return {
    kind: "take",
    take,
    after,
    minute,
    rate,
    mustSettle: ringNeedsSettling(minute, s.compacted_until),
    nearThreshold: atRechargeThreshold(total),
    // Decided from memory: only the debit that crosses the level reads or writes more.
    crossesAlert:
      lowBalanceStep({
        level: s.low_balance_credits,
        armed: s.low_balance_armed === 1,
        total,
      }) === "alert",
  };
}

/**
 * A debit's answer in a call of several (`debitMany`): each settles on its own, so one that
 * fails (its write, `LedgerWriteFailed`, retryable) fails alone, as its own call would have.
 */
export function debitOutcome<R extends DebitResult>(
  settled: PromiseSettledResult<R>,
): DebitOutcome<R> {
  if (settled.status === "fulfilled") return { result: settled.value };
  const err = settled.reason as { retryable?: unknown } | undefined;
  return { failure: { message: String(settled.reason), retryable: err?.retryable === true } };
}

/** The caller's answer to a decided debit (a take's, once its write committed). */
export function debitAnswer(d: DebitDecision): DebitResult {
  if (d.kind === "take")
    return {
      ok: true,
      charged: d.take,
      minute: d.minute,
      balance: withTotal(d.after),
      rate: d.rate,
    };
  if (d.kind === "insufficient")
    return {
      ok: false,
      reason: "insufficient_credits",
      balance: withTotal(d.balance),
      rate: d.rate,
    };
  return d.reason === "rate_limited"
    ? { ok: false, reason: d.reason, rate: d.rate }
    : { ok: false, reason: d.reason, rate: null };
}
