/**
 * Sign-up routes (contract: "Sign-up"), all answering 404 while SIGNUP_ENABLED is off:
 * - `POST /v1/signup` `{"email"}` → 202, whatever the address;
 * - `/account/sign-up` (page and its form post), `/account/sign-up/confirm` (what the emailed
 *   link opens: a button whose post uses the link, creates the account, signs in and redirects
 *   to the Billing page, which shows the first key once);
 * - `GET /admin/signup-emails?email=` (operators): the sign-up emails, which have no account
 *   to be listed under, their links' tokens redacted; with SIGNUP_STORE_LINKS (local
 *   development only) whole, so that a local run needs no mail server.
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Child } from "hono/jsx";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { adminAuth } from "../../accounts/operator-auth";
import { sessionSecret, setFlash, startSession } from "../../accounts/sessions";
import { confirmSignup, peekLink, requestSignup } from "../../accounts/signup";
import {
  LINK_TTL_MS,
  normalizeEmail,
  publicOrigin,
  SIGN_UP_PATH,
  SIGNUP_EMAIL_ACCOUNT,
  signupEnabled,
} from "../../accounts/signup-config";
import { listEmails } from "../../db/emails";
import type { AppEnv } from "../../http/context";
import {
  clearNonce,
  issueNonceToken,
  type NonceCookie,
  postedFromThisOrigin,
  verifyNonceToken,
} from "../../http/form-token";
import { describe } from "../../http/openapi";
import { locationHintFor } from "../../ledger/client";
import { parseJson, parseQuery } from "../../platform/body";
import { brandOf } from "../../platform/brand";
import { ApiError, serviceUnavailable } from "../../platform/errors";
import { PLANS } from "../../pricing";
import { BILLING_PATH } from "../billing/pages";
import { formatCredits } from "../kit/format";
import { PageError, readFields } from "../kit/forms";
import { Document, type Notice, renderHtml } from "../kit/layout";
import { pageSecurityHeaders } from "../kit/security";
import {
  AlreadyRegisteredPage,
  CheckEmailPage,
  ConfirmPage,
  LinkUnusablePage,
  RateLimitedPage,
  SignUpPage,
  SignupMessagePage,
  SignupOffPage,
} from "./pages";

/** What the Billing page says, once, above the first key (with the key, in the flash). */
const WELCOME: Notice = {
  tone: "ok",
  text: "Your free account is ready, and you are signed in.",
  detail: `The free plan includes ${formatCredits(PLANS.free.monthlyCredits)} credits a month; your first API key is below.`,
};

/**
 * The sign-up forms have no session yet: their CSRF tokens are signed double-submit tokens
 * (../http/form-token), the nonce in a cookie covering the sign-up page and its confirm page,
 * nothing else. They guard against sign-in forgery: being made to confirm an attacker's link
 * would sign the victim in to the attacker's account.
 */
const FORM_COOKIE: NonceCookie = { name: "tg_signup", path: SIGN_UP_PATH };
type SignupFormPurpose = "sign-up" | "confirm";

const issueFormToken = (c: Context, secret: string, purpose: SignupFormPurpose) =>
  issueNonceToken(c, secret, FORM_COOKIE, purpose);

const EMAIL = z.email().max(254);
const SignupBody = z.strictObject({ email: EMAIL });
const EmailsQuery = z.strictObject({ email: EMAIL.optional() });

/** The API's answer, byte for byte the same for every address. */
const SENT = {
  status: "sent",
  message: `If the address can receive email, a sign-up link is on its way. It works once and expires in ${LINK_TTL_MS / 60_000} minutes.`,
} as const;

function notFound(c: Context): never {
  throw ApiError.notFound(`No route for ${c.req.method} ${c.req.path}.`);
}

function unavailable(): ApiError {
  return new ApiError(
    "service_unavailable",
    "Sign-up is not available: this server has no SESSION_SECRET (or ADMIN_TOKEN) configured.",
  );
}

function rateLimited(retryAfterSeconds: number): ApiError {
  return new ApiError("rate_limited", "Too many sign-up requests; try again later.", {
    headers: { "Retry-After": String(retryAfterSeconds) },
    extra: { retry_after_seconds: retryAfterSeconds },
  });
}

async function postSignup(c: Context<AppEnv>) {
  if (!signupEnabled(c.env)) notFound(c);
  const body = await parseJson(c, SignupBody);
  const secret = await sessionSecret(c.env);
  if (!secret) throw unavailable();
  const result = await requestSignup(c.env, c.get("db"), {
    email: body.email,
    clientAddress: c.req.header("CF-Connecting-IP"),
    origin: publicOrigin(c.env, c.req.url),
    secret,
  });
  if (!result.ok) throw rateLimited(result.retryAfterSeconds);
  return c.json(SENT, 202);
}

function otherMethod(c: Context<AppEnv>): never {
  if (!signupEnabled(c.env)) notFound(c);
  throw new ApiError("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}.`, {
    headers: { Allow: "POST" },
  });
}

const signupDoc = describe({
  summary: "Sign up: emails a link that creates the account and shows its first key",
  tag: "Sign-up and sign-in",
  security: "none",
  body: SignupBody,
  ok: { status: 202, description: "Accepted; the same answer whether or not the address is known" },
  errors: [404, 429],
});
const signupEmailsDoc = describe({
  summary: "The sign-up emails sent (local and test setups)",
  tag: "Operators",
  security: "operator",
  query: EmailsQuery,
  errors: [404],
});

/**
 * `/v1/signup`, mounted at `/v1` before the API-key middleware (the caller has no key yet). A
 * trailing slash is the same route, as everywhere under /v1: it must not reach the proxy.
 */
export const signupApiRoutes = new Hono<AppEnv>()
  .post("/signup", signupDoc, postSignup)
  .post("/signup/", postSignup)
  .all("/signup", otherMethod)
  .all("/signup/", otherMethod);

/** `/admin/signup-emails`: operator token, like every /admin route. */
export const signupAdminRoutes = new Hono<AppEnv>()
  .use(adminAuth)
  .get("/", signupEmailsDoc, async (c) => {
    if (!signupEnabled(c.env)) notFound(c);
    const query = parseQuery(c, EmailsQuery);
    const to = query.email === undefined ? null : normalizeEmail(query.email);
    const data = await listEmails(c.get("db"), SIGNUP_EMAIL_ACCOUNT, 50, to);
    return c.json({ data }, 200);
  });

function page(c: Context<AppEnv>, status: ContentfulStatusCode, title: string, body: Child) {
  return renderHtml(
    c,
    <Document title={`${title} · ${brandOf(c.env).company}`}>{body}</Document>,
    status,
  );
}

function refused(): PageError {
  return new PageError(
    403,
    "This form could not be accepted",
    "It was not sent from this page, or it is out of date. Open the sign-up page (or the link in your email) again and retry.",
  );
}

/** The secret that signs forms and sessions; without one nobody could be signed in. */
async function requireSecret(c: Context<AppEnv>): Promise<string> {
  const secret = await sessionSecret(c.env);
  if (!secret) {
    throw new PageError(
      503,
      "Sign-up is not available",
      "This server has no SESSION_SECRET (or ADMIN_TOKEN) configured.",
    );
  }
  return secret;
}

/** A form post with no session: from our origin, with the double-submit token of its form. */
async function checkForm(
  c: Context<AppEnv>,
  secret: string,
  purpose: SignupFormPurpose,
  fields: Record<string, string>,
): Promise<void> {
  if (
    !(await postedFromThisOrigin(c)) ||
    !(await verifyNonceToken(c, secret, FORM_COOKIE, purpose, fields.csrf))
  ) {
    throw refused();
  }
}

/** `/account/sign-up` and `/account/sign-up/confirm`: HTML, the Billing page's headers. */
export const signupPageRoutes = new Hono<AppEnv>()
  .use(pageSecurityHeaders)
  .use(async (c, next) => {
    // Off: still a 404 (there is no such route here), but a page that says why, so that a
    // visitor following an old link or a bookmark is not left guessing.
    if (!signupEnabled(c.env)) {
      return page(c, 404, "Sign-up is not available", <SignupOffPage />);
    }
    await next();
  })
  .get("/", async (c) => {
    const secret = await requireSecret(c);
    const csrf = await issueFormToken(c, secret, "sign-up");
    return page(c, 200, "Create a free account", <SignUpPage csrf={csrf} />);
  })
  .post("/", async (c) => {
    const fields = await readFields(c);
    const secret = await requireSecret(c);
    await checkForm(c, secret, "sign-up", fields);
    const email = EMAIL.safeParse(fields.email ?? "");
    if (!email.success) {
      const csrf = await issueFormToken(c, secret, "sign-up");
      return page(
        c,
        400,
        "Create a free account",
        <SignUpPage
          csrf={csrf}
          email={(fields.email ?? "").slice(0, 254)}
          notice={{ tone: "bad", text: "Enter a valid email address, such as name@example.com." }}
        />,
      );
    }
    const result = await requestSignup(c.env, c.get("db"), {
      email: email.data,
      clientAddress: c.req.header("CF-Connecting-IP"),
      origin: publicOrigin(c.env, c.req.url),
      secret,
    });
    if (!result.ok) {
      c.header("Retry-After", String(result.retryAfterSeconds));
      return page(
        c,
        429,
        "Too many sign-up requests",
        <RateLimitedPage retryAfterSeconds={result.retryAfterSeconds} />,
      );
    }
    return page(c, 202, "Check your email", <CheckEmailPage email={normalizeEmail(email.data)} />);
  })
  .get("/confirm", async (c) => {
    const secret = await requireSecret(c);
    const token = c.req.query("token") ?? "";
    // Only looks: mail scanners and link previews fetch this page, and must not use the link.
    const email = await peekLink(c.get("db"), token);
    if (email === null) return page(c, 410, "Link expired", <LinkUnusablePage />);
    const csrf = await issueFormToken(c, secret, "confirm");
    return page(
      c,
      200,
      "Create your account",
      <ConfirmPage email={email} token={token} csrf={csrf} />,
    );
  })
  .post("/confirm", async (c) => {
    const fields = await readFields(c);
    const secret = await requireSecret(c);
    await checkForm(c, secret, "confirm", fields);
    const result = await confirmSignup(c.env, c.get("db"), {
      token: fields.token ?? "",
      // The ledger is created near the person confirming, and never moves.
      locationHint: locationHintFor(c.req.raw.cf),
    });
    if (result.kind === "invalid") return page(c, 410, "Link expired", <LinkUnusablePage />);
    if (result.kind === "exists") {
      return page(c, 409, "Already registered", <AlreadyRegisteredPage email={result.email} />);
    }
    const session = await startSession(c, secret, {
      accountId: result.accountId,
      memberId: result.memberId,
      epoch: 0,
    });
    clearNonce(c, FORM_COOKIE);
    // Post/redirect/get, like every other form: the key rides to the Billing page in the
    // encrypted, read-once flash (never in a URL), so reloading that page repeats a harmless
    // GET that neither shows the key again nor uses the link a second time.
    await setFlash(c, secret, session.sessionId, {
      notice: WELCOME,
      newKey: { key: result.apiKey, name: "default" },
    });
    return c.redirect(BILLING_PATH, 303);
  })
  .onError((err, c) => {
    if (err instanceof PageError) {
      return page(
        c,
        err.status,
        err.title,
        <SignupMessagePage title={err.title} message={err.message} />,
      );
    }
    if (err instanceof ApiError || (err instanceof HTTPException && err.status < 500)) {
      const status = err.status as ContentfulStatusCode;
      return page(
        c,
        status,
        "That did not work",
        <SignupMessagePage title="That did not work" message={err.message} />,
      );
    }
    const unavailable = serviceUnavailable(err);
    if (unavailable) {
      for (const [name, value] of Object.entries(unavailable.headers)) c.header(name, value);
      const title = "Try again in a moment";
      return page(c, 503, title, <SignupMessagePage title={title} message={unavailable.message} />);
    }
    console.error(
      "sign-up page error",
      c.get("requestId"),
      err instanceof Error ? (err.stack ?? err.message) : String(err),
    );
    return page(
      c,
      500,
      "Something went wrong",
      <SignupMessagePage
        title="Something went wrong"
        message={`Something went wrong on our side. Quote request id ${c.get("requestId")} to support.`}
      />,
    );
  });
