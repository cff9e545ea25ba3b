import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { recordAudit } from "../accounts/audit";
import { autoRechargeJson } from "../accounts/ledger-json";
import { getTransaction } from "../db/transactions";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { ledgerFor } from "../ledger/client";
import { parseJson } from "../platform/body";
import { randomHex32, sha256Hex } from "../platform/crypto";
import { idempotencyKeyOf } from "../platform/idempotency-key";
import { refusal } from "../platform/refusals";
import { CURRENCY, PACKAGE_IDS } from "../pricing";

const packageField = z.enum(PACKAGE_IDS, {
  error: `must be one of ${PACKAGE_IDS.join(", ")}`,
});

const UpdateAutoRechargeBody = z.strictObject({
  enabled: z.boolean().optional(),
  package: packageField.optional(),
});

const TopUpBody = z.strictObject({ package: packageField });

const getDoc = describe({
  summary: "The auto-recharge settings",
  tag: "Billing",
  security: ["api_key", "session"],
  errors: [409],
});
const putDoc = describe({
  summary: "Turn auto-recharge on or off, or change its package",
  tag: "Billing",
  security: ["api_key", "session"],
  body: UpdateAutoRechargeBody,
  errors: [403, 409],
});
const topUpDoc = describe({
  summary: "Buy a credit package now, charged to the saved card",
  tag: "Billing",
  security: ["api_key", "session"],
  body: TopUpBody,
  description: "Send an `Idempotency-Key` header to make a retry safe.",
  ok: {
    status: 202,
    description: "Accepted: {id, status}; the purchase settles through the queue",
  },
  errors: [403, 409, 429, 502],
});

/** `/v1/account/auto-recharge`: the settings, read and changed in the account's ledger. */
export const autoRechargeRoutes = new Hono<AppEnv>()
  .get("/", getDoc, async (c) => {
    const settings = await ledgerFor(c.env, c.get("accountId")).autoRecharge();
    if (!settings) throw refusal("not_initialized");
    return c.json(autoRechargeJson(settings), 200);
  })
  .put("/", putDoc, async (c) => {
    const body = await parseJson(c, UpdateAutoRechargeBody);
    const result = await ledgerFor(c.env, c.get("accountId")).updateAutoRecharge(body);
    if (!result.ok) throw refusal(result.reason);
    const settings = autoRechargeJson(result.settings);
    await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "auto_recharge.updated", {
      enabled: settings.enabled,
      package: settings.package,
    });
    return c.json(settings, 200);
  });

/** `POST /v1/account/top-ups`: a package bought now, through the auto-recharge pipeline. */
export const topUpRoutes = new Hono<AppEnv>().post("/", topUpDoc, async (c) => {
  const accountId = c.get("accountId");
  const key = idempotencyKeyOf(c);
  const body = await parseJson(c, TopUpBody);
  await limitAction(c.get("db"), accountId, "top_up");
  // The key maps to a fixed recharge id, so a retry finds the first top-up instead of a new one.
  const rechargeId = key
    ? `rch_${(await sha256Hex(`${accountId}\n${key}`)).slice(0, 32)}`
    : `rch_${randomHex32()}`;
  const result = await ledgerFor(c.env, accountId).requestTopUp({
    rechargeId,
    package: body.package,
  });
  if (!result.ok) {
    if (result.reason === "payment_pending") {
      // Where to complete it: the purchase's D1 row holds its hosted invoice page.
      const row = await getTransaction(c.get("db"), result.waiting.id);
      throw refusal("payment_pending", {
        extra: {
          purchase: {
            id: result.waiting.id,
            type: result.waiting.kind,
            action_url: row?.actionUrl ?? null,
          },
        },
      });
    }
    throw refusal(result.reason);
  }
  const r = result.recharge;
  // Keyed by the recharge id: a replay adds no second entry, and completes a missing one.
  await recordAudit(
    c.get("db"),
    accountId,
    c.get("actor"),
    "top_up.started",
    { purchase_id: r.id, package: r.package, credits: r.credits, amount_cents: r.amountCents },
    { ref: r.id },
  );
  if (result.replayed) c.header("Idempotent-Replayed", "true");
  return c.json(
    {
      id: r.id,
      // A replay answers what became of the purchase since (contract: top-ups).
      status: r.status,
      package: r.package,
      credits: r.credits,
      amount_cents: r.amountCents,
      currency: CURRENCY,
    },
    202,
  );
});
