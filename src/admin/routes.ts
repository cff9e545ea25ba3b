import { desc, eq } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { attachPaymentMethod } from "../billing/payment-methods";
import { accounts, emails } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { parseJson } from "../http/body";
import { ledgerFor } from "../ledger/client";
import { PLAN_IDS } from "../pricing";
import { reconcile } from "../recharge/reconciler";
import { adjustCredits, createAccount } from "./accounts";
import { adminAuth } from "./auth";

/** Credits an operator may move in one adjustment; larger numbers are refused as typos. */
const MAX_ADJUSTMENT = 100_000_000;
const credit = z.number().int().min(-MAX_ADJUSTMENT).max(MAX_ADJUSTMENT);

const CreateAccountBody = z.strictObject({
  email: z.email().max(254),
  plan: z.enum(PLAN_IDS).optional(),
});

const AdjustBody = z
  .strictObject({
    monthly: credit.optional(),
    purchased: credit.optional(),
    reason: z.string().trim().min(1).max(500),
  })
  .refine((b) => (b.monthly ?? 0) !== 0 || (b.purchased ?? 0) !== 0, {
    message: "give a non-zero monthly or purchased amount",
    path: ["monthly"],
  });

const PaymentMethodBody = z.strictObject({
  payment_method: z
    .string()
    .regex(/^pm_[A-Za-z0-9_]{1,200}$/, "must be a Stripe payment method id (pm_…)"),
});

export const adminRoutes = new Hono<AppEnv>()
  .use(adminAuth)
  .post("/accounts", async (c) => {
    const body = await parseJson(c, CreateAccountBody);
    const created = await createAccount(c.env, c.get("db"), {
      email: body.email,
      plan: body.plan ?? "free",
    });
    return c.json(created, 201);
  })
  .post("/accounts/:id/credits", async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, AdjustBody);
    const balance = await adjustCredits(c.env, c.get("db"), accountId, {
      monthly: body.monthly ?? 0,
      purchased: body.purchased ?? 0,
      reason: body.reason,
      idempotencyKey: c.req.header("Idempotency-Key"),
    });
    return c.json(balance, 200);
  })
  .post("/accounts/:id/payment-method", async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, PaymentMethodBody);
    const result = await attachPaymentMethod(
      c.env,
      c.get("db"),
      accountId,
      body.payment_method,
      c.req.header("Idempotency-Key"),
    );
    return c.json(result, 200);
  })
  .get("/accounts/:id", async (c) => {
    const row = await c
      .get("db")
      .select({
        id: accounts.id,
        email: accounts.email,
        plan: accounts.plan,
        stripe_customer_id: accounts.stripeCustomerId,
        payment_method: accounts.paymentMethodId,
        created_at: accounts.createdAt,
      })
      .from(accounts)
      .where(eq(accounts.id, c.req.param("id")))
      .get();
    if (!row) throw ApiError.notFound("No such account.");
    const balance = await ledgerFor(c.env, row.id).snapshot();
    return c.json({ ...row, balance }, 200);
  })
  .get("/accounts/:id/emails", async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const data = await c
      .get("db")
      .select({
        id: emails.id,
        kind: emails.kind,
        to: emails.toAddress,
        subject: emails.subject,
        text: emails.textBody,
        status: emails.status,
        error: emails.error,
        created_at: emails.createdAt,
        sent_at: emails.sentAt,
      })
      .from(emails)
      .where(eq(emails.accountId, accountId))
      .orderBy(desc(emails.createdAt))
      .limit(50)
      .all();
    return c.json({ data }, 200);
  })
  .post("/reconcile", async (c) => c.json(await reconcile(c.env), 200))
  .get("/accounts/:id/audit", async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    return c.json(await ledgerFor(c.env, accountId).audit(), 200);
  });

async function existingAccountId(db: AppEnv["Variables"]["db"], id: string): Promise<string> {
  const row = await db.select({ id: accounts.id }).from(accounts).where(eq(accounts.id, id)).get();
  if (!row) throw ApiError.notFound("No such account.");
  return row.id;
}
