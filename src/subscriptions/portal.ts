import { ensureStripeCustomer } from "../accounts/stripe-customers";
import type { Db } from "../db/client";
import type { Bindings } from "../platform/env";
import { stripeFor } from "../stripe/client";

/** A Stripe customer-portal session ("Manage plan and billing") that returns to the dashboard. */
export async function createPortalSession(
  env: Bindings,
  db: Db,
  accountId: string,
): Promise<string> {
  const customer = await ensureStripeCustomer(env, db, accountId);
  const session = await stripeFor(env).billingPortal.sessions.create({
    customer,
    return_url: env.DASHBOARD_URL,
    ...(env.STRIPE_PORTAL_CONFIGURATION ? { configuration: env.STRIPE_PORTAL_CONFIGURATION } : {}),
  });
  return session.url;
}
