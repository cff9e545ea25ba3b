/** The Billing page's money forms: auto-recharge, buying credits, the spending limit, the low-balance email, and the Stripe sessions (portal, Checkout, card). */
/**
 * Account / Billing, the server-rendered dashboard page, mounted at `/account`. It works
 * without JavaScript. Every form post that acts is answered by a redirect (303, post/redirect/
 * get): what the next page view shows once (a notice, a new key) travels in the encrypted,
 * read-once flash cookie (see `setFlash` in ../session), never in the URL, so reloading the page
 * repeats nothing and shows no notice twice. Posts that are refused outright (bad CSRF token,
 * invalid fields) answer with an error page: repeating them changes nothing either.
 */

import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../../accounts/action-limits";
import { recordAudit } from "../../accounts/audit";
import type { AppEnv } from "../../http/context";
import { ledgerFor } from "../../ledger/client";
import { MAX_LOW_BALANCE_CREDITS } from "../../ledger/domain/low-balance";
import { sha256Hex } from "../../platform/crypto";
import { PACKAGE_IDS, PACKAGES } from "../../pricing";
import { startCardSetup, startPlanCheckout } from "../../subscriptions/checkout";
import { createPortalSession } from "../../subscriptions/portal";
import { formatCredits, formatPrice } from "../kit/format";
import { formSession, parseFields, readFields } from "../kit/forms";

/** Every Billing page's title ends with the page's name and the business's. */

import { NOTICES, redirectWith, refused } from "./form-replies";

const AutoRechargeForm = z.object({
  enabled: z.literal("on").optional(),
  package: z.enum(PACKAGE_IDS, { error: "choose one of the credit packages" }),
});

const CheckoutForm = z.object({
  plan: z.enum(["starter", "pro"], { error: "choose Starter or Pro" }),
});

export const TopUpForm = z.object({
  package: z.enum(PACKAGE_IDS, { error: "choose one of the credit packages" }),
  // Random per confirmation page: the same confirmation posted twice is the same top-up.
  request: z.string().regex(/^[0-9A-Za-z]{24}$/, { error: "reload the confirmation page" }),
});

/** Dollars as typed ("50", "12.50", "$1,000"), or empty for no limit; up to $1,000,000. */
const LimitsForm = z.object({
  limit: z
    .string()
    .trim()
    .transform((v) => v.replace(/^\$/, "").replaceAll(",", ""))
    .refine((v) => v === "" || /^\d{1,7}(\.\d{1,2})?$/.test(v), {
      error: "enter an amount in dollars, such as 50 or 12.50, or leave it empty",
    })
    .transform((v) => {
      if (v === "") return null;
      const [whole = "0", cents = ""] = v.split(".");
      return Number(whole) * 100 + Number(cents.padEnd(2, "0"));
    })
    .refine((c) => c === null || c <= 100_000_000, { error: "at most $1,000,000 a month" }),
});

/** Whole credits as typed ("500", "1,000"), or empty for no alert; up to 1,000,000. */
const AlertsForm = z.object({
  low_balance_credits: z
    .string()
    .trim()
    .transform((v) => v.replaceAll(",", ""))
    .refine((v) => v === "" || /^\d{1,7}$/.test(v), {
      error: "enter a whole number of credits, such as 500, or leave it empty",
    })
    .transform((v) => (v === "" ? null : Number(v)))
    .refine((n) => n === null || n <= MAX_LOW_BALANCE_CREDITS, {
      error: `at most ${formatCredits(MAX_LOW_BALANCE_CREDITS)} credits`,
    }),
});

/** Mounted by ./routes at `/account`; each calls the same function as its API route. */
export const moneyFormRoutes = new Hono<AppEnv>()
  .post("/billing/auto-recharge", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "auto-recharge", fields, "billing");
    const form = parseFields(fields, AutoRechargeForm);
    // The same Durable Object method as PUT /v1/account/auto-recharge: one set of rules.
    const result = await ledgerFor(c.env, session.accountId).updateAutoRecharge({
      enabled: form.enabled === "on",
      package: form.package,
    });
    if (!result.ok) return refused(c, secret, session, result.reason);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "auto_recharge.updated", {
      enabled: result.settings.enabled,
      package: result.settings.package,
    });
    return redirectWith(c, secret, session, { notice: NOTICES.autoRechargeSaved });
  })
  .post("/billing/top-up", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "top-up", fields, "billing");
    const form = parseFields(fields, TopUpForm);
    await limitAction(c.get("db"), session.accountId, "top_up");
    // The confirmation's random request id fixes the recharge id: posting it twice (a double
    // click, a resubmitted form) finds the first top-up instead of buying a second one.
    const rechargeId = `rch_${(await sha256Hex(`${session.accountId}\npage\n${form.request}`)).slice(0, 32)}`;
    const result = await ledgerFor(c.env, session.accountId).requestTopUp({
      rechargeId,
      package: form.package,
    });
    const p = PACKAGES[form.package];
    if (!result.ok) return refused(c, secret, session, result.reason);
    const r = result.recharge;
    await recordAudit(
      c.get("db"),
      session.accountId,
      c.get("actor"),
      "top_up.started",
      { purchase_id: r.id, package: r.package, credits: r.credits, amount_cents: r.amountCents },
      { ref: r.id },
    );
    return redirectWith(c, secret, session, {
      notice: {
        tone: "ok",
        text: `Buying ${formatCredits(p.credits)} credits for ${formatPrice(p.priceCents)}: they are added as soon as the payment goes through.`,
        detail: "The purchase is listed under Transaction history.",
      },
    });
  })
  .post("/billing/limits", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "limits", fields, "billing");
    const form = parseFields(fields, LimitsForm);
    // The same Durable Object method as PUT /v1/account/limits.
    const result = await ledgerFor(c.env, session.accountId).setLimits({
      spendLimitCents: form.limit,
    });
    if (!result.ok) return refused(c, secret, session, result.reason);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "limits.updated", {
      monthly_spend_limit_cents: form.limit,
    });
    return redirectWith(c, secret, session, {
      notice: {
        tone: "ok",
        text:
          form.limit === null
            ? "Spending limit removed: purchases are not capped."
            : `Spending limit saved: at most ${formatPrice(form.limit)} of purchases a month.`,
      },
    });
  })
  .post("/billing/alerts", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "alerts", fields, "billing");
    const form = parseFields(fields, AlertsForm);
    await limitAction(c.get("db"), session.accountId, "alerts");
    // The same Durable Object method as PUT /v1/account/alerts.
    const result = await ledgerFor(c.env, session.accountId).setAlerts({
      lowBalanceCredits: form.low_balance_credits,
    });
    if (!result.ok) return refused(c, secret, session, result.reason);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "alerts.updated", {
      low_balance_credits: form.low_balance_credits,
    });
    return redirectWith(c, secret, session, {
      notice: {
        tone: "ok",
        text:
          form.low_balance_credits === null
            ? "Low-balance email turned off."
            : `Low-balance email saved: we email you when your balance falls to ${formatCredits(form.low_balance_credits)} credits or below.`,
      },
    });
  })
  .post("/billing/portal", async (c) => {
    const fields = await readFields(c);
    const { session } = await formSession(c, "portal", fields, "billing");
    await limitAction(c.get("db"), session.accountId, "billing_portal");
    const url = await createPortalSession(c.env, c.get("db"), session.accountId);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "billing_portal.started");
    return c.redirect(url, 303);
  })
  .post("/billing/checkout", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "checkout", fields, "billing");
    const form = parseFields(fields, CheckoutForm);
    await limitAction(c.get("db"), session.accountId, "checkout");
    const result = await startPlanCheckout(c.env, c.get("db"), session.accountId, form.plan);
    if (!result.ok) return refused(c, secret, session, result.reason);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "checkout.started", {
      plan: form.plan,
    });
    return c.redirect(result.url, 303);
  })
  .post("/billing/card", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "checkout", fields, "billing");
    await limitAction(c.get("db"), session.accountId, "checkout");
    const result = await startCardSetup(c.env, c.get("db"), session.accountId);
    if (!result.ok) return refused(c, secret, session, result.reason);
    await recordAudit(c.get("db"), session.accountId, c.get("actor"), "card_setup.started");
    return c.redirect(result.url, 303);
  });
