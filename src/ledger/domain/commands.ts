/**
 * The ledger's commands other than the debit and the trigger (decisions.ts), decided pure: each
 * takes the state, the command, the facts the object read and says what to do; the Durable
 * Object applies the decision through `store/` in one transaction. Facts the rule may not need
 * are read through getters by the object, so it queries no more than before the rule was pure.
 */
import { DEFAULT_PACKAGE, isPackageId, PACKAGES, type PackageId } from "../../pricing";
import type { UnansweredDebit } from "./recent-debits";
import { applyDeltas, type Buckets, fitsSpendLimit } from "./rules";
import type { DebitCharge, RechargeKind, RechargeStatus, RechargeView, StateRow } from "./types";

// ---------------------------------------------------------------- refund

/** A refund's amounts: whole credits, never negative, in a whole minute. */
export function validCharge(c: DebitCharge): boolean {
  return (
    Number.isSafeInteger(c.minute) &&
    c.minute % 60 === 0 &&
    Number.isSafeInteger(c.monthly) &&
    Number.isSafeInteger(c.purchased) &&
    c.monthly >= 0 &&
    c.purchased >= 0
  );
}

export interface RefundFacts {
  /** `refund:<debit>` is in the ledger. */
  readonly refunded: boolean;
  /** `void:<debit>` is in the ledger (read only for a lost reply). */
  readonly voidRecorded: boolean;
  /** What memory says of a lost reply (read only for one not voided yet). */
  readonly unanswered: UnansweredDebit;
}

export type RefundDecision =
  | { kind: "not_found" }
  /** Already refunded: a replay changes nothing. */
  | { kind: "replay" }
  | { kind: "outcome_unknown" }
  /** The lost debit never committed: `void:<debit>` recorded, then `not_found`. */
  | { kind: "void" }
  /** Return `charge` (if its minute's aggregate still holds it). */
  | { kind: "refund"; charge: DebitCharge };

/**
 * The refund of one debit: `charge` as the debit returned it, or none and `sentAt` for a reply
 * the gateway lost (recent-debits.ts), or neither (nothing says what it took: not found).
 */
export function decideRefund(
  charge: DebitCharge | null,
  sentAt: number | undefined,
  facts: RefundFacts,
): RefundDecision {
  if (facts.refunded) return { kind: "replay" };
  let c = charge;
  if (!c && sentAt !== undefined) {
    if (facts.voidRecorded) return { kind: "not_found" };
    const unanswered = facts.unanswered;
    if (unanswered.outcome === "unknown") return { kind: "outcome_unknown" };
    if (unanswered.outcome === "never_committed") return { kind: "void" };
    c = unanswered.charge;
  }
  if (!c || !validCharge(c) || c.monthly + c.purchased === 0) return { kind: "not_found" };
  return { kind: "refund", charge: c };
}

// ---------------------------------------------------------------- adjust

export type AdjustDecision =
  | { kind: "conflict" }
  | { kind: "replay" }
  | { kind: "insufficient" }
  | { kind: "apply"; next: Buckets };

/**
 * An operator's signed adjustment, idempotent by ref: `earlier` is the entry under the same ref
 * (null: none). Another amount under it is a conflict; either bucket below zero refuses it.
 */
export function decideAdjust(
  live: Buckets,
  earlier: Buckets | null,
  delta: Buckets,
): AdjustDecision {
  if (earlier) {
    if (earlier.monthly !== delta.monthly || earlier.purchased !== delta.purchased)
      return { kind: "conflict" };
    return { kind: "replay" };
  }
  const next = applyDeltas(live, delta);
  return next ? { kind: "apply", next } : { kind: "insufficient" };
}

// ---------------------------------------------------------------- limits and settings

/** The limits after a change: an absent field keeps its value, null clears it. */
/**
 * Whether setting the spending limit from `current` to `next` raises it (null is no limit, the
 * highest). Only a person may raise it (money rule 11): a key may lower it, or leave it.
 */
export function raisesSpendLimit(current: number | null, next: number | null): boolean {
  if (current === null) return false;
  return next === null || next > current;
}

export function decideLimits(
  s: Pick<StateRow, "spend_limit_cents" | "rate_limit_override">,
  input: { spendLimitCents?: number | null; rateLimitPerMinute?: number | null },
): { spendLimitCents: number | null; rateLimitOverride: number | null } {
  return {
    spendLimitCents:
      input.spendLimitCents === undefined ? s.spend_limit_cents : input.spendLimitCents,
    rateLimitOverride:
      input.rateLimitPerMinute === undefined ? s.rate_limit_override : input.rateLimitPerMinute,
  };
}

export type AutoRechargeDecision =
  | { kind: "refuse"; reason: "payment_method_required" }
  | { kind: "set"; enabled: boolean; package: PackageId | null };

/**
 * Auto-recharge settings after a change. Enabling needs a payment method on file; enabled with
 * no package chosen takes the default one (disabled keeps none).
 */
export function decideAutoRecharge(
  s: Pick<StateRow, "has_payment_method" | "auto_enabled" | "auto_package">,
  input: { enabled?: boolean; package?: PackageId },
): AutoRechargeDecision {
  if (input.enabled === true && s.has_payment_method !== 1)
    return { kind: "refuse", reason: "payment_method_required" };
  const enabled = input.enabled ?? s.auto_enabled === 1;
  const pkg =
    input.package ??
    (isPackageId(s.auto_package) ? s.auto_package : enabled ? DEFAULT_PACKAGE : null);
  return { kind: "set", enabled, package: pkg };
}

// ---------------------------------------------------------------- top-up

export interface TopUpFacts {
  /** The recharge already under this id (the client's Idempotency-Key), if any. */
  readonly existing: RechargeView | null;
  /** The oldest purchase waiting for the customer, if any. */
  readonly waiting: RechargeView | null;
  readonly spentThisMonthCents: number;
}

export type TopUpDecision =
  | { kind: "replay"; recharge: RechargeView }
  | { kind: "refuse"; reason: "idempotency_conflict" | "payment_method_required" }
  | { kind: "refuse"; reason: "spending_limit_reached" | "account_suspended" }
  | { kind: "payment_pending"; waiting: RechargeView }
  | { kind: "start" };

/**
 * A manual top-up of `pkg`: a retry finds its first one (another package under the same key is
 * a conflict); none starts while a purchase waits for the customer (they would pay twice for one
 * shortfall), without a payment method, or over the month's spending limit (money rule 10).
 */
export function decideTopUp(
  s: Pick<StateRow, "has_payment_method" | "spend_limit_cents" | "suspended_at">,
  pkg: PackageId,
  facts: TopUpFacts,
): TopUpDecision {
  const existing = facts.existing;
  if (existing) {
    if (existing.package !== pkg) return { kind: "refuse", reason: "idempotency_conflict" };
    return { kind: "replay", recharge: existing };
  }
  // A retry still finds its first top-up (above); nothing new is bought while suspended.
  if (s.suspended_at !== null) return { kind: "refuse", reason: "account_suspended" };
  const waiting = facts.waiting;
  if (waiting) return { kind: "payment_pending", waiting };
  if (s.has_payment_method !== 1) return { kind: "refuse", reason: "payment_method_required" };
  if (!fitsSpendLimit(facts.spentThisMonthCents, PACKAGES[pkg].priceCents, s.spend_limit_cents))
    return { kind: "refuse", reason: "spending_limit_reached" };
  return { kind: "start" };
}

// ---------------------------------------------------------------- recharge state machine

/**
 * What happens to a recharge: paid (credits granted), failed (final unless paid after all), or
 * waiting for the customer to authenticate.
 */
export type RechargeEvent = "paid" | "failed" | "requires_action";

export type RechargeTransition =
  | { kind: "refuse"; reason: "already_succeeded" }
  /** Nothing to record: the recharge already is there, or failed is final. */
  | { kind: "same" }
  | { kind: "move"; from: RechargeStatus; to: RechargeStatus };

/**
 * The recharge state machine, the one place it is written:
 * pending → requires_action | failed | succeeded; requires_action → failed | succeeded;
 * failed → succeeded only (a payment that did go through is still credited); succeeded is
 * final (a failure reported after it is refused, not recorded).
 */
export function nextRechargeStatus(
  current: RechargeStatus,
  event: RechargeEvent,
): RechargeTransition {
  if (event === "paid")
    return current === "succeeded"
      ? { kind: "same" }
      : { kind: "move", from: current, to: "succeeded" };
  if (current === "succeeded") return { kind: "refuse", reason: "already_succeeded" };
  // Failed is final; waiting for the customer can only become failed or succeeded.
  if (current === "failed" || current === event) return { kind: "same" };
  return { kind: "move", from: current, to: event };
}

// ---------------------------------------------------------------- purchased credits

export type GrantPurchasedDecision =
  | { kind: "refuse"; reason: "unknown_recharge" | "credits_mismatch" }
  | { kind: "replay" }
  | { kind: "grant"; credits: number; note: string; transition: RechargeTransition };

/**
 * A paid recharge's credits, idempotent by the recharge id (its ledger ref, `granted`): the
 * credits must be the recharge's own. A recharge first recorded as failed is still credited.
 */
export function decideGrantPurchased(
  recharge: {
    kind: RechargeKind;
    package: PackageId;
    credits: number;
    status: RechargeStatus;
  } | null,
  credits: number,
  facts: { readonly granted: boolean },
): GrantPurchasedDecision {
  if (!recharge) return { kind: "refuse", reason: "unknown_recharge" };
  if (recharge.credits !== credits) return { kind: "refuse", reason: "credits_mismatch" };
  if (facts.granted) return { kind: "replay" };
  return {
    kind: "grant",
    credits,
    note: `${recharge.kind} ${recharge.package}`,
    transition: nextRechargeStatus(recharge.status, "paid"),
  };
}

// ---------------------------------------------------------------- plan change

export type PlanChangeDecision =
  | { kind: "ignore" }
  | { kind: "apply"; stripeCycles: number; changed: boolean; note: string };

/**
 * A plan change of `version` (events arrive in any order): an older version, or the same one
 * unless read from Stripe's current subscription, is stale; a seen ref is a replay. An ended
 * subscription (`cycles: "alarm"`) hands cycles back to the alarm at once; invoices take them
 * over when the first one arrives (startCycle).
 */
export function decidePlanChange(
  s: Pick<StateRow, "plan" | "plan_version" | "stripe_cycles">,
  input: { plan: StateRow["plan"]; version: number; cycles: "stripe" | "alarm"; current?: boolean },
  facts: { readonly seen: boolean },
): PlanChangeDecision {
  const stale =
    input.version < s.plan_version || (input.version === s.plan_version && !input.current);
  if (stale || facts.seen) return { kind: "ignore" };
  return {
    kind: "apply",
    stripeCycles: input.cycles === "alarm" ? 0 : s.stripe_cycles,
    changed: s.plan !== input.plan,
    note: `${s.plan} -> ${input.plan}`,
  };
}
