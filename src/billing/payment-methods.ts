import type Stripe from "stripe";
import { setPaymentMethodId } from "../db/accounts";
import type { Db } from "../db/client";
import type { Bindings } from "../env";
import { ledgerFor } from "../ledger/client";
import { ensureStripeCustomer } from "./customers";
import { stripeFor } from "./stripe-client";

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
  await setPaymentMethodId(db, accountId, attached.id);
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
  await setPaymentMethodId(db, accountId, paymentMethodId);
  await ledgerFor(env, accountId).setPaymentMethod(paymentMethodId);
  return paymentMethodId;
}
