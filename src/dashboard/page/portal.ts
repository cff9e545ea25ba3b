import { eq } from "drizzle-orm";
import { stripeFor } from "../../billing/stripe-client";
import { providerError } from "../../billing/stripe-errors";
import { accounts } from "../../db/schema";
import type { Bindings, Db } from "../../env";

/**
 * The URL of a Stripe customer-portal session for the account, returning to the dashboard;
 * null when the account has no Stripe customer yet (nothing to manage there).
 */
export async function billingPortalUrl(
  env: Bindings,
  db: Db,
  accountId: string,
): Promise<string | null> {
  const account = await db
    .select({ customer: accounts.stripeCustomerId })
    .from(accounts)
    .where(eq(accounts.id, accountId))
    .get();
  if (!account?.customer) return null;
  try {
    const session = await stripeFor(env).billingPortal.sessions.create({
      customer: account.customer,
      return_url: env.DASHBOARD_URL,
    });
    return session.url;
  } catch (err) {
    throw providerError(err);
  }
}
