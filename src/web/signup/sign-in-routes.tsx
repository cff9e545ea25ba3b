/**
 * Signing in by email (contract: "People, roles and sign-in"), always on (it is the only way to
 * the Billing page):
 * - `POST /v1/sign-in` `{"email"}` → 202, whatever the address;
 * - `/account/sign-in` (the form's post; the form itself is on the signed-out Billing page and
 *   at GET /account/sign-in), `/account/sign-in/confirm` (what the emailed link opens: a button
 *   per account whose post uses the link and signs in);
 * - `/account/invitation` (what an invitation's link opens: a button that accepts and signs in).
 * The pages are sign-up's (./pages.tsx), and so is the token mechanism behind them.
 */

import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import { type Context, Hono } from "hono";
import type { Child } from "hono/jsx";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { acceptInvitation, peekInvitation } from "../../accounts/members";
import {
  authenticationOptions,
  type PasskeyRefusal,
  verifyPasskeySignIn,
} from "../../accounts/passkeys";
import {
  clearSignInToken,
  SIGN_IN_COOKIE,
  sessionSecret,
  setFlash,
  signInToken,
  startSession,
} from "../../accounts/sessions";
import { confirmSignIn, peekSignIn, requestSignIn } from "../../accounts/sign-in";
import {
  LINK_TTL_MS,
  normalizeEmail,
  publicOrigin,
  signupEnabled,
} from "../../accounts/signup-config";
import type { AppEnv } from "../../http/context";
import { issueNonceToken, postedFromThisOrigin, verifyNonceToken } from "../../http/form-token";
import { describe } from "../../http/openapi";
import { parseJson } from "../../platform/body";
import { brandOf } from "../../platform/brand";
import { ApiError } from "../../platform/errors";
import { BILLING_PATH, PASSKEY_SIGN_IN_PATH, SignInPage } from "../billing/pages";
import { readFields } from "../kit/forms";
import { Document, renderHtml } from "../kit/layout";
import { relyingParty } from "../kit/passkey-form";
import { pageSecurityHeaders } from "../kit/security";
import {
  InvitationPage,
  InvitationUnusablePage,
  PasskeySignInRefusedPage,
  RateLimitedPage,
  SignInConfirmPage,
  SignInLinkUnusablePage,
  SignInSentPage,
  SignupMessagePage,
} from "./pages";

const EMAIL = z.email().max(254);
const SignInBody = z.strictObject({ email: EMAIL });

/** The API's answer, byte for byte the same for every address. */
const SENT = {
  status: "sent",
  message: `If the address is a member of an account, a sign-in link is on its way. It works once and expires in ${LINK_TTL_MS / 60_000} minutes.`,
} as const;

function rateLimited(retryAfterSeconds: number): ApiError {
  return new ApiError("rate_limited", "Too many sign-in requests; try again later.", {
    headers: { "Retry-After": String(retryAfterSeconds) },
    extra: { retry_after_seconds: retryAfterSeconds },
  });
}

async function postSignIn(c: Context<AppEnv>) {
  const body = await parseJson(c, SignInBody);
  const secret = await sessionSecret(c.env);
  if (!secret) {
    throw new ApiError(
      "service_unavailable",
      "Sign-in is not available: this server has no SESSION_SECRET (or ADMIN_TOKEN) configured.",
    );
  }
  const result = await requestSignIn(c.env, c.get("db"), {
    email: body.email,
    clientAddress: c.req.header("CF-Connecting-IP"),
    origin: publicOrigin(c.env, c.req.url),
    secret,
  });
  if (!result.ok) throw rateLimited(result.retryAfterSeconds);
  return c.json(SENT, 202);
}

function otherMethod(c: Context<AppEnv>): never {
  throw new ApiError("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}.`, {
    headers: { Allow: "POST" },
  });
}

const signInDoc = describe({
  summary: "Sign in: emails a link to the Billing page",
  tag: "Sign-up and sign-in",
  security: "none",
  body: SignInBody,
  ok: { status: 202, description: "Accepted; the same answer whether or not the address is known" },
  errors: [429],
});

/** `/v1/sign-in`, mounted at `/v1` before the API-key middleware (the caller has none). */
export const signInApiRoutes = new Hono<AppEnv>()
  .post("/sign-in", signInDoc, postSignIn)
  .post("/sign-in/", postSignIn)
  .all("/sign-in", otherMethod)
  .all("/sign-in/", otherMethod);

function page(c: Context<AppEnv>, status: ContentfulStatusCode, title: string, body: Child) {
  return renderHtml(
    c,
    <Document title={`${title} · ${brandOf(c.env).company}`}>{body}</Document>,
    status,
  );
}

class FormRefused extends Error {}

/** The secret that signs forms and sessions (the middleware answered 503 without one). */
async function secretOf(c: Context<AppEnv>): Promise<string> {
  const secret = await sessionSecret(c.env);
  if (!secret) throw new Error("no session secret past the middleware");
  return secret;
}

/** A form post with no session yet: from our origin, with its form's double-submit token. */
async function checkForm(
  c: Context<AppEnv>,
  secret: string,
  purpose: string,
  fields: Record<string, string>,
): Promise<void> {
  if (
    !(await postedFromThisOrigin(c)) ||
    !(await verifyNonceToken(c, secret, SIGN_IN_COOKIE, purpose, fields.csrf))
  ) {
    throw new FormRefused("forged or stale form");
  }
}

async function signInForm(
  c: Context<AppEnv>,
  secret: string,
  status: ContentfulStatusCode,
  options: { email?: string; bad?: string } = {},
) {
  return page(
    c,
    status,
    "Sign in",
    <SignInPage
      csrf={await signInToken(c, secret)}
      signUp={signupEnabled(c.env)}
      email={options.email}
      notice={options.bad ? { tone: "bad", text: options.bad } : null}
      passkeyOptions={await authenticationOptions(c.get("db"), relyingParty(c))}
    />,
  );
}

/** Signs the person in and sends them to the Billing page (post/redirect/get). */
async function signedIn(
  c: Context<AppEnv>,
  secret: string,
  member: { accountId: string; memberId: string; epoch: number },
  welcome?: string,
) {
  const session = await startSession(c, secret, member);
  clearSignInToken(c);
  if (welcome)
    await setFlash(c, secret, session.sessionId, { notice: { tone: "ok", text: welcome } });
  return c.redirect(BILLING_PATH, 303);
}

/** The pages' shared frame: the Billing page's headers, no secret → 503, errors as pages. */
function pages() {
  return new Hono<AppEnv>()
    .use(pageSecurityHeaders)
    .use(async (c, next) => {
      if (!(await sessionSecret(c.env))) {
        return page(
          c,
          503,
          "Sign-in is not available",
          <SignupMessagePage
            title="Sign-in is not available"
            message="This server has no SESSION_SECRET (or ADMIN_TOKEN) configured."
          />,
        );
      }
      await next();
    })
    .onError((err, c) => {
      if (err instanceof FormRefused) {
        const title = "This form could not be accepted";
        return page(
          c,
          403,
          title,
          <SignupMessagePage
            title={title}
            message="It was not sent from this page, or it is out of date. Open the sign-in page (or the link in your email) again and retry."
          />,
        );
      }
      if (err instanceof ApiError) {
        for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
        return page(
          c,
          err.status,
          "That did not work",
          <SignupMessagePage title="That did not work" message={err.message} />,
        );
      }
      console.error(
        "sign-in page error",
        c.get("requestId"),
        err instanceof Error ? (err.stack ?? err.message) : String(err),
      );
      const title = "Something went wrong";
      return page(
        c,
        500,
        title,
        <SignupMessagePage
          title={title}
          message={`Something went wrong on our side. Quote request id ${c.get("requestId")} to support.`}
        />,
      );
    });
}

/** `/account/sign-in`: the form, its post, and the emailed link's confirm step. */
export const signInPageRoutes = pages()
  .get("/", async (c) => signInForm(c, await secretOf(c), 200))
  .post("/", async (c) => {
    const fields = await readFields(c);
    const secret = await secretOf(c);
    await checkForm(c, secret, "sign-in", fields);
    const email = EMAIL.safeParse(fields.email ?? "");
    if (!email.success) {
      return signInForm(c, secret, 400, {
        email: (fields.email ?? "").slice(0, 254),
        bad: "Enter a valid email address, such as name@example.com.",
      });
    }
    const result = await requestSignIn(c.env, c.get("db"), {
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
        "Too many requests",
        <RateLimitedPage retryAfterSeconds={result.retryAfterSeconds} />,
      );
    }
    return page(c, 202, "Check your email", <SignInSentPage email={normalizeEmail(email.data)} />);
  })
  .get("/confirm", async (c) => {
    const secret = await secretOf(c);
    const token = c.req.query("token") ?? "";
    // Only looks: mail scanners and link previews fetch this page, and must not use the link.
    const found = await peekSignIn(c.get("db"), token);
    if (!found) return page(c, 410, "Link expired", <SignInLinkUnusablePage />);
    const csrf = await issueNonceToken(c, secret, SIGN_IN_COOKIE, "sign-in-confirm");
    return page(
      c,
      200,
      "Sign in",
      <SignInConfirmPage
        email={found.email}
        token={token}
        csrf={csrf}
        accounts={found.memberships}
      />,
    );
  })
  .post("/confirm", async (c) => {
    const fields = await readFields(c);
    const secret = await secretOf(c);
    await checkForm(c, secret, "sign-in-confirm", fields);
    const result = await confirmSignIn(c.get("db"), {
      token: fields.token ?? "",
      accountId: fields.account_id ?? "",
    });
    if (result.kind === "invalid") return page(c, 410, "Link expired", <SignInLinkUnusablePage />);
    return signedIn(c, secret, result);
  });

const PASSKEY_REFUSALS: Record<PasskeyRefusal, string> = {
  challenge:
    "The sign-in page was out of date or already used. Open the sign-in page again and retry.",
  unknown_credential:
    "This passkey is not known here: it may have been added for another site. Sign in by email instead.",
  not_verified: "Your device's answer could not be verified. Try again, or sign in by email.",
  already_added: "Your device's answer could not be verified. Try again, or sign in by email.",
  no_account:
    "The person this passkey belongs to is not a member of any account now. Sign in by email to check.",
};

/** The posted `response` field: the credential's JSON, or null. */
function passkeyResponse(value: string | undefined): AuthenticationResponseJSON | null {
  if (!value || value.length > 16_384) return null;
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as AuthenticationResponseJSON) : null;
  } catch {
    return null;
  }
}

/**
 * `/account/sign-in/passkey`: "Sign in with a passkey"'s post (the sign-in form's own token),
 * and the account choice that follows for a person in several accounts.
 */
export const passkeySignInRoutes = pages()
  .post("/", async (c) => {
    const fields = await readFields(c);
    const secret = await secretOf(c);
    await checkForm(c, secret, "sign-in", fields);
    const response = passkeyResponse(fields.response);
    const result = response
      ? await verifyPasskeySignIn(c.get("db"), relyingParty(c), response)
      : { kind: "invalid" as const, reason: "not_verified" as const };
    if (result.kind === "invalid") {
      const title = "Your passkey did not sign you in";
      return page(
        c,
        400,
        title,
        <PasskeySignInRefusedPage message={PASSKEY_REFUSALS[result.reason]} />,
      );
    }
    if (result.kind === "signed_in") return signedIn(c, secret, result);
    const csrf = await issueNonceToken(c, secret, SIGN_IN_COOKIE, "sign-in-confirm");
    return page(
      c,
      200,
      "Sign in",
      <SignInConfirmPage
        email={result.email}
        token={result.token}
        csrf={csrf}
        accounts={result.memberships}
        action={`${PASSKEY_SIGN_IN_PATH}/confirm`}
      />,
    );
  })
  .post("/confirm", async (c) => {
    const fields = await readFields(c);
    const secret = await secretOf(c);
    await checkForm(c, secret, "sign-in-confirm", fields);
    const result = await confirmSignIn(c.get("db"), {
      token: fields.token ?? "",
      accountId: fields.account_id ?? "",
      method: "passkey",
    });
    if (result.kind === "invalid") {
      const title = "Your passkey did not sign you in";
      return page(c, 410, title, <PasskeySignInRefusedPage message={PASSKEY_REFUSALS.challenge} />);
    }
    return signedIn(c, secret, result);
  });

/** `/account/invitation`: an invitation's link, and its accept button's post. */
export const invitationPageRoutes = pages()
  .get("/", async (c) => {
    const secret = await secretOf(c);
    const token = c.req.query("token") ?? "";
    const found = await peekInvitation(c.get("db"), token);
    if (!found) return page(c, 410, "Invitation expired", <InvitationUnusablePage />);
    const csrf = await issueNonceToken(c, secret, SIGN_IN_COOKIE, "invitation");
    return page(c, 200, "Join an account", <InvitationPage {...found} token={token} csrf={csrf} />);
  })
  .post("/", async (c) => {
    const fields = await readFields(c);
    const secret = await secretOf(c);
    await checkForm(c, secret, "invitation", fields);
    const result = await acceptInvitation(c.get("db"), fields.token ?? "");
    if (result.kind === "invalid") {
      return page(c, 410, "Invitation expired", <InvitationUnusablePage />);
    }
    return signedIn(c, secret, result, "Welcome: you joined the account and are signed in.");
  });
