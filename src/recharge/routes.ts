import { Hono } from "hono";
import { z } from "zod";
import { sha256Hex } from "../crypto";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { parseJson } from "../http/body";
import { ledgerFor } from "../ledger/client";
import { PACKAGE_IDS } from "../pricing";

const packageField = z.enum(PACKAGE_IDS, {
  error: `must be one of ${PACKAGE_IDS.join(", ")}`,
});

const UpdateAutoRechargeBody = z.strictObject({
  enabled: z.boolean().optional(),
  package: packageField.optional(),
});

const TopUpBody = z.strictObject({ package: packageField });

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

function paymentMethodRequired(): ApiError {
  return new ApiError(
    "payment_method_required",
    "Add a payment method before buying credits or enabling auto-recharge.",
  );
}

/** Auto-recharge settings and manual top-ups, mounted under `/v1/account`. */
export const rechargeRoutes = new Hono<AppEnv>()
  .get("/auto-recharge", async (c) => {
    const settings = await ledgerFor(c.env, c.get("accountId")).autoRecharge();
    if (!settings) throw ApiError.notFound("No such account.");
    return c.json(settings, 200);
  })
  .put("/auto-recharge", async (c) => {
    const body = await parseJson(c, UpdateAutoRechargeBody);
    const result = await ledgerFor(c.env, c.get("accountId")).updateAutoRecharge(body);
    if (!result.ok) {
      if (result.reason === "payment_method_required") throw paymentMethodRequired();
      throw ApiError.notFound("No such account.");
    }
    return c.json(result.settings, 200);
  })
  .post("/top-ups", async (c) => {
    const accountId = c.get("accountId");
    const key = c.req.header("Idempotency-Key");
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw ApiError.invalidRequest("Idempotency-Key must be 1–255 printable characters.", [
        { field: "Idempotency-Key", message: "invalid header" },
      ]);
    }
    const body = await parseJson(c, TopUpBody);
    // The key maps to a fixed recharge id, so a retry finds the first top-up instead of a new one.
    const rechargeId = key
      ? `rch_${(await sha256Hex(`${accountId}\n${key}`)).slice(0, 32)}`
      : `rch_${crypto.randomUUID().replaceAll("-", "")}`;
    const result = await ledgerFor(c.env, accountId).requestTopUp({
      rechargeId,
      package: body.package,
    });
    if (!result.ok) {
      if (result.reason === "payment_method_required") throw paymentMethodRequired();
      if (result.reason === "idempotency_conflict") {
        throw new ApiError(
          "idempotency_conflict",
          "This Idempotency-Key was already used with a different package.",
        );
      }
      throw ApiError.notFound("No such account.");
    }
    const r = result.recharge;
    if (result.replayed) c.header("Idempotent-Replayed", "true");
    return c.json(
      {
        id: r.id,
        status: "pending" as const,
        package: r.package,
        credits: r.credits,
        amount_cents: r.amount_cents,
        currency: "usd",
      },
      202,
    );
  });
