/**
 * Billing cycles, as pure decisions: what a cycle's start and a paid upgrade do to the plan,
 * the cycle bounds and the monthly bucket (money rule 9). The Durable Object applies them.
 *
 * Monthly credits follow money that was paid, never a subscription change alone: a cycle's
 * paid invoice sets them to the allowance of the plan it billed, and a paid upgrade invoice
 * (`subscription_update`) raises them to the new plan's allowance for the cycle it belongs to.
 * Within a cycle they never pass the largest allowance paid for in it (`cycle_max_monthly`).
 */
import { PLANS, type PlanId } from "../../pricing";
import { addOneMonth, upgradeGrant } from "./rules";
import type { StateRow } from "./types";

export interface CycleStart {
  ref: string;
  plan: PlanId;
  version: number;
  startsAt: number;
  endsAt: number;
  source: "stripe" | "alarm";
  /**
   * The largest plan of the upgrades already paid for this cycle (their invoices arrived
   * before the cycle's own invoice); none when there are none.
   */
  paidUpgrade?: PlanId | null;
  /**
   * Stripe holds the invoice's subscription live now: whatever made the account free was not
   * its end (another subscription's, in the same second), so the invoice is not ignored.
   */
  live?: boolean;
}

export type CycleDecision =
  /** An invoice older than the cancellation that made the account free: it starts nothing. */
  | { kind: "ignore" }
  | {
      kind: "apply";
      plan: PlanId;
      version: number;
      /** Whether this is a newer cycle than the current one (else it only records the plan). */
      newer: boolean;
      /** The monthly bucket after it: the allowance for a new cycle, unchanged otherwise. */
      monthly: number;
      /** The plan whose allowance a new cycle granted (what was paid for it). */
      granted: PlanId;
      startedAt: number;
      endsAt: number;
      stripeCycles: number;
      cycleMaxMonthly: number;
    };

/**
 * Order-independent: the invoice's plan is taken only if it is newer (`version`) than the last
 * plan change seen (an older one, once the account is free, starts nothing unless its
 * subscription is `live`), and an invoice for an older period never moves the cycle back. A new
 * cycle's monthly credits are the allowance of what was paid for it (they never add up): the
 * plan the invoice billed, or a larger one whose upgrade was already paid for this cycle. A
 * newer unpaid plan change (a subscription event) shows as the plan but adds nothing. Its bound
 * is what it grants.
 */
export function decideCycle(s: StateRow, input: CycleStart): CycleDecision {
  const takePlan = input.version > s.plan_version;
  if (input.source === "stripe" && !takePlan && s.plan === "free" && !input.live)
    return { kind: "ignore" };
  const plan = takePlan ? input.plan : s.plan;
  const newer =
    input.endsAt > s.cycle_ends_at || (input.source === "stripe" && s.stripe_cycles === 0);
  // An alarm-driven cycle is paid for by nobody: it grants the plan the account is on.
  const billed = input.source === "stripe" ? input.plan : plan;
  const upgrade = input.paidUpgrade ?? null;
  const granted =
    upgrade && PLANS[upgrade].monthlyCredits > PLANS[billed].monthlyCredits ? upgrade : billed;
  const monthly = newer ? PLANS[granted].monthlyCredits : s.monthly;
  return {
    kind: "apply",
    plan,
    version: takePlan ? input.version : s.plan_version,
    newer,
    monthly,
    granted,
    startedAt: newer ? input.startsAt : s.cycle_started_at,
    endsAt: newer ? input.endsAt : s.cycle_ends_at,
    stripeCycles: input.source === "stripe" ? 1 : s.stripe_cycles,
    cycleMaxMonthly: newer ? monthly : s.cycle_max_monthly,
  };
}

export interface PaidUpgrade {
  /** The plan the paid `subscription_update` invoice billed (its positive proration line). */
  plan: PlanId;
  /** The end of the subscription period it prorates (ms): names the cycle it is for. */
  cycleEndsAt: number;
}

export type UpgradeDecision =
  /** For the current cycle: monthly credits raised by `added`, the bound to `cycleMaxMonthly`. */
  | { kind: "grant"; added: number; cycleMaxMonthly: number }
  /** For a cycle that has ended: nothing (its credits ended with it). */
  | { kind: "earlier" }
  /**
   * For a cycle whose own invoice has not arrived yet (events come in any order): nothing now;
   * that cycle starts with this allowance if it is the larger (`paidUpgradeAllowance`).
   */
  | { kind: "later" };

/**
 * A paid upgrade invoice: raises the monthly credits by the difference up to the new plan's
 * allowance, never past the largest allowance paid for in the cycle (a second upgrade to the
 * same plan, or an invoice for a smaller plan, adds nothing). Idempotency is the caller's (by
 * invoice id). Only a cycle started by a Stripe invoice can be the upgrade's cycle: an account
 * on alarm-driven cycles (free, complimentary, or its subscription ended) waits for one.
 */
export function decideUpgrade(
  s: Pick<StateRow, "cycle_ends_at" | "stripe_cycles" | "cycle_max_monthly">,
  input: PaidUpgrade,
): UpgradeDecision {
  if (s.stripe_cycles === 0 || input.cycleEndsAt > s.cycle_ends_at) return { kind: "later" };
  if (input.cycleEndsAt < s.cycle_ends_at) return { kind: "earlier" };
  const allowance = PLANS[input.plan].monthlyCredits;
  return {
    kind: "grant",
    added: upgradeGrant(s.cycle_max_monthly, allowance),
    cycleMaxMonthly: Math.max(s.cycle_max_monthly, allowance),
  };
}

/** The cycle an alarm-driven account is in at `now`: a long-idle one catches up in one grant. */
export function currentAlarmCycle(
  cycleEndsAt: number,
  now: number,
): { start: number; end: number } {
  let start = cycleEndsAt;
  let end = addOneMonth(start);
  while (end <= now) {
    start = end;
    end = addOneMonth(start);
  }
  return { start, end };
}
