import { eq } from "drizzle-orm";
import { accounts } from "../db/schema";
import type { Bindings, Db } from "../env";
import { ApiError } from "../errors";
import { stripeFor } from "./stripe-client";

/**
 * The account's Stripe customer id, creating the customer when the account was made without
 * one (Stripe not configured at the time). The idempotency key makes a retry find the first.
 */
export async function ensureStripeCustomer(
  env: Bindings,
  db: Db,
  accountId: string,
): Promise<string> {
  const account = await db.select().from(accounts).where(eq(accounts.id, accountId)).get();
  if (!account) throw ApiError.notFound("No such account.");
  if (account.stripeCustomerId) return account.stripeCustomerId;
  const customer = await stripeFor(env).customers.create(
    { email: account.email, metadata: { account_id: accountId } },
    { idempotencyKey: `${accountId}:customer` },
  );
  await db
    .update(accounts)
    .set({ stripeCustomerId: customer.id })
    .where(eq(accounts.id, accountId));
  return customer.id;
}
