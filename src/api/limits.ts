import { Hono } from "hono";
import { z } from "zod";
import { recordAudit } from "../accounts/audit";
import { limitsJson } from "../accounts/ledger-json";
import { spendLimitCents } from "../accounts/limits";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { ledgerFor } from "../ledger/client";
import { parseJson } from "../platform/body";
import { refusal } from "../platform/refusals";

const LimitsBody = z.strictObject({ monthly_spend_limit_cents: spendLimitCents });

const getDoc = describe({
  summary: "The monthly spending limit",
  tag: "Limits",
  security: ["api_key", "session"],
  errors: [409],
});
const putDoc = describe({
  summary: "Set the monthly spending limit (raising it takes a person)",
  tag: "Limits",
  security: ["api_key", "session"],
  body: LimitsBody,
  errors: [403, 409],
});

/**
 * `/v1/account/limits`: the monthly spending limit. Purchases (auto-recharges and top-ups,
 * pending ones included) never take a calendar month's total over it (money rule 10).
 */
export const limitRoutes = new Hono<AppEnv>()
  .get("/", getDoc, async (c) => {
    const limits = await ledgerFor(c.env, c.get("accountId")).limits();
    if (!limits) throw refusal("not_initialized");
    return c.json(limitsJson(limits), 200);
  })
  .put("/", putDoc, async (c) => {
    const body = await parseJson(c, LimitsBody);
    const result = await ledgerFor(c.env, c.get("accountId")).setLimits({
      spendLimitCents: body.monthly_spend_limit_cents,
      // No API key raises the limit (money rule 11): only a person, whose role allows billing.
      mayRaise: c.get("role") !== null,
    });
    if (!result.ok) throw refusal(result.reason);
    await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "limits.updated", {
      monthly_spend_limit_cents: body.monthly_spend_limit_cents,
    });
    return c.json(limitsJson(result.limits), 200);
  });
