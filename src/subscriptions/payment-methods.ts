import type Stripe from "stripe";
import { ensureStripeCustomer } from "../accounts/stripe-customers";
import { type CardOnFile, setPaymentMethod } from "../db/accounts";
import type { Db } from "../db/client";
import { ledgerFor } from "../ledger/client";
import type { Bindings } from "../platform/env";
import { stripeFor } from "../stripe/client";

export interface AttachedPaymentMethod {
  account_id: string;
  payment_method: string;
  card: { brand: string; last4: string } | null;
  default: true;
}

/**
 * Attaches a payment method to the account's Stripe customer and makes it the default.
 * Stripe answers a test id such as `pm_card_visa` with a new `pm_…`; that new id is the one
 * we keep. Every write carries its own idempotency key so a retried request attaches once.
 */
export async function attachPaymentMethod(
  env: Bindings,
  db: Db,
  accountId: string,
  paymentMethod: string,
  idempotencyKey?: string,
): Promise<AttachedPaymentMethod> {
  const stripe = stripeFor(env);
  const customerId = await ensureStripeCustomer(env, db, accountId);
  const attached = await stripe.paymentMethods.attach(
    paymentMethod,
    { customer: customerId },
    // Keyed by the operator's request: a retry of it attaches once, while attaching the same
    // test card again later is a new attach (a key derived from the card would replay a
    // stale answer, possibly for a card detached since).
    { idempotencyKey: `${accountId}:attach:${idempotencyKey ?? crypto.randomUUID()}` },
  );
  // Setting the default is idempotent by nature; a fixed key would replay an old answer
  // and leave Stripe's default on another card.
  await stripe.customers.update(customerId, {
    invoice_settings: { default_payment_method: attached.id },
  });
  await setPaymentMethod(db, accountId, attached.id, cardOf(attached));
  await ledgerFor(env, accountId).setPaymentMethod(attached.id);
  return {
    account_id: accountId,
    payment_method: attached.id,
    card: attached.card ? { brand: attached.card.brand, last4: attached.card.last4 } : null,
    default: true,
  };
}

/**
 * Re-reads the customer's payment method from Stripe: the default one, else the newest card
 * attached. Whatever order webhooks arrive in, the result is Stripe's current state.
 */
export async function syncPaymentMethod(
  env: Bindings,
  db: Db,
  accountId: string,
  customerId: string,
): Promise<string | null> {
  const stripe = stripeFor(env);
  const customer = await stripe.customers.retrieve(customerId);
  let paymentMethodId: string | null = null;
  if (!("deleted" in customer && customer.deleted)) {
    const fromDefault =
      (customer as Stripe.Customer).invoice_settings?.default_payment_method ?? null;
    paymentMethodId = typeof fromDefault === "string" ? fromDefault : (fromDefault?.id ?? null);
    if (!paymentMethodId) {
      const cards = await stripe.paymentMethods.list({
        customer: customerId,
        type: "card",
        limit: 1,
      });
      paymentMethodId = cards.data[0]?.id ?? null;
    }
  }
  const card = paymentMethodId
    ? cardOf(await stripe.paymentMethods.retrieve(paymentMethodId))
    : null;
  // The ledger first: once `GET /v1/account` shows the card (D1), a purchase can use it.
  await ledgerFor(env, accountId).setPaymentMethod(paymentMethodId);
  await setPaymentMethod(db, accountId, paymentMethodId, card);
  return paymentMethodId;
}

/** The card's display fields; null for a payment method that is not a card. */
export function cardOf(pm: Pick<Stripe.PaymentMethod, "card">): CardOnFile | null {
  if (!pm.card) return null;
  return {
    brand: pm.card.brand,
    last4: pm.card.last4,
    expMonth: pm.card.exp_month,
    expYear: pm.card.exp_year,
  };
}

/**
 * Makes `paymentMethodId` the customer's default for invoices (Checkout sets a subscription's
 * card on the subscription only, and setup mode sets none), then re-reads it like every sync.
 */
export async function makeDefaultPaymentMethod(
  env: Bindings,
  db: Db,
  accountId: string,
  customerId: string,
  paymentMethodId: string,
): Promise<void> {
  // Setting the default is idempotent by nature; a fixed key would replay a stale answer.
  await stripeFor(env).customers.update(customerId, {
    invoice_settings: { default_payment_method: paymentMethodId },
  });
  await syncPaymentMethod(env, db, accountId, customerId);
}
