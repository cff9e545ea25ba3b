import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { recordAudit } from "../accounts/audit";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { createPortalSession } from "../subscriptions/portal";

// No options today; refusing unknown ones keeps a client from assuming e.g. a return_url.
const PortalBody = z.strictObject({});
const portalDoc = describe({
  summary: "A Stripe billing portal session → {url}",
  tag: "Billing",
  security: ["api_key", "session"],
  body: PortalBody,
  errors: [403, 409, 429, 502],
});

/** `POST /v1/account/billing-portal` → `{"url"}` ("Manage plan and billing"). */
export const billingPortalRoutes = new Hono<AppEnv>().post("/", portalDoc, async (c) => {
  await parseJson(c, PortalBody);
  await limitAction(c.get("db"), c.get("accountId"), "billing_portal");
  const url = await createPortalSession(c.env, c.get("db"), c.get("accountId"));
  await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "billing_portal.started");
  return c.json({ url }, 200);
});
