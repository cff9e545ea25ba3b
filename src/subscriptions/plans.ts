import type Stripe from "stripe";
import type { Bindings } from "../platform/env";
import type { PlanId } from "../pricing";

/** Stripe Price ids of the paid plans come from configuration (test and live differ). */
export function planForPrice(
  env: Pick<Bindings, "STRIPE_PRICE_STARTER" | "STRIPE_PRICE_PRO">,
  priceId: string | null | undefined,
): PlanId | null {
  if (!priceId) return null;
  if (priceId === env.STRIPE_PRICE_STARTER) return "starter";
  if (priceId === env.STRIPE_PRICE_PRO) return "pro";
  return null;
}

/** The configured Stripe Price of a paid plan, or null when it is not configured. */
export function priceForPlan(
  env: Pick<Bindings, "STRIPE_PRICE_STARTER" | "STRIPE_PRICE_PRO">,
  plan: "starter" | "pro",
): string | null {
  return (plan === "starter" ? env.STRIPE_PRICE_STARTER : env.STRIPE_PRICE_PRO) ?? null;
}

/** Subscription states in which the customer keeps the plan they pay for. */
export const LIVE_STATUSES = new Set<Stripe.Subscription.Status>([
  "active",
  "trialing",
  "past_due",
]);

/**
 * The plan a subscription gives, or free once it has ended. Null when its price is not one
 * of ours (another product on the same Stripe account): such events change nothing.
 */
export function planFromSubscription(
  env: Pick<Bindings, "STRIPE_PRICE_STARTER" | "STRIPE_PRICE_PRO">,
  subscription: Pick<Stripe.Subscription, "status" | "items">,
  deleted: boolean,
): PlanId | null {
  const plan = planForPrice(env, subscription.items?.data?.[0]?.price?.id);
  if (!plan) return null;
  return deleted || !LIVE_STATUSES.has(subscription.status) ? "free" : plan;
}

const EVENT_RANK: Record<string, number> = {
  "customer.subscription.created": 1,
  "invoice.paid": 2,
  "customer.subscription.updated": 3,
  "customer.subscription.deleted": 4,
};

/**
 * Orders events that change the plan: Stripe's `created` (seconds), with ties broken by what
 * the event means (a deletion outranks an update in the same second, an update a creation).
 */
export function eventVersion(event: { created: number; type: string }): number {
  return event.created * 10 + (EVENT_RANK[event.type] ?? 0);
}

/**
 * Whether two versions come from the same second. The rank orders the events of one
 * subscription only: one subscription's deletion and the next one's creation in the same
 * second (a re-subscription, an operator's script) cannot be ordered by their versions, so
 * Stripe's current state decides.
 */
export function sameSecond(a: number, b: number): boolean {
  return Math.floor(a / 10) === Math.floor(b / 10);
}
