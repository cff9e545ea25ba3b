import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../../env";
import { parseJson } from "../../http/body";
import { ledgerFor } from "../../ledger/client";
import { refusal } from "../../refusals";

/** Cents a limit may be set to: up to $1,000,000 a month; larger numbers are typos. */
export const spendLimitCents = z
  .number({ error: "must be a whole number of cents or null" })
  .int("must be a whole number of cents or null")
  .min(0)
  .max(100_000_000)
  .nullable();

const LimitsBody = z.strictObject({ monthly_spend_limit_cents: spendLimitCents });

/**
 * `/v1/account/limits`: the monthly spending limit. Purchases (auto-recharges and top-ups,
 * pending ones included) never take a calendar month's total over it (money rule 10).
 */
export const limitRoutes = new Hono<AppEnv>()
  .get("/", async (c) => {
    const limits = await ledgerFor(c.env, c.get("accountId")).limits();
    if (!limits) throw refusal("not_initialized");
    return c.json(limits, 200);
  })
  .put("/", async (c) => {
    const body = await parseJson(c, LimitsBody);
    const result = await ledgerFor(c.env, c.get("accountId")).setLimits({
      spendLimitCents: body.monthly_spend_limit_cents,
    });
    if (!result.ok) throw refusal(result.reason);
    return c.json(result.limits, 200);
  });
