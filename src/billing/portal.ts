import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv, Bindings, Db } from "../env";
import { parseJson } from "../http/body";
import { ensureStripeCustomer } from "./customers";
import { stripeFor } from "./stripe-client";
import { providerError } from "./stripe-errors";

/** A Stripe customer-portal session ("Manage plan and billing") that returns to the dashboard. */
export async function createPortalSession(
  env: Bindings,
  db: Db,
  accountId: string,
): Promise<string> {
  try {
    const customer = await ensureStripeCustomer(env, db, accountId);
    const session = await stripeFor(env).billingPortal.sessions.create({
      customer,
      return_url: env.DASHBOARD_URL,
    });
    return session.url;
  } catch (err) {
    throw providerError(err);
  }
}

/** `POST /v1/account/billing-portal` → `{"url"}`. */
export const portalRoutes = new Hono<AppEnv>().post("/", async (c) => {
  // No options today; refusing unknown ones keeps a client from assuming e.g. a return_url.
  await parseJson(c, z.strictObject({}));
  const url = await createPortalSession(c.env, c.get("db"), c.get("accountId"));
  return c.json({ url }, 200);
});
