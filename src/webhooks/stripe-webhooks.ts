import { Hono } from "hono";
import Stripe from "stripe";
import {
  accountByStripeCustomer,
  getAccount,
  mirrorPlan,
  mirrorSubscriptionAt,
  type SubscriptionMirror,
} from "../db/accounts";
import type { Db } from "../db/client";
import { getTransaction } from "../db/transactions";
import { eventSeen, recordEvent } from "../db/webhook-events";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { ledgerFor } from "../ledger/client";
import { STRIPE_ACTOR } from "../platform/actor";
import { readBodyLimited } from "../platform/body";
import type { Bindings } from "../platform/env";
import { ApiError } from "../platform/errors";
import { PLANS, type PlanId } from "../pricing";
import { processRecharge } from "../purchases/consumer";
import { jobFromTransaction } from "../purchases/messages";
import { type ChargeOutcome, outcomeOfInvoice } from "../purchases/payments";
import { stripeFor } from "../stripe/client";
import { onCheckoutCompleted } from "../subscriptions/checkout";
import {
  ENDED_STATUSES,
  isLive,
  liveSuccessor,
  recordOtherEvent,
  roleOfSubscription,
} from "../subscriptions/current-subscription";
import { planOfCycleInvoice, planOfUpgradeInvoice } from "../subscriptions/invoice-plans";
import { syncPaymentMethod } from "../subscriptions/payment-methods";
import {
  eventVersion,
  planForPrice,
  planFromSubscription,
  sameSecond,
} from "../subscriptions/plans";

const WEBHOOK_BODY_LIMIT = 512 * 1024;
const cryptoProvider = Stripe.createSubtleCryptoProvider();

/**
 * `POST /webhooks/stripe`. The signature is checked on the raw bytes before anything is
 * parsed. An event id is recorded only after its handling succeeded, and every handler is
 * idempotent, so redeliveries, duplicates and any order converge to one state.
 */
const stripeDoc = describe({
  summary: "Stripe's events (signed with `Stripe-Signature`)",
  tag: "Stripe",
  security: "none",
  ok: { description: "Processed, or already processed" },
  errors: [400],
});

export const webhookRoutes = new Hono<AppEnv>().post("/stripe", stripeDoc, async (c) => {
  const secret = c.env.STRIPE_WEBHOOK_SECRET;
  if (!secret)
    throw new ApiError(
      "service_unavailable",
      "Webhooks are not configured (STRIPE_WEBHOOK_SECRET).",
    );
  const signature = c.req.header("Stripe-Signature");
  const raw = new TextDecoder().decode(await readBodyLimited(c.req.raw, WEBHOOK_BODY_LIMIT));
  let event: Stripe.Event;
  try {
    if (!signature) throw new Error("missing signature");
    event = await Stripe.webhooks.constructEventAsync(
      raw,
      signature,
      secret,
      undefined,
      cryptoProvider,
    );
  } catch {
    throw ApiError.invalidRequest("The Stripe-Signature header is missing, invalid or too old.", [
      { field: "Stripe-Signature", message: "signature verification failed" },
    ]);
  }

  // Signed but not an event (only a holder of the secret can send it): still the contract's 400.
  const shape = event as unknown as {
    id?: unknown;
    type?: unknown;
    data?: { object?: unknown };
  } | null;
  if (
    !shape ||
    typeof shape.id !== "string" ||
    typeof shape.type !== "string" ||
    typeof shape.data?.object !== "object" ||
    shape.data.object === null
  ) {
    throw ApiError.invalidRequest("The payload is not a Stripe event.", [
      { field: "body", message: "expected an event with id, type and data.object" },
    ]);
  }

  const db = c.get("db");
  if (await eventSeen(db, event.id)) return c.json({ received: true, duplicate: true }, 200);
  const handled = await handleEvent(c.env, db, event);
  await recordEvent(db, event.id, event.type);
  return c.json({ received: true, handled }, 200);
});

/** Applies one verified event. Returns whether it changed anything we track. */
export async function handleEvent(env: Bindings, db: Db, event: Stripe.Event): Promise<boolean> {
  switch (event.type) {
    case "invoice.paid":
      if (purchaseRechargeId(event.data.object)) {
        return onPurchaseInvoice(env, db, event.data.object, outcomeOfInvoice(event.data.object));
      }
      return onInvoicePaid(env, db, event, event.data.object);
    case "invoice.voided":
    case "invoice.marked_uncollectible":
      // A subscription invoice voided changes no cycle: only purchases are settled here.
      return onPurchaseInvoice(env, db, event.data.object, outcomeOfInvoice(event.data.object));
    case "invoice.payment_action_required": {
      const invoice = event.data.object;
      return onPurchaseInvoice(env, db, invoice, {
        status: "requires_action",
        code: "authentication_required",
        message: "Your bank asks you to confirm this payment. Complete it on the invoice page.",
        actionUrl: invoice.hosted_invoice_url ?? null,
        invoiceId: invoice.id ?? null,
        invoiceUrl: invoice.hosted_invoice_url ?? null,
        paymentIntentId: null,
      });
    }
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
      return onSubscription(
        env,
        db,
        event,
        event.data.object,
        event.type === "customer.subscription.deleted",
      );
    case "payment_method.attached":
    case "payment_method.detached": {
      const pm = event.data.object;
      const previous = (event.data.previous_attributes ?? {}) as { customer?: string | null };
      const customer = customerId(pm.customer) ?? customerId(previous.customer);
      return customer ? syncForCustomer(env, db, customer) : false;
    }
    case "customer.updated":
      return syncForCustomer(env, db, event.data.object.id);
    case "checkout.session.completed": {
      const account = await accountForCustomer(db, event.data.object.customer);
      return account ? onCheckoutCompleted(env, db, account.id, event.data.object) : false;
    }
    default:
      return false;
  }
}

function customerId(value: string | { id: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === "string" ? value : value.id;
}

async function accountForCustomer(db: Db, customer: string | { id: string } | null) {
  const id = customerId(customer);
  if (!id) return null;
  return (await accountByStripeCustomer(db, id)) ?? null;
}

/** The Stripe state decides, not the event snapshot: a late `attached` after `detached` is harmless. */
async function syncForCustomer(env: Bindings, db: Db, customer: string): Promise<boolean> {
  const account = await accountForCustomer(db, customer);
  if (!account) return false;
  await syncPaymentMethod(env, db, account.id, customer);
  return true;
}

/**
 * The recharge a one-off purchase invoice pays for: the recharge id in its metadata, and no
 * subscription behind it (a subscription invoice is a plan cycle, never a purchase).
 */
function purchaseRechargeId(invoice: Stripe.Invoice): string | null {
  const legacy = invoice as Stripe.Invoice & { subscription?: string | { id: string } | null };
  if (invoice.parent?.subscription_details?.subscription || legacy.subscription) return null;
  if (invoice.billing_reason && invoice.billing_reason !== "manual") return null;
  const id = invoice.metadata?.recharge_id;
  return typeof id === "string" && id.length > 0 ? id : null;
}

/**
 * A purchase invoice Stripe settled: paid (also on the hosted page after authentication),
 * voided, marked uncollectible, or waiting for the customer. Recorded through the consumer's
 * idempotent path with the settled outcome: the same recharge id keys the row and the grant,
 * so any order and any number of redeliveries grant at most once. A paid invoice after a void
 * still grants (money taken, credits given); a void after paid changes nothing.
 */
async function onPurchaseInvoice(
  env: Bindings,
  db: Db,
  invoice: Stripe.Invoice,
  settled: ChargeOutcome | null,
): Promise<boolean> {
  const rechargeId = purchaseRechargeId(invoice);
  if (!rechargeId || !settled) return false;
  const account = await accountForCustomer(db, invoice.customer);
  const row = await getTransaction(db, rechargeId);
  // Not ours (another system on the same Stripe account), or not one of this customer's:
  // nothing to settle. A purchase always has its row before its invoice exists.
  if (!account || !row || row.accountId !== account.id) return false;
  if (row.type !== "auto_recharge" && row.type !== "top_up") return false;
  await processRecharge(jobFromTransaction(row), env, { settled });
  return true;
}

/**
 * A paid invoice of the account's current subscription; the only way monthly credits come from
 * Stripe (money rule 9: credits follow money that was paid). One for a new period
 * (`subscription_create`, `subscription_cycle`) starts a cycle: monthly credits set to the
 * allowance of the plan it billed, keyed by the invoice id. An upgrade's invoice
 * (`subscription_update`, its prorations billed at once) raises them to the new plan's
 * allowance for that cycle (`grantUpgrade`). The plan comes from the invoice's lines, never
 * from the subscription's state: a change nobody paid for grants nothing.
 */
async function onInvoicePaid(
  env: Bindings,
  db: Db,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
): Promise<boolean> {
  const legacy = invoice as Stripe.Invoice & { subscription?: string | { id: string } | null };
  const subscription = customerId(
    invoice.parent?.subscription_details?.subscription ?? legacy.subscription ?? null,
  );
  if (!subscription) return false;
  const upgrade = invoice.billing_reason === "subscription_update";
  if (
    !upgrade &&
    invoice.billing_reason !== "subscription_create" &&
    invoice.billing_reason !== "subscription_cycle"
  )
    return false;
  const account = await accountForCustomer(db, invoice.customer);
  if (!account) return false;
  const lines = invoice.lines?.data ?? [];
  const planFor = (price: string | null) => planForPrice(env, price);
  const paid = upgrade
    ? planOfUpgradeInvoice({ total: invoice.total, lines }, planFor)
    : planOfCycleInvoice(lines, planFor);
  if (!paid) return false;
  const role = await roleOfSubscription(env, db, account, subscription);
  if (role === "other") {
    await recordOtherEvent(db, account.id, event, subscription, null);
    return true;
  }
  if (role === "took_over") await followTakeover(env, db, account.id, subscription, event.id);
  if (upgrade) return onUpgradePaid(env, account.id, invoice, paid.plan, paid.end);
  const version = eventVersion(event);
  // The ledger ignores an invoice older than the change that made the account free (its
  // subscription ended since). In one second, the end of the subscription this one replaced
  // cannot be told from this one's by version: Stripe says whether this one is still live.
  const live =
    account.plan === "free" &&
    account.planUpdatedAt >= version &&
    sameSecond(account.planUpdatedAt, version) &&
    (await isLive(stripeFor(env), subscription));
  const result = await ledgerFor(env, account.id).startCycle({
    ref: invoice.id as string,
    plan: paid.plan,
    version,
    live,
    startsAt: paid.start * 1000,
    endsAt: paid.end * 1000,
    source: "stripe",
    // The history row is the ledger's to write (its outbox, with the grant): renewals show
    // what was paid and link their invoice.
    history: invoiceHistory(invoice),
  });
  if (!result.ok) return false;
  await mirrorPlan(db, account.id, paid.plan, version, subscription, {
    actor: STRIPE_ACTOR,
    ref: event.id,
  });
  return true;
}

/**
 * A paid upgrade: the ledger raises this cycle's monthly credits (or keeps it for a cycle whose
 * own invoice has not arrived yet), and the history shows the invoice with what it added.
 */
async function onUpgradePaid(
  env: Bindings,
  accountId: string,
  invoice: Stripe.Invoice,
  plan: Exclude<PlanId, "free">,
  cycleEnd: number,
): Promise<boolean> {
  const result = await ledgerFor(env, accountId).grantUpgrade({
    ref: invoice.id as string,
    plan,
    cycleEndsAt: cycleEnd * 1000,
    history: { ...invoiceHistory(invoice), description: `Upgrade to ${PLANS[plan].name}` },
  });
  return result.ok;
}

/** What a paid subscription invoice's history row shows: what was paid, and its page. */
function invoiceHistory(invoice: Stripe.Invoice) {
  return {
    amountCents: invoice.amount_paid ?? 0,
    invoiceId: invoice.id ?? null,
    invoiceUrl: invoice.hosted_invoice_url ?? null,
  };
}

/**
 * A subscription event of the current subscription changes the plan (what the account shows,
 * its rate limit), never its credits. One of any other subscription is recorded, not applied.
 * When the current one ends while another live one of ours exists, that one becomes current
 * and the account keeps its plan.
 */
async function onSubscription(
  env: Bindings,
  db: Db,
  event: Stripe.Event,
  eventSubscription: Stripe.Subscription,
  deleted: boolean,
): Promise<boolean> {
  const account = await accountForCustomer(db, eventSubscription.customer);
  if (!account) return false;
  let subscription = eventSubscription;
  let plan = planFromSubscription(env, subscription, deleted);
  if (!plan) return false;
  const role = await roleOfSubscription(env, db, account, subscription.id);
  if (role === "other") {
    await recordOtherEvent(db, account.id, event, subscription.id, subscription.status);
    return true;
  }
  if (role === "took_over") await followTakeover(env, db, account.id, subscription.id, event.id);
  if (plan === "free" && (deleted || ENDED_STATUSES.has(subscription.status))) {
    const customer = customerId(subscription.customer) as string;
    const successor = await liveSuccessor(env, db, account.id, customer, subscription.id);
    if (successor) {
      await recordOtherEvent(db, account.id, event, subscription.id, subscription.status, "ended");
      subscription = successor;
      plan = planFromSubscription(env, successor, false) ?? plan;
    }
  }
  const version = eventVersion(event);
  const result = await ledgerFor(env, account.id).changePlan({
    ref: event.id,
    plan,
    version,
    cycles: plan === "free" ? "alarm" : "stripe",
  });
  if (!result.ok) return false;
  const mirrored = await mirrorPlan(
    db,
    account.id,
    plan,
    version,
    subscriptionMirror(subscription, plan),
    { actor: STRIPE_ACTOR, ref: event.id },
  );
  const stored = mirrored ? null : ((await getAccount(db, account.id))?.planUpdatedAt ?? null);
  if (stored !== null && stored >= version && sameSecond(stored, version)) {
    // An event from the same second was mirrored first: another of this kind (a cancellation
    // at period end made in the second the subscription became active), or the end of the
    // subscription this one replaced (its deletion outranks this one's creation, but they are
    // not of one subscription). `created` has one-second resolution and Stripe delivers in no
    // particular order, so which is newer cannot be told: Stripe's current subscription
    // decides, at the version stored.
    await mirrorCurrentSubscription(env, db, account.id, subscription.id, stored, event.id);
  }
  return true;
}

/**
 * A subscription that just replaced an ended current one: its events seen before were another
 * subscription's (recorded, not applied) and the event that made it current can be older than
 * the ended one's last change, so Stripe's current state gives the plan, at the version stored.
 */
async function followTakeover(
  env: Bindings,
  db: Db,
  accountId: string,
  subscriptionId: string,
  eventRef: string,
): Promise<void> {
  const stored = (await getAccount(db, accountId))?.planUpdatedAt;
  if (stored === undefined) return;
  await mirrorCurrentSubscription(
    env,
    db,
    accountId,
    subscriptionId,
    stored,
    `${eventRef}:takeover`,
  );
}

async function mirrorCurrentSubscription(
  env: Bindings,
  db: Db,
  accountId: string,
  subscriptionId: string,
  version: number,
  eventRef: string,
): Promise<void> {
  let current: Stripe.Subscription;
  try {
    current = await stripeFor(env).subscriptions.retrieve(subscriptionId);
  } catch (err) {
    // A subscription Stripe does not know (any more) changes nothing here.
    if (err instanceof Stripe.errors.StripeInvalidRequestError) return;
    throw err;
  }
  const plan = planFromSubscription(env, current, current.status === "canceled");
  if (!plan) return;
  // The ledger took the first of the tied events too: Stripe's current plan replaces it.
  const result = await ledgerFor(env, accountId).changePlan({
    ref: `${eventRef}:current`,
    plan,
    version,
    cycles: plan === "free" ? "alarm" : "stripe",
    current: true,
  });
  if (!result.ok) return;
  await mirrorSubscriptionAt(db, accountId, plan, version, subscriptionMirror(current, plan), {
    actor: STRIPE_ACTOR,
    ref: eventRef,
  });
}

/** What D1 shows of a subscription; an ended one (the plan back to free) shows none. */
function subscriptionMirror(subscription: Stripe.Subscription, plan: PlanId): SubscriptionMirror {
  if (plan === "free") return { id: null, status: null, periodEnd: null, cancelAtPeriodEnd: false };
  // Since API version 2025-03-31 the period lives on the subscription's items.
  const legacy = subscription as Stripe.Subscription & { current_period_end?: number };
  const end = subscription.items?.data?.[0]?.current_period_end ?? legacy.current_period_end;
  return {
    id: subscription.id,
    status: subscription.status,
    periodEnd: end ? new Date(end * 1000).toISOString() : null,
    cancelAtPeriodEnd: subscription.cancel_at_period_end === true,
  };
}
