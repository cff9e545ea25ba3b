/**
 * The way back from a plan Checkout. Stripe sends the customer to the page at once, but the
 * subscription reaches D1 and the ledger only when its webhooks arrive, a moment later: until
 * then the page would say "Free" and offer Subscribe again. So the page reads the Checkout
 * session from Stripe (its id is in the return URL) and says the truth: paid, and the plan
 * being activated, refreshing itself (no script) until the webhooks have mirrored it.
 */
import Stripe from "stripe";
import type { Bindings } from "../../platform/env";
import type { PlanId } from "../../pricing";
import { stripeFor } from "../../stripe/client";
import { LIVE_STATUSES } from "../../subscriptions/plans";

/** Checkout session ids as Stripe writes them; anything else in the URL is ignored. */
export const SESSION_ID = /^cs_[A-Za-z0-9_]{1,200}$/;
/** Seconds between two looks while the plan is being activated. */
export const ACTIVATION_REFRESH_SECONDS = 3;
/** Looks before the page stops refreshing and says it takes longer than usual (about a minute). */
export const ACTIVATION_MAX_LOOKS = 20;

/** What the page needs of a Checkout session (Stripe's object, narrowed). */
export interface CheckoutFacts {
  status: string | null;
  mode: string;
  /** The account the session was made for (`client_reference_id`, or the metadata's). */
  accountId: string | null;
  plan: string | null;
  subscriptionId: string | null;
  /** `payment_status`: "unpaid" for a payment method that settles later (not a card). */
  paymentStatus: string | null;
}

/** What D1 and the ledger show of the account's plan now. */
export interface PlanMirror {
  accountId: string;
  subscriptionId: string | null;
  subscriptionStatus: string | null;
  /** The plan D1 shows, and the one the ledger grants by: both must have followed. */
  plan: PlanId;
  ledgerPlan: PlanId;
}

export type CheckoutReturn =
  /** Not this account's plan session (or unknown): the page says nothing about it. */
  | { state: "unknown" }
  /** Open or expired: the customer came back without paying. */
  | { state: "not_completed" }
  /** Completed (paid, unless `paid` is false); the webhooks have not mirrored it yet. */
  | { state: "activating"; plan: Exclude<PlanId, "free">; paid: boolean }
  /** Paid and mirrored: the page shows the plan itself. */
  | { state: "active"; plan: Exclude<PlanId, "free"> };

const paidPlan = (p: string | null): Exclude<PlanId, "free"> | null =>
  p === "starter" || p === "pro" ? p : null;

/** Where a returning customer's plan Checkout stands. Pure: Stripe's and our facts in, a state out. */
export function checkoutReturn(session: CheckoutFacts | null, mirror: PlanMirror): CheckoutReturn {
  if (session?.mode !== "subscription" || session.accountId !== mirror.accountId) {
    return { state: "unknown" };
  }
  const plan = paidPlan(session.plan);
  if (!plan) return { state: "unknown" };
  if (session.status !== "complete" || !session.subscriptionId) return { state: "not_completed" };
  const mirrored =
    mirror.subscriptionId === session.subscriptionId &&
    mirror.subscriptionStatus !== null &&
    LIVE_STATUSES.has(mirror.subscriptionStatus as Stripe.Subscription.Status) &&
    mirror.plan === plan &&
    mirror.ledgerPlan === plan;
  if (mirrored) return { state: "active", plan };
  return { state: "activating", plan, paid: session.paymentStatus !== "unpaid" };
}

const idOf = (v: string | { id: string } | null | undefined) =>
  v ? (typeof v === "string" ? v : v.id) : null;

/** The session as Stripe has it now; null when Stripe does not know the id. */
export async function readCheckoutSession(
  env: Pick<Bindings, "STRIPE_SECRET_KEY" | "STRIPE_API_URL">,
  sessionId: string,
): Promise<CheckoutFacts | null> {
  let session: Stripe.Checkout.Session;
  try {
    session = await stripeFor(env).checkout.sessions.retrieve(sessionId);
  } catch (err) {
    if (err instanceof Stripe.errors.StripeInvalidRequestError) return null;
    throw err;
  }
  return {
    status: session.status,
    mode: session.mode,
    accountId: session.client_reference_id ?? session.metadata?.account_id ?? null,
    plan: session.metadata?.plan ?? null,
    subscriptionId: idOf(session.subscription),
    paymentStatus: session.payment_status,
  };
}
