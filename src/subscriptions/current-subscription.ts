/**
 * The one subscription an account follows. A customer can end up with two (two Checkouts
 * completed at the same moment, or a re-subscription while an old `unpaid` one still exists);
 * only the current one changes the account's plan and credits, so deleting the other one never
 * drops a paying account to Free. Events of any other subscription are recorded for operators.
 */
import Stripe from "stripe";
import { type AccountRow, claimCurrentSubscription, getAccount } from "../db/accounts";
import type { Db } from "../db/client";
import { recordOtherSubscriptionEvent } from "../db/other-subscriptions";
import type { Bindings } from "../platform/env";
import { stripeFor } from "../stripe/client";
import { LIVE_STATUSES, planFromSubscription } from "./plans";

/** `took_over`: it became the current one now, replacing one that is no longer live. */
export type SubscriptionRole = "current" | "took_over" | "other";

/**
 * Pure: whether `candidate` replaces the account's current subscription. Only a live one does,
 * and only once the current one is not live any more (ended, `unpaid`, never paid): a second
 * live subscription is a duplicate, never the one followed.
 */
export function takesOver(currentLive: boolean, candidateLive: boolean): boolean {
  return candidateLive && !currentLive;
}

/** Whether Stripe holds the subscription live now (active, trialing, past_due). */
export async function isLive(stripe: Stripe, id: string): Promise<boolean> {
  try {
    return LIVE_STATUSES.has((await stripe.subscriptions.retrieve(id)).status);
  } catch (err) {
    // One Stripe does not know (any more) is not live.
    if (err instanceof Stripe.errors.StripeInvalidRequestError) return false;
    throw err;
  }
}

/**
 * Whether events of `subscriptionId` apply to the account. The first subscription of ours seen
 * becomes the current one (claimed with a compare-and-set, so racing deliveries agree); another
 * one replaces it only by `takesOver`, decided on Stripe's state, not the events' snapshots.
 * An account from before `current_subscription_id` follows the subscription D1 mirrored.
 */
export async function roleOfSubscription(
  env: Bindings,
  db: Db,
  account: Pick<AccountRow, "id" | "currentSubscriptionId" | "stripeSubscriptionId">,
  subscriptionId: string,
): Promise<SubscriptionRole> {
  let row = account;
  // A lost compare-and-set means another delivery changed it meanwhile: decide again on that.
  for (let attempt = 0; attempt < 3; attempt++) {
    const column = row.currentSubscriptionId ?? null;
    if (column === subscriptionId) return "current";
    const followed = column ?? row.stripeSubscriptionId ?? null;
    if (followed !== null && followed !== subscriptionId) {
      const stripe = stripeFor(env);
      const [currentLive, candidateLive] = await Promise.all([
        isLive(stripe, followed),
        isLive(stripe, subscriptionId),
      ]);
      if (!takesOver(currentLive, candidateLive)) return "other";
    }
    if (await claimCurrentSubscription(db, account.id, subscriptionId, column))
      return followed === null ? "current" : "took_over";
    const fresh = await getAccount(db, account.id);
    if (!fresh) return "other";
    row = fresh;
  }
  return row.currentSubscriptionId === subscriptionId ? "current" : "other";
}

/** Statuses a subscription does not come back from by itself (`incomplete` still may). */
export const ENDED_STATUSES = new Set<Stripe.Subscription.Status>([
  "canceled",
  "unpaid",
  "incomplete_expired",
]);

/**
 * The current subscription ended while another live one of ours exists for the same customer:
 * that one becomes current, so the account keeps the plan it pays for. Stripe decides, not the
 * event's snapshot: a late event of a subscription that is live again finds none. Null when
 * there is none (the account goes back to Free).
 */
export async function liveSuccessor(
  env: Bindings,
  db: Db,
  accountId: string,
  customer: string,
  ended: string,
): Promise<Stripe.Subscription | null> {
  const subs = await stripeFor(env).subscriptions.list({ customer, status: "all", limit: 20 });
  const self = subs.data.find((s) => s.id === ended);
  if (self && !ENDED_STATUSES.has(self.status)) return null;
  const successor = subs.data.find(
    (s) =>
      s.id !== ended && LIVE_STATUSES.has(s.status) && planFromSubscription(env, s, false) !== null,
  );
  if (!successor) return null;
  return (await claimCurrentSubscription(db, accountId, successor.id, ended)) ? successor : null;
}

/** An event of a subscription that is not the current one: kept for operators, not applied. */
export async function recordOtherEvent(
  db: Db,
  accountId: string,
  event: { id: string; type: string; created: number },
  subscriptionId: string,
  status: string | null,
  action = "recorded",
): Promise<void> {
  await recordOtherSubscriptionEvent(db, {
    eventId: event.id,
    accountId,
    subscriptionId,
    eventType: event.type,
    status,
    action,
    at: new Date(event.created * 1000).toISOString(),
  });
}

const idOf = (v: string | { id: string } | null | undefined) =>
  v ? (typeof v === "string" ? v : v.id) : null;

/**
 * A duplicate subscription (a second live one, from a Checkout race): cancelled now and its
 * payments refunded, each step under an idempotency key derived from the subscription, so a
 * redelivered event or a retry after a failure never cancels or refunds twice. A refund that
 * fails throws: the webhook answers 500 and Stripe delivers the event again.
 */
export async function cancelDuplicate(
  env: Bindings,
  subscription: Stripe.Subscription,
): Promise<void> {
  const stripe = stripeFor(env);
  if (subscription.status !== "canceled") {
    try {
      await stripe.subscriptions.cancel(
        subscription.id,
        { cancellation_details: { comment: "duplicate subscription (Checkout race)" } },
        { idempotencyKey: `${subscription.id}:cancel-duplicate` },
      );
    } catch (err) {
      // Cancelled meanwhile (an operator, the other delivery): the refund below still runs.
      if (!(err instanceof Stripe.errors.StripeInvalidRequestError)) throw err;
    }
  }
  const invoice = idOf(subscription.latest_invoice);
  if (!invoice) return;
  const payments = await stripe.invoicePayments.list({ invoice, status: "paid", limit: 10 });
  for (const p of payments.data) {
    const intent = idOf(p.payment.payment_intent);
    if (!intent) continue;
    try {
      await stripe.refunds.create(
        {
          payment_intent: intent,
          reason: "duplicate",
          metadata: { subscription: subscription.id, invoice },
        },
        { idempotencyKey: `${subscription.id}:refund:${intent}` },
      );
    } catch (err) {
      // Refunded already (by an operator in the Dashboard): nothing is owed any more.
      if (
        err instanceof Stripe.errors.StripeInvalidRequestError &&
        err.code === "charge_already_refunded"
      )
        continue;
      throw err;
    }
  }
}
