import { getAccount, setStripeCustomer } from "../db/accounts";
import type { Db } from "../db/client";
import type { Bindings } from "../platform/env";
import { stripeFor } from "../stripe/client";

/**
 * The account's Stripe customer id, creating the customer when the account was made without
 * one (Stripe not configured at the time). The idempotency key makes a retry find the first.
 */
export async function ensureStripeCustomer(
  env: Bindings,
  db: Db,
  accountId: string,
): Promise<string> {
  const account = await getAccount(db, accountId);
  if (!account) throw new Error(`account ${accountId} not found`);
  if (account.stripeCustomerId) return account.stripeCustomerId;
  const customer = await stripeFor(env).customers.create(
    { email: account.email, metadata: { account_id: accountId } },
    { idempotencyKey: `${accountId}:customer` },
  );
  await setStripeCustomer(db, accountId, customer.id);
  return customer.id;
}
