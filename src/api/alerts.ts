import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { recordAudit } from "../accounts/audit";
import { alertsJson } from "../accounts/ledger-json";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { ledgerFor } from "../ledger/client";
import { MAX_LOW_BALANCE_CREDITS } from "../ledger/domain/low-balance";
import { parseJson } from "../platform/body";
import { refusal } from "../platform/refusals";

/** A low-balance level: whole credits up to 1,000,000 (more than any plan holds), or null. */
export const lowBalanceCredits = z
  .number({ error: "must be a whole number of credits or null" })
  .int("must be a whole number of credits or null")
  .min(0)
  .max(MAX_LOW_BALANCE_CREDITS)
  .nullable();

const AlertsBody = z.strictObject({ low_balance_credits: lowBalanceCredits });

const getDoc = describe({
  summary: "The low-balance alert",
  tag: "Alerts",
  security: ["api_key", "session"],
});
const putDoc = describe({
  summary: "Set or turn off the low-balance alert",
  tag: "Alerts",
  security: ["api_key", "session"],
  body: AlertsBody,
  errors: [403, 429],
});

/**
 * `/v1/account/alerts`: the low-balance email. One email each time the total falls to or below
 * `low_balance_credits`, not again until it has been above it; null turns it off.
 */
export const alertRoutes = new Hono<AppEnv>()
  .get("/", getDoc, async (c) => {
    const alerts = await ledgerFor(c.env, c.get("accountId")).alerts();
    if (!alerts) throw refusal("not_initialized");
    return c.json(alertsJson(alerts), 200);
  })
  .put("/", putDoc, async (c) => {
    const body = await parseJson(c, AlertsBody);
    await limitAction(c.get("db"), c.get("accountId"), "alerts");
    const result = await ledgerFor(c.env, c.get("accountId")).setAlerts({
      lowBalanceCredits: body.low_balance_credits,
    });
    if (!result.ok) throw refusal(result.reason);
    await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "alerts.updated", {
      low_balance_credits: result.alerts.lowBalanceCredits,
    });
    return c.json(alertsJson(result.alerts), 200);
  });
