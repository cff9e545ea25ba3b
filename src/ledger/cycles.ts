/**
 * Billing cycles, as pure decisions: what a cycle's start does to the plan, the cycle bounds
 * and the monthly bucket (money rule 9). The Durable Object applies them.
 */
import { PLANS, type PlanId } from "../pricing";
import { addOneMonth } from "./rules";
import type { StateRow } from "./types";

export interface CycleStart {
  ref: string;
  plan: PlanId;
  version: number;
  startsAt: number;
  endsAt: number;
  source: "stripe" | "alarm";
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
      startedAt: number;
      endsAt: number;
      stripeCycles: number;
      cycleMaxMonthly: number;
    };

/**
 * Order-independent: the invoice's plan is taken only if it is newer (`version`) than the last
 * plan change seen, and an invoice for an older period never moves the cycle back. A new
 * cycle's monthly credits are the allowance (they never add up), and its bound is what it grants.
 */
export function decideCycle(s: StateRow, input: CycleStart): CycleDecision {
  const takePlan = input.version > s.plan_version;
  if (input.source === "stripe" && !takePlan && s.plan === "free") return { kind: "ignore" };
  const plan = takePlan ? input.plan : s.plan;
  const newer =
    input.endsAt > s.cycle_ends_at || (input.source === "stripe" && s.stripe_cycles === 0);
  const monthly = newer ? PLANS[plan].monthlyCredits : s.monthly;
  return {
    kind: "apply",
    plan,
    version: takePlan ? input.version : s.plan_version,
    newer,
    monthly,
    startedAt: newer ? input.startsAt : s.cycle_started_at,
    endsAt: newer ? input.endsAt : s.cycle_ends_at,
    stripeCycles: input.source === "stripe" ? 1 : s.stripe_cycles,
    cycleMaxMonthly: newer ? monthly : s.cycle_max_monthly,
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
