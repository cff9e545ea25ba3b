import { type Context, Hono } from "hono";
import { z } from "zod";
import { accountView } from "../accounts/account-view";
import { auditJson, listAudit, recordAudit } from "../accounts/audit";
import { adjustCredits, createAccount } from "../accounts/create-account";
import { accountSnapshotJson } from "../accounts/ledger-json";
import { spendLimitCents } from "../accounts/limits";
import { recordOperatorAction } from "../accounts/operator-actions";
import { adminAuth } from "../accounts/operator-auth";
import { overview } from "../accounts/overview";
import { searchAccounts, searchRowJson } from "../accounts/search";
import { sendOperatorSignInLink } from "../accounts/sign-in";
import { publicOrigin } from "../accounts/signup-config";
import { suspendAccount } from "../accounts/suspension";
import { accountExists, getAccount, setShards } from "../db/accounts";
import type { Db } from "../db/client";
import { listEmails } from "../db/emails";
import { otherSubscriptionsOf } from "../db/other-subscriptions";
import type { AppEnv } from "../http/context";
import { CursorParam, encodeCursor } from "../http/cursor";
import { describe } from "../http/openapi";
import { LOCATION_HINTS, ledgerFor, locationHintFor } from "../ledger/client";
import { MAX_SHARDS } from "../ledger/domain/leases";
import { parseJson, parseQuery } from "../platform/body";
import { idempotencyKeyOf } from "../platform/idempotency-key";
import { refusal } from "../platform/refusals";
import { PLAN_IDS } from "../pricing";
import { reconcile } from "../purchases/reconciler";
import { providerError } from "../stripe/errors";
import { attachPaymentMethod } from "../subscriptions/payment-methods";

/** Credits an operator may move in one adjustment; larger numbers are refused as typos. */
const MAX_ADJUSTMENT = 100_000_000;
const credit = z.number().int().min(-MAX_ADJUSTMENT).max(MAX_ADJUSTMENT);

const CreateAccountBody = z
  .strictObject({
    email: z.email().max(254),
    plan: z.enum(PLAN_IDS).optional(),
    complimentary: z.boolean().optional(),
    /** Where the account's ledger lives; by default the region the request came from. */
    location_hint: z.enum(LOCATION_HINTS).optional(),
  })
  // Customers start paid plans through Checkout; an operator's paid plan is a gift, said so.
  .refine((b) => (b.plan ?? "free") === "free" || b.complimentary === true, {
    message: "a paid plan without a Stripe subscription must be asked for as complimentary: true",
    path: ["complimentary"],
  })
  .refine((b) => !(b.complimentary === true && (b.plan ?? "free") === "free"), {
    message: "complimentary applies to a paid plan (starter or pro)",
    path: ["complimentary"],
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

const PatchAccountBody = z.strictObject({
  rate_limit_per_minute: z
    .number({ error: "must be a whole number of requests per minute or null" })
    .int("must be a whole number of requests per minute or null")
    .min(1)
    .max(1_000_000_000)
    .nullable()
    .optional(),
  monthly_spend_limit_cents: spendLimitCents.optional(),
  /** Escrow shards (docs/ledger-shards.md): objects the account's requests spread over. */
  shards: z
    .number({ error: `must be a whole number of shards from 1 to ${MAX_SHARDS}` })
    .int(`must be a whole number of shards from 1 to ${MAX_SHARDS}`)
    .min(1)
    .max(MAX_SHARDS)
    .optional(),
});

const SuspendBody = z.strictObject({ reason: z.string().trim().min(1).max(500) });

const SignInLinkBody = z.strictObject({ email: z.email().max(254).optional() });

const AuditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: CursorParam.optional(),
});

const SearchQuery = z.strictObject({
  query: z.string().max(254).optional(),
  // The (lower-case email, id) of the last row shown, in the history's cursor format.
  cursor: CursorParam.optional(),
});

const PaymentMethodBody = z.strictObject({
  payment_method: z
    .string()
    .regex(/^pm_[A-Za-z0-9_]{1,200}$/, "must be a Stripe payment method id (pm_…)"),
});

const createDoc = describe({
  summary: "Create an account",
  tag: "Operators",
  security: "operator",
  body: CreateAccountBody,
  ok: { status: 201 },
});
const searchDoc = describe({
  summary: "Search accounts by email, id or Stripe customer",
  tag: "Operators",
  security: "operator",
  query: SearchQuery,
});
const overviewDoc = describe({
  summary: "The business at a glance",
  tag: "Operators",
  security: "operator",
});
const suspendDoc = describe({
  summary: "Suspend an account",
  tag: "Operators",
  security: "operator",
  body: SuspendBody,
  errors: [404],
});
const unsuspendDoc = describe({
  summary: "Lift an account's suspension",
  tag: "Operators",
  security: "operator",
  errors: [404],
});
const signInLinkDoc = describe({
  summary: "Email a sign-in link to a member (default: the first owner)",
  tag: "Operators",
  security: "operator",
  body: SignInLinkBody,
  errors: [404],
});
const creditsDoc = describe({
  summary: "Adjust an account's credits (audited)",
  tag: "Operators",
  security: "operator",
  body: AdjustBody,
  errors: [404, 409],
});
const paymentMethodDoc = describe({
  summary: "Attach a card as the customer's default",
  tag: "Operators",
  security: "operator",
  body: PaymentMethodBody,
  errors: [404, 502],
});
const accountDoc = describe({
  summary: "An account with its balance, limits and rate limit",
  tag: "Operators",
  security: "operator",
  errors: [404],
});
const patchDoc = describe({
  summary: "Per-account overrides: rate limit, spending limit",
  tag: "Operators",
  security: "operator",
  body: PatchAccountBody,
  errors: [404],
});
const emailsDoc = describe({
  summary: "The emails sent to an account, newest first",
  tag: "Operators",
  security: "operator",
  errors: [404],
});
const reconcileDoc = describe({
  summary: "Run the reconciler now",
  tag: "Operators",
  security: "operator",
});
const auditLogDoc = describe({
  summary: "Every operator action, newest first",
  tag: "Operators",
  security: "operator",
  query: AuditQuery,
});
const auditDoc = describe({
  summary: "Replay an account's ledger",
  tag: "Operators",
  security: "operator",
  errors: [404],
});

export const adminRoutes = new Hono<AppEnv>()
  .use(adminAuth)
  .post("/accounts", createDoc, async (c) => {
    const body = await parseJson(c, CreateAccountBody);
    const created = await createAccount(
      c.env,
      c.get("db"),
      {
        email: body.email,
        plan: body.plan ?? "free",
        complimentary: body.complimentary === true,
        locationHint: body.location_hint ?? locationHintFor(c.req.raw.cf),
      },
      c.get("actor"),
    );
    const { owner_member_id: _owner, ...account } = created;
    return c.json(account, 201);
  })
  .get("/accounts", searchDoc, async (c) => {
    const q = parseQuery(c, SearchQuery);
    const after = q.cursor ? { email: q.cursor.createdAt, id: q.cursor.id } : null;
    const page = await searchAccounts(c.get("db"), q.query ?? "", after);
    return c.json(
      {
        data: page.rows.map(searchRowJson),
        next_cursor: page.next ? encodeCursor(page.next.email, page.next.id) : null,
      },
      200,
    );
  })
  .get("/overview", overviewDoc, async (c) => c.json(await overview(c.get("db")), 200))
  .post("/accounts/:id/suspend", suspendDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, SuspendBody);
    const answer = await suspensionJson(c, accountId, { reason: body.reason });
    await recordOperatorAction(c.get("db"), c.get("actor"), {
      action: "suspend",
      accountId,
      reason: body.reason,
    });
    return c.json(answer, 200);
  })
  .post("/accounts/:id/unsuspend", unsuspendDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    // The contract's unsuspend takes no body (the console's form asks for a reason).
    const answer = await suspensionJson(c, accountId, null);
    await recordOperatorAction(c.get("db"), c.get("actor"), {
      action: "unsuspend",
      accountId,
      reason: "",
    });
    return c.json(answer, 200);
  })
  .post("/accounts/:id/sign-in-link", signInLinkDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, SignInLinkBody);
    const result = await sendOperatorSignInLink(
      c.env,
      c.get("db"),
      {
        accountId,
        email: body.email ?? null,
        origin: publicOrigin(c.env, c.req.url),
        // The contract's body has no reason (the console's form asks for one).
        reason: "",
      },
      c.get("actor"),
    );
    if (!result.ok) throw refusal(result.reason);
    return c.json(
      {
        account_id: accountId,
        member_id: result.memberId,
        email: result.email,
        expires_at: new Date(result.expiresAt).toISOString(),
        // As `POST /admin/email-test` says it: sent, or failed (recorded in the account's emails).
        status: result.delivery,
      },
      200,
    );
  })
  .post("/accounts/:id/credits", creditsDoc, async (c) => {
    // Checked like the account API's (it was passed on unchecked): a bad one is 400 naming it.
    const idempotencyKey = idempotencyKeyOf(c);
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, AdjustBody);
    const result = await adjustCredits(c.env, accountId, {
      monthly: body.monthly ?? 0,
      purchased: body.purchased ?? 0,
      reason: body.reason,
      idempotencyKey,
    });
    if (!result.ok) {
      if (result.reason === "insufficient_credits") {
        // The contract's second status for this type: an adjustment, not a request, is refused.
        throw refusal("insufficient_credits", {
          message: "The adjustment would take a bucket below zero; nothing changed.",
          status: 409,
          extra: { balance: result.balance },
        });
      }
      throw refusal(result.reason);
    }
    // Keyed by the adjustment: a replayed request adds no second entry.
    await recordAudit(
      c.get("db"),
      accountId,
      c.get("actor"),
      "credits.adjusted",
      {
        adjustment_id: result.ref,
        monthly: body.monthly ?? 0,
        purchased: body.purchased ?? 0,
        reason: body.reason,
      },
      { ref: result.ref },
    );
    return c.json(result.balance, 200);
  })
  .post("/accounts/:id/payment-method", paymentMethodDoc, async (c) => {
    const idempotencyKey = idempotencyKeyOf(c);
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, PaymentMethodBody);
    const result = await attachPaymentMethod(
      c.env,
      c.get("db"),
      accountId,
      body.payment_method,
      idempotencyKey,
    ).catch((err: unknown) => {
      throw providerError(err, "payment_method");
    });
    await recordAudit(c.get("db"), accountId, c.get("actor"), "payment_method.attached", {
      payment_method: result.payment_method,
      card: result.card,
    });
    return c.json(result, 200);
  })
  .get("/accounts/:id", accountDoc, async (c) =>
    c.json(await adminView(c.env, c.get("db"), c.req.param("id")), 200),
  )
  .patch("/accounts/:id", patchDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    const body = await parseJson(c, PatchAccountBody);
    if (body.shards !== undefined) await changeShards(c, accountId, body.shards);
    // Only the shard count asked for: no limits were changed, none is audited.
    const { shards: _, ...limitFields } = body;
    if (body.shards !== undefined && Object.keys(limitFields).length === 0)
      return c.json(await adminView(c.env, c.get("db"), accountId), 200);
    const result = await ledgerFor(c.env, accountId).setLimits({
      rateLimitPerMinute: body.rate_limit_per_minute,
      spendLimitCents: body.monthly_spend_limit_cents,
    });
    if (!result.ok) throw refusal(result.reason);
    await recordAudit(c.get("db"), accountId, c.get("actor"), "limits.updated", {
      ...(body.rate_limit_per_minute !== undefined
        ? { rate_limit_per_minute: body.rate_limit_per_minute }
        : {}),
      ...(body.monthly_spend_limit_cents !== undefined
        ? { monthly_spend_limit_cents: body.monthly_spend_limit_cents }
        : {}),
    });
    return c.json(await adminView(c.env, c.get("db"), accountId), 200);
  })
  .get("/accounts/:id/emails", emailsDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    return c.json({ data: await listEmails(c.get("db"), accountId, 50) }, 200);
  })
  .post("/reconcile", reconcileDoc, async (c) => {
    const report = await reconcile(c.env);
    await recordAudit(c.get("db"), null, c.get("actor"), "reconcile.ran", {
      checked: report.checked,
      attention: report.attention.length,
    });
    return c.json(report, 200);
  })
  // Every operator action, on any account or none, newest first.
  .get("/audit-log", auditLogDoc, async (c) => {
    const q = parseQuery(c, AuditQuery);
    const page = await listAudit(c.get("db"), { actorType: "operator" }, q.limit, q.cursor);
    return c.json(
      {
        data: page.rows.map((row) => ({ ...auditJson(row), account_id: row.accountId })),
        next_cursor: page.next_cursor,
      },
      200,
    );
  })
  .get("/accounts/:id/audit", auditDoc, async (c) => {
    const accountId = await existingAccountId(c.get("db"), c.req.param("id"));
    return c.json(await ledgerFor(c.env, accountId).audit(), 200);
  });

/** The account as an operator sees it: the customer's view plus balance, limits and rate limit. */
async function adminView(env: AppEnv["Bindings"], db: Db, id: string) {
  const account = await getAccount(db, id);
  if (!account) throw refusal("not_initialized");
  const ledger = await ledgerFor(env, account.id).snapshot();
  if (!ledger) throw refusal("not_initialized");
  const snapshot = accountSnapshotJson(ledger);
  const { limits, alerts, rate_limit_per_minute, rate_limit_override, ...balance } = snapshot;
  return {
    ...accountView(account),
    stripe_customer_id: account.stripeCustomerId,
    // The id the next purchase pays with (the customer's view shows the card, not the id).
    payment_method_id: account.paymentMethodId,
    // Escrow shards (docs/ledger-shards.md): 1 is the account's ledger alone.
    shards: account.shards,
    balance,
    limits,
    alerts,
    rate_limit_per_minute,
    rate_limit_override,
    // The subscription the account follows, and any other one Stripe told us about (a
    // duplicate, an old one): recorded, never applied to the plan or the credits.
    current_subscription_id: account.currentSubscriptionId,
    other_subscriptions: (await otherSubscriptionsOf(db, account.id)).filter(
      // One recorded before it became the current one (e.g. its `incomplete` creation) is not other.
      (s) => s.id !== account.currentSubscriptionId,
    ),
  };
}

/** Suspends or lifts it; answers `{"id", "suspension": {"suspended_at", "reason"} | null}`. */
async function suspensionJson(
  c: Context<AppEnv>,
  accountId: string,
  suspension: { reason: string } | null,
) {
  const result = await suspendAccount(c.env, c.get("db"), accountId, suspension);
  if (!result.ok) throw refusal(result.reason);
  const s = result.suspension;
  return {
    id: accountId,
    suspension: s ? { suspended_at: new Date(s.at).toISOString(), reason: s.reason } : null,
  };
}

/**
 * Sets the account's shard count, audited; fewer than before: every lease is recalled, so the
 * shards no longer used hold nothing (a gateway's cached key may still reach them for up to a
 * minute, and they lease again from the bank like any shard).
 */
async function changeShards(c: Context<AppEnv>, accountId: string, shards: number) {
  const before = await setShards(c.get("db"), accountId, shards);
  if (shards < before) await ledgerFor(c.env, accountId).leaseRecall();
  await recordAudit(c.get("db"), accountId, c.get("actor"), "shards.updated", {
    shards,
    previous: before,
  });
}

async function existingAccountId(db: Db, id: string): Promise<string> {
  if (!(await accountExists(db, id))) throw refusal("not_initialized");
  return id;
}
