/**
 * Dashboard sessions: signing in with an API key sets `tg_session`, an HMAC-signed cookie
 * holding the account id, the key id, an expiry and a random session id. The cookie alone is
 * not enough: every read also checks in D1 that the key is still active, so revoking the key
 * ends its sessions at the next request. Forms carry a CSRF token derived from the session id.
 */
import type { Context } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { randomBase62, secretsEqual, toHex } from "../crypto";
import { isKeyActive } from "../db/api-keys";
import { dbFor } from "../db/client";
import type { AppEnv, Bindings } from "../env";
import type { KeyIdentity } from "../gateway/identity";

export const SESSION_COOKIE = "tg_session";
export const SESSION_TTL_SECONDS = 12 * 60 * 60;

/** A session acts with full scope, so only a `full` key can start one (see sign-in). */
export interface Session extends Omit<KeyIdentity, "scope"> {
  sessionId: string;
  /** Unix seconds. */
  expiresAt: number;
}

/** What a form's token is for: a token for one action is refused by every other. */
export type CsrfPurpose = "auto-recharge" | "portal" | "checkout" | "keys" | "sign-out";

const COOKIE: CookieOptions = {
  httpOnly: true,
  secure: true,
  sameSite: "Strict",
  path: "/",
};

const encoder = new TextEncoder();

async function hmac(secret: string, message: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

/**
 * The key that signs sessions: SESSION_SECRET, or else one derived from ADMIN_TOKEN (never the
 * token itself, so a leaked cookie signature says nothing about it). Null when neither is
 * set: then nobody can sign in.
 */
export async function sessionSecret(
  env: Pick<Bindings, "SESSION_SECRET" | "ADMIN_TOKEN">,
): Promise<string | null> {
  if (env.SESSION_SECRET) return env.SESSION_SECRET;
  if (!env.ADMIN_TOKEN) return null;
  return toHex(await hmac(env.ADMIN_TOKEN, "tollgate/dashboard-session/v1"));
}

/** Signs the identity into a new session cookie. */
export async function startSession(
  c: Context<AppEnv>,
  secret: string,
  identity: Omit<KeyIdentity, "scope">,
  now = Date.now(),
): Promise<Session> {
  const session: Session = {
    accountId: identity.accountId,
    keyId: identity.keyId,
    sessionId: randomBase62(24),
    expiresAt: Math.floor(now / 1000) + SESSION_TTL_SECONDS,
  };
  const value = [session.accountId, session.keyId, session.expiresAt, session.sessionId].join(".");
  await setSignedCookie(c, SESSION_COOKIE, value, secret, {
    ...COOKIE,
    maxAge: SESSION_TTL_SECONDS,
  });
  return session;
}

export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, SESSION_COOKIE, COOKIE);
}

const VALUE = /^([A-Za-z0-9_]{1,64})\.([A-Za-z0-9_]{1,64})\.(\d{1,12})\.([A-Za-z0-9]{16,64})$/;

/**
 * The request's session, or null when there is none, it is forged or expired, or its key was
 * revoked since sign-in (checked in D1 on every call, not cached, so revocation is immediate).
 */
export async function readSession(c: Context<AppEnv>, now = Date.now()): Promise<Session | null> {
  const secret = await sessionSecret(c.env);
  if (!secret) return null;
  const value = await getSignedCookie(c, secret, SESSION_COOKIE);
  if (!value) return null;
  const match = VALUE.exec(value);
  if (!match) return null;
  const [, accountId = "", keyId = "", expires = "0", sessionId = ""] = match;
  const expiresAt = Number(expires);
  if (expiresAt * 1000 <= now) return null;
  const active = await isKeyActive(dbFor(c.env.DB), accountId, keyId);
  return active ? { accountId, keyId, sessionId, expiresAt } : null;
}

/** The token a form for `purpose` carries: an HMAC of the session id and the purpose. */
export async function csrfToken(
  secret: string,
  session: Session,
  purpose: CsrfPurpose,
): Promise<string> {
  const mac = await hmac(secret, `csrf\n${session.sessionId}\n${purpose}`);
  return btoa(String.fromCharCode(...mac))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

export async function verifyCsrf(
  secret: string,
  session: Session,
  purpose: CsrfPurpose,
  token: string | undefined,
): Promise<boolean> {
  if (!token) return false;
  return secretsEqual(token, await csrfToken(secret, session, purpose));
}

/**
 * False when the browser says the request came from another origin: a `Sec-Fetch-Site` other
 * than same-origin (or "none", typed by the user), or an `Origin` that is not ours. `Origin:
 * null` says nothing: browsers send it on a same-origin form post when Referrer-Policy is
 * no-referrer, as on this page. Requests without these headers pass: for forms the CSRF token
 * is the real check.
 */
export function notCrossOrigin(c: Context): boolean {
  const site = c.req.header("Sec-Fetch-Site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("Origin");
  return origin === undefined || origin === "null" || origin === new URL(c.req.url).origin;
}

/**
 * True only when the browser says the request came from this origin. For session-authenticated
 * API calls that change something, which carry no CSRF token: current browsers send
 * `Sec-Fetch-Site`, and `fetch()` sends a real `Origin`, so their absence is refused.
 */
export function provenSameOrigin(c: Context): boolean {
  const site = c.req.header("Sec-Fetch-Site");
  const origin = c.req.header("Origin");
  if (site !== undefined && site !== "same-origin") return false;
  if (origin !== undefined && origin !== new URL(c.req.url).origin) return false;
  return site !== undefined || origin !== undefined;
}
