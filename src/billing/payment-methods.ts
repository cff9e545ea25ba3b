import { eq } from "drizzle-orm";
import { accounts } from "../db/schema";
import type { Bindings, Db } from "../env";
import { ApiError } from "../errors";
import { ledgerFor } from "../ledger/client";
import { stripeFor } from "./stripe-client";
import { providerError } from "./stripe-errors";

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
): Promise<AttachedPaymentMethod> {
  const account = await db.select().from(accounts).where(eq(accounts.id, accountId)).get();
  if (!account) throw ApiError.notFound("No such account.");
  const stripe = stripeFor(env);
  try {
    let customerId = account.stripeCustomerId;
    if (!customerId) {
      const customer = await stripe.customers.create(
        { email: account.email, metadata: { account_id: accountId } },
        { idempotencyKey: `${accountId}:customer` },
      );
      customerId = customer.id;
      await db
        .update(accounts)
        .set({ stripeCustomerId: customerId })
        .where(eq(accounts.id, accountId));
    }
    const attached = await stripe.paymentMethods.attach(
      paymentMethod,
      { customer: customerId },
      { idempotencyKey: `${accountId}:attach:${paymentMethod}` },
    );
    await stripe.customers.update(
      customerId,
      { invoice_settings: { default_payment_method: attached.id } },
      { idempotencyKey: `${accountId}:default:${attached.id}` },
    );
    await db
      .update(accounts)
      .set({ paymentMethodId: attached.id })
      .where(eq(accounts.id, accountId));
    await ledgerFor(env, accountId).setPaymentMethod(true);
    return {
      account_id: accountId,
      payment_method: attached.id,
      card: attached.card ? { brand: attached.card.brand, last4: attached.card.last4 } : null,
      default: true,
    };
  } catch (err) {
    throw providerError(err, "payment_method");
  }
}
