/**
 * Account / Billing, the server-rendered dashboard page, mounted at `/account`. It works
 * without JavaScript: every action is a form post answered by a redirect (303) back to the
 * page, or by the page itself when it has something to show once (a new key, an error).
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { startCardSetup, startPlanCheckout } from "../../billing/checkout";
import { createPortalSession } from "../../billing/portal";
import type { AppEnv } from "../../env";
import { ApiError } from "../../errors";
import { looksLikeApiKey } from "../../gateway/api-keys";
import { identify } from "../../gateway/identity";
import { ledgerFor } from "../../ledger/client";
import { PACKAGE_IDS } from "../../pricing";
import { signupEnabled } from "../../signup/config";
import { createKey, revokeKey } from "../key-store";
import {
  type CsrfPurpose,
  csrfToken,
  endSession,
  notCrossOrigin,
  readSession,
  type Session,
  sessionSecret,
  startSession,
  verifyCsrf,
} from "../session";
import { BillingPage, type CsrfTokens } from "./billing-view";
import { loadBilling } from "./data";
import {
  forbidden,
  formSession,
  PageError,
  parseFields,
  readFields,
  SignedOutError,
} from "./forms";
import { Document, type Notice, renderHtml } from "./layout";
import { BILLING_PATH, ErrorPage, ResumePage, SignInPage } from "./pages";
import { pageSecurityHeaders } from "./security";

const TITLE = "Account / Billing · Tollgate";
const PURPOSES: CsrfPurpose[] = ["auto-recharge", "portal", "checkout", "keys", "sign-out"];

/** Messages a redirect may ask the page to show: fixed texts, never text from the URL. */
const NOTICES: Record<string, Notice> = {
  "auto-recharge-saved": { tone: "ok", text: "Auto-recharge settings saved." },
  "key-revoked": {
    tone: "ok",
    text: "The key was revoked. Requests with it are refused within seconds.",
  },
  "signed-out": { tone: "ok", text: "You are signed out." },
  "session-key-revoked": {
    tone: "warn",
    text: "You revoked the key you signed in with, so you were signed out.",
  },
};

const PAYMENT_METHOD_REQUIRED: Notice = {
  tone: "bad",
  text: "Add a payment method first: auto-recharge needs a card on file to buy credits.",
  detail: "Use “Manage plan and billing” to add one, then turn auto-recharge on.",
};

const AutoRechargeForm = z.object({
  enabled: z.literal("on").optional(),
  package: z.enum(PACKAGE_IDS, { error: "choose one of the credit packages" }),
});

const CheckoutForm = z.object({
  plan: z.enum(["starter", "pro"], { error: "choose Starter or Pro" }),
});

const CreateKeyForm = z.object({
  name: z.string().trim().max(100).optional(),
  scope: z.enum(["classify", "full"]).default("classify"),
});

function noticeFrom(c: Context): Notice | null {
  const code = c.req.query("notice");
  return code ? (NOTICES[code] ?? null) : null;
}

function signInPage(
  c: Context<AppEnv>,
  status: ContentfulStatusCode,
  options: { notice?: Notice | null; unavailable?: boolean } = {},
) {
  return renderHtml(
    c,
    <Document title={`Sign in · ${TITLE}`}>
      <SignInPage
        notice={options.notice}
        unavailable={options.unavailable}
        signUp={signupEnabled(c.env)}
      />
    </Document>,
    status,
  );
}

/** The signed-in page; also what a completed sign-up lands on, with its first key. */
export async function billingPage(
  c: Context<AppEnv>,
  session: Session,
  secret: string,
  options: {
    status?: ContentfulStatusCode;
    notice?: Notice | null;
    newKey?: { key: string; name: string | null };
  } = {},
) {
  const model = await loadBilling(c.env, c.get("db"), session.accountId);
  if (!model) throw new PageError(404, "No such account", "This account no longer exists.");
  const tokens = Object.fromEntries(
    await Promise.all(PURPOSES.map(async (p) => [p, await csrfToken(secret, session, p)])),
  ) as CsrfTokens;
  return renderHtml(
    c,
    <Document title={TITLE}>
      <BillingPage
        model={model}
        tokens={tokens}
        sessionKeyId={session.keyId}
        notice={options.notice}
        newKey={options.newKey}
      />
    </Document>,
    options.status ?? 200,
  );
}

function errorPage(
  c: Context<AppEnv>,
  status: ContentfulStatusCode,
  title: string,
  message: string,
) {
  return renderHtml(
    c,
    <Document title={`${title} · ${TITLE}`}>
      <ErrorPage title={title} message={message} />
    </Document>,
    status,
  );
}

/** `/account/*`: the Billing page and its form posts. */
export const billingPageRoutes = new Hono<AppEnv>()
  .use(pageSecurityHeaders)
  .get("/", (c) => c.redirect(BILLING_PATH, 303))
  .get("/billing", async (c) => {
    const secret = await sessionSecret(c.env);
    const session = secret ? await readSession(c) : null;
    if (secret && session) return billingPage(c, session, secret, { notice: noticeFrom(c) });
    const crossSite =
      c.req.header("Sec-Fetch-Site") === "cross-site" &&
      c.req.header("Sec-Fetch-Mode") === "navigate";
    if (crossSite && c.req.query("resumed") === undefined) {
      const href = `${BILLING_PATH}?resumed=1`;
      return renderHtml(
        c,
        <Document title={TITLE} refreshTo={href}>
          <ResumePage href={href} />
        </Document>,
      );
    }
    return signInPage(c, 200, { notice: noticeFrom(c), unavailable: !secret });
  })
  .post("/sign-in", async (c) => {
    const fields = await readFields(c);
    // No session yet, so no token to check: the origin check stops sign-in forgery.
    if (!notCrossOrigin(c)) throw forbidden();
    const secret = await sessionSecret(c.env);
    if (!secret) return signInPage(c, 503, { unavailable: true });
    const key = (fields.api_key ?? "").trim();
    const identity = looksLikeApiKey(key) ? await identify(c.env.DB, key) : null;
    if (!identity) {
      return signInPage(c, 401, {
        notice: { tone: "bad", text: "That API key is not valid, or it was revoked." },
      });
    }
    if (identity.scope !== "full") {
      // The page can buy credits and manage keys: a classify key must not open it.
      return signInPage(c, 403, {
        notice: {
          tone: "bad",
          text: "This key can only classify. Sign in with a full key to manage billing.",
        },
      });
    }
    await startSession(c, secret, identity);
    return c.redirect(BILLING_PATH, 303);
  })
  .post("/sign-out", async (c) => {
    const fields = await readFields(c);
    const secret = await sessionSecret(c.env);
    const session = secret ? await readSession(c) : null;
    // Clearing a cookie that no longer works needs no token; ending a live session does.
    if (secret && session) {
      if (!notCrossOrigin(c) || !(await verifyCsrf(secret, session, "sign-out", fields.csrf))) {
        throw forbidden();
      }
    }
    endSession(c);
    return c.redirect(`${BILLING_PATH}?notice=signed-out`, 303);
  })
  .post("/billing/auto-recharge", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "auto-recharge", fields);
    const form = parseFields(fields, AutoRechargeForm);
    // The same Durable Object method as PUT /v1/account/auto-recharge: one set of rules.
    const result = await ledgerFor(c.env, session.accountId).updateAutoRecharge({
      enabled: form.enabled === "on",
      package: form.package,
    });
    if (!result.ok) {
      if (result.reason === "payment_method_required") {
        return billingPage(c, session, secret, { status: 409, notice: PAYMENT_METHOD_REQUIRED });
      }
      throw new PageError(404, "No such account", "This account no longer exists.");
    }
    return c.redirect(`${BILLING_PATH}?notice=auto-recharge-saved`, 303);
  })
  .post("/billing/portal", async (c) => {
    const fields = await readFields(c);
    const { session } = await formSession(c, "portal", fields);
    const url = await createPortalSession(c.env, c.get("db"), session.accountId);
    return c.redirect(url, 303);
  })
  .post("/billing/checkout", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "checkout", fields);
    const form = parseFields(fields, CheckoutForm);
    const result = await startPlanCheckout(c.env, c.get("db"), session.accountId, form.plan);
    if (!result.ok) {
      return billingPage(c, session, secret, {
        status: result.reason === "subscription_exists" ? 409 : 503,
        notice: {
          tone: "bad",
          text:
            result.reason === "subscription_exists"
              ? "This account already has a subscription: change it with “Manage plan and billing”."
              : "Plans cannot be bought right now (the plan's price is not configured).",
        },
      });
    }
    return c.redirect(result.url, 303);
  })
  .post("/billing/card", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "checkout", fields);
    const result = await startCardSetup(c.env, c.get("db"), session.accountId);
    if (!result.ok) {
      return billingPage(c, session, secret, {
        status: 503,
        notice: { tone: "bad", text: "Cards cannot be added right now." },
      });
    }
    return c.redirect(result.url, 303);
  })
  .post("/billing/keys", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "keys", fields);
    const form = parseFields(fields, CreateKeyForm);
    const name = form.name ? form.name : null;
    const created = await createKey(c.env, c.get("db"), session.accountId, {
      name,
      scope: form.scope,
    });
    if (!created.ok) {
      return billingPage(c, session, secret, {
        status: 409,
        notice: { tone: "bad", text: "This account has 20 active keys; revoke one first." },
      });
    }
    // Rendered, not redirected: the full key must not travel in a URL, and is shown once.
    return billingPage(c, session, secret, {
      status: 201,
      newKey: { key: created.key.key, name },
    });
  })
  .post("/billing/keys/:id/revoke", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "keys", fields);
    const keyId = c.req.param("id");
    const result = await revokeKey(c.env, c.get("db"), session.accountId, keyId);
    if (!result.ok) {
      if (result.reason === "not_found") {
        throw new PageError(404, "No such API key", "That key does not exist on this account.");
      }
      return billingPage(c, session, secret, {
        status: 409,
        notice: {
          tone: "bad",
          text: "This is the account's last active key with full scope; create another full key before revoking it.",
        },
      });
    }
    if (keyId === session.keyId) {
      endSession(c);
      return c.redirect(`${BILLING_PATH}?notice=session-key-revoked`, 303);
    }
    return c.redirect(`${BILLING_PATH}?notice=key-revoked`, 303);
  })
  .all("/*", (c) =>
    errorPage(c, 404, "Page not found", `There is no page at ${c.req.method} ${c.req.path}.`),
  )
  .onError((err, c) => {
    if (err instanceof SignedOutError) {
      return signInPage(c, 401, { notice: { tone: "warn", text: err.message } });
    }
    if (err instanceof PageError) return errorPage(c, err.status, err.title, err.message);
    if (err instanceof ApiError) {
      return errorPage(c, err.status, "That did not work", err.message);
    }
    if (err instanceof HTTPException && err.status < 500) {
      return errorPage(c, err.status, "That did not work", "The request could not be processed.");
    }
    console.error(
      "billing page error",
      c.get("requestId"),
      err instanceof Error ? (err.stack ?? err.message) : String(err),
    );
    return errorPage(
      c,
      500,
      "Something went wrong",
      `Something went wrong on our side. Quote request id ${c.get("requestId")} to support.`,
    );
  });
