import { Hono } from "hono";
import Stripe from "stripe";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { recordAudit } from "../accounts/audit";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { idempotencyKeyOf } from "../platform/idempotency-key";
import { refusal } from "../platform/refusals";
import { startCardSetup, startPlanCheckout } from "../subscriptions/checkout";

const CheckoutBody = z.strictObject({
  plan: z.enum(["starter", "pro"], { error: "must be starter or pro" }),
});

/** `payment-method/setup` takes no options; unknown ones are refused. */
const SetupBody = z.strictObject({});
const checkoutDoc = describe({
  summary: "Stripe Checkout for a paid plan → {url}",
  tag: "Billing",
  security: ["api_key", "session"],
  body: CheckoutBody,
  errors: [403, 409, 429, 502],
});
const setupDoc = describe({
  summary: "Stripe Checkout in setup mode, to add a card → {url}",
  tag: "Billing",
  security: ["api_key", "session"],
  body: SetupBody,
  errors: [403, 409, 429, 502],
});

/**
 * The client's Idempotency-Key becomes the Stripe request's: Stripe refuses a key reused with
 * other parameters, which is the client's mistake (another plan under the same key), not the
 * provider's: 409 `idempotency_conflict`, as for a top-up.
 */
function keyReused(err: unknown): never {
  if (err instanceof Stripe.errors.StripeIdempotencyError) throw refusal("idempotency_conflict");
  throw err;
}

/** `POST /v1/account/checkout`: Stripe Checkout for a paid plan (it also saves the card). */
export const checkoutRoutes = new Hono<AppEnv>().post("/", checkoutDoc, async (c) => {
  const body = await parseJson(c, CheckoutBody);
  await limitAction(c.get("db"), c.get("accountId"), "checkout");
  const result = await startPlanCheckout(
    c.env,
    c.get("db"),
    c.get("accountId"),
    body.plan,
    idempotencyKeyOf(c),
  ).catch(keyReused);
  if (!result.ok) throw refusal(result.reason);
  // A replay (same Idempotency-Key: the same Stripe session) adds no second entry.
  const key = idempotencyKeyOf(c);
  await recordAudit(
    c.get("db"),
    c.get("accountId"),
    c.get("actor"),
    "checkout.started",
    { plan: body.plan },
    key ? { ref: `${c.get("accountId")}:${key}` } : {},
  );
  return c.json({ url: result.url }, 200);
});

/** `POST /v1/account/payment-method/setup`: Stripe Checkout in setup mode, to add a card. */
export const paymentMethodRoutes = new Hono<AppEnv>().post("/setup", setupDoc, async (c) => {
  await parseJson(c, SetupBody);
  await limitAction(c.get("db"), c.get("accountId"), "checkout");
  const result = await startCardSetup(
    c.env,
    c.get("db"),
    c.get("accountId"),
    idempotencyKeyOf(c),
  ).catch(keyReused);
  if (!result.ok) throw refusal(result.reason);
  const key = idempotencyKeyOf(c);
  await recordAudit(
    c.get("db"),
    c.get("accountId"),
    c.get("actor"),
    "card_setup.started",
    {},
    key ? { ref: `${c.get("accountId")}:${key}` } : {},
  );
  return c.json({ url: result.url }, 200);
});
