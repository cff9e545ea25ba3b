/**
 * Stripe Checkout: a customer starts a paid plan (subscription mode, which also saves the card)
 * or adds a card (setup mode). What completes there comes back as `checkout.session.completed`:
 * the card becomes the customer's default for later off-session purchases, and the plan then
 * runs through the subscription and invoice events like any other.
 */
import Stripe from "stripe";
import { ensureStripeCustomer } from "../accounts/stripe-customers";
import { getAccount } from "../db/accounts";
import type { Db } from "../db/client";
import { sha256Hex } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import type { PlanId } from "../pricing";
import { stripeFor } from "../stripe/client";
import { cancelDuplicate, recordOtherEvent, roleOfSubscription } from "./current-subscription";
import { makeDefaultPaymentMethod } from "./payment-methods";
import { LIVE_STATUSES, planFromSubscription, priceForPlan } from "./plans";

export type CheckoutResult =
  | { ok: true; url: string }
  | {
      ok: false;
      reason:
        | "subscription_exists"
        | "plan_not_configured"
        | "not_initialized"
        | "account_suspended";
    };

/**
 * The Stripe idempotency key for a client's `Idempotency-Key`: hashed, since Stripe takes keys of
 * at most 255 characters and the client's may already be that long.
 */
async function stripeKey(accountId: string, what: string, clientKey: string): Promise<string> {
  return `${accountId}:${what}:${await sha256Hex(clientKey)}`;
}

function returnUrl(env: Pick<Bindings, "DASHBOARD_URL">, outcome: string): string {
  const url = new URL(env.DASHBOARD_URL);
  url.searchParams.set("checkout", outcome);
  return url.toString();
}

/** A live subscription in Stripe (D1 mirrors it, but may lag behind Stripe's events). */
async function hasLiveSubscription(stripe: Stripe, customer: string): Promise<boolean> {
  const subs = await stripe.subscriptions.list({ customer, status: "all", limit: 20 });
  return subs.data.some((s) => LIVE_STATUSES.has(s.status));
}

/**
 * Stripe calls one plan Checkout may make to tidy up: one page (one call, whatever its size)
 * of the newest open sessions, and at most this many expiries. Unbounded, N concurrent requests made O(N²) calls (each listed
 * and expired every other's session), and Stripe's rate limit is per Stripe account: one
 * customer could stall every other customer's purchases (issue 18).
 */
const OPEN_SESSIONS_PAGE = 100;
const MAX_EXPIRES_PER_REQUEST = 3;

/**
 * One open plan session per customer, so two tabs or a double click cannot end in two
 * subscriptions and two charges. After `mine` is created, the customer's newest open sessions
 * are listed (one page: Stripe lists newest first, so an older one can never be the newest);
 * the newest subscription-mode one (by `created`, then by id: `created` has one-second
 * resolution) survives and up to MAX_EXPIRES_PER_REQUEST others are expired. Every request,
 * however they interleave, picks the same survivor, so concurrent requests never expire each
 * other's sessions all round. Sessions left open by a burst larger than that are expired by the
 * next requests (and the hourly limit on Checkout bounds the burst); one that completes anyway
 * beside a live subscription is reported (reportDuplicateSubscription). Returns the session to
 * send the caller to: the survivor when it is for the same plan (a double click in one second
 * may have made the other request's session the survivor), else `mine`. A session that
 * completed or expired since the list cannot be expired: no error.
 */
async function keepOnePlanSession(
  stripe: Stripe,
  customer: string,
  mine: Stripe.Checkout.Session,
): Promise<Stripe.Checkout.Session> {
  const page = await stripe.checkout.sessions.list({
    customer,
    status: "open",
    limit: OPEN_SESSIONS_PAGE,
  });
  const open = page.data.filter((s) => s.mode === "subscription");
  const newer = (a: Stripe.Checkout.Session, b: Stripe.Checkout.Session) =>
    a.created > b.created || (a.created === b.created && a.id > b.id);
  const survivor = open.reduce((best, s) => (newer(s, best) ? s : best), mine);
  const others = open.filter((s) => s.id !== survivor.id).slice(0, MAX_EXPIRES_PER_REQUEST);
  for (const s of others) {
    try {
      await stripe.checkout.sessions.expire(s.id);
    } catch (err) {
      // Only an open session can be expired: this one completed or expired since the list.
      if (err instanceof Stripe.errors.StripeInvalidRequestError) continue;
      throw err;
    }
  }
  return survivor.metadata?.plan === mine.metadata?.plan ? survivor : mine;
}

/**
 * `POST /v1/account/checkout`: a subscription-mode Checkout session for the plan's Price. The
 * customer's other open plan sessions are expired (keepOnePlanSession).
 */
export async function startPlanCheckout(
  env: Bindings,
  db: Db,
  accountId: string,
  plan: Exclude<PlanId, "free">,
  idempotencyKey?: string,
): Promise<CheckoutResult> {
  const price = priceForPlan(env, plan);
  if (!price) return { ok: false, reason: "plan_not_configured" };
  const account = await getAccount(db, accountId);
  if (!account) return { ok: false, reason: "not_initialized" };
  // Nothing is bought while an operator has the account suspended (its D1 mirror says so).
  if (account.suspendedAt) return { ok: false, reason: "account_suspended" };
  const stripe = stripeFor(env);
  const customer = await ensureStripeCustomer(env, db, accountId);
  if (await hasLiveSubscription(stripe, customer))
    return { ok: false, reason: "subscription_exists" };
  const session = await stripe.checkout.sessions.create(
    {
      mode: "subscription",
      customer,
      client_reference_id: accountId,
      line_items: [{ price, quantity: 1 }],
      // The card entered is kept for the plan's renewals; completion copies it to the customer
      // as the default for purchases too.
      payment_method_collection: "always",
      success_url: `${returnUrl(env, "subscribed")}&session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: returnUrl(env, "cancelled"),
      metadata: { account_id: accountId, plan },
      subscription_data: { metadata: { account_id: accountId, plan } },
    },
    idempotencyKey
      ? { idempotencyKey: await stripeKey(accountId, "checkout", idempotencyKey) }
      : undefined,
  );
  const kept = await keepOnePlanSession(stripe, customer, session);
  if (!kept.url) throw new Error(`checkout session ${kept.id} has no url`);
  return { ok: true, url: kept.url };
}

/**
 * `POST /v1/account/payment-method/setup`: a setup-mode Checkout session that adds a card.
 * Older open setup sessions stay open: completing two only saves two cards (the last one
 * becomes the default), nothing is charged.
 */
export async function startCardSetup(
  env: Bindings,
  db: Db,
  accountId: string,
  idempotencyKey?: string,
): Promise<CheckoutResult> {
  const account = await getAccount(db, accountId);
  if (!account) return { ok: false, reason: "not_initialized" };
  const customer = await ensureStripeCustomer(env, db, accountId);
  const session = await stripeFor(env).checkout.sessions.create(
    {
      mode: "setup",
      customer,
      currency: "usd",
      client_reference_id: accountId,
      success_url: `${returnUrl(env, "card_added")}&session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: returnUrl(env, "cancelled"),
      metadata: { account_id: accountId },
      setup_intent_data: { metadata: { account_id: accountId } },
    },
    idempotencyKey
      ? { idempotencyKey: await stripeKey(accountId, "setup", idempotencyKey) }
      : undefined,
  );
  if (!session.url) throw new Error(`checkout session ${session.id} has no url`);
  return { ok: true, url: session.url };
}

const idOf = (v: string | { id: string } | null | undefined) =>
  v ? (typeof v === "string" ? v : v.id) : null;

/**
 * A plan Checkout completed: its subscription becomes the account's current one if there is
 * none yet (or the current one is no longer live). Completed while another live subscription
 * is current (a race keepOnePlanSession cannot close: two sessions opened at the same moment,
 * or one completed between another's creation and its list), it is a duplicate: two
 * subscriptions would mean two charges, so it is cancelled and its payment refunded at once,
 * and recorded for the operator. Its own events are never applied (only the current
 * subscription's are), so cancelling it leaves the account's plan alone.
 */
async function settleSubscription(
  env: Bindings,
  db: Db,
  accountId: string,
  session: Stripe.Checkout.Session,
  subscription: Stripe.Subscription,
): Promise<void> {
  if (!LIVE_STATUSES.has(subscription.status) || !planFromSubscription(env, subscription, false))
    return;
  const account = await getAccount(db, accountId);
  if (!account) return;
  if ((await roleOfSubscription(env, db, account, subscription.id)) !== "other") return;
  console.warn(
    "duplicate subscription cancelled and refunded",
    idOf(subscription.customer),
    subscription.id,
    "current:",
    (await getAccount(db, accountId))?.currentSubscriptionId ?? null,
  );
  await cancelDuplicate(env, subscription);
  await recordOtherEvent(
    db,
    accountId,
    { id: `${session.id}:duplicate`, type: "checkout.session.completed", created: session.created },
    subscription.id,
    "canceled",
    "cancelled and refunded (duplicate)",
  );
}

/**
 * Whether the customer's default card was saved after this Checkout began: then it is the
 * customer's later choice (a card added since, e.g. in setup mode), and a late or redelivered
 * completion of this older session must not put its card back.
 */
async function laterDefaultThan(
  stripe: Stripe,
  customerId: string,
  paymentMethod: string,
  session: Stripe.Checkout.Session,
): Promise<boolean> {
  const customer = await stripe.customers.retrieve(customerId);
  if (customer.deleted) return false;
  const current = idOf(customer.invoice_settings?.default_payment_method);
  if (!current || current === paymentMethod) return false;
  return (await stripe.paymentMethods.retrieve(current)).created >= session.created;
}

/**
 * `checkout.session.completed`: the card entered becomes the customer's default, unless the
 * customer saved another one after this session began. Safe in any order and any number of
 * times: it re-reads Stripe and sets what Stripe says.
 */
export async function onCheckoutCompleted(
  env: Bindings,
  db: Db,
  accountId: string,
  session: Stripe.Checkout.Session,
): Promise<boolean> {
  const customer = idOf(session.customer);
  if (!customer || session.status !== "complete") return false;
  const stripe = stripeFor(env);
  let paymentMethod: string | null = null;
  if (session.mode === "subscription") {
    const subscriptionId = idOf(session.subscription);
    if (!subscriptionId) return false;
    const subscription = await stripe.subscriptions.retrieve(subscriptionId);
    await settleSubscription(env, db, accountId, session, subscription);
    paymentMethod = idOf(subscription.default_payment_method);
  } else if (session.mode === "setup") {
    const setupIntentId = idOf(session.setup_intent);
    if (!setupIntentId) return false;
    const setupIntent = await stripe.setupIntents.retrieve(setupIntentId);
    paymentMethod = setupIntent.status === "succeeded" ? idOf(setupIntent.payment_method) : null;
  }
  if (!paymentMethod) return false;
  if (await laterDefaultThan(stripe, customer, paymentMethod, session)) return true;
  await makeDefaultPaymentMethod(env, db, accountId, customer, paymentMethod);
  return true;
}
