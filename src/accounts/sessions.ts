/**
 * Dashboard sessions: signing in with an API key sets `tg_session`, an HMAC-signed cookie
 * holding the account id, the key id, an expiry and a random session id. The cookie alone is
 * not enough: every read also checks in D1 that the key is still active, so revoking the key
 * ends its sessions at the next request. Forms carry a CSRF token derived from the session id.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, getSignedCookie, setCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { isKeyActive } from "../db/api-keys";
import { dbFor } from "../db/client";
import type { AppEnv } from "../http/context";
import {
  clearNonce,
  formToken,
  formTokenMatches,
  issueNonceToken,
  type NonceCookie,
  verifyNonceToken,
} from "../http/form-token";
import {
  fromBase64Url,
  hmacSha256,
  open,
  randomBase62,
  seal,
  toBase64Url,
  toHex,
} from "../platform/crypto";
import type { Bindings } from "../platform/env";
import type { KeyIdentity } from "./identity";

export const SESSION_COOKIE = "tg_session";
export const SESSION_TTL_SECONDS = 12 * 60 * 60;

/** A session acts with full scope, so only a `full` key can start one (see sign-in). */
export interface Session extends Omit<KeyIdentity, "scope"> {
  sessionId: string;
  /** Unix seconds. */
  expiresAt: number;
}

/** What a form's token is for: a token for one action is refused by every other. */
export type CsrfPurpose =
  | "auto-recharge"
  | "portal"
  | "checkout"
  | "keys"
  | "sign-out"
  | "top-up"
  | "limits"
  | "alerts";

const COOKIE: CookieOptions = {
  httpOnly: true,
  secure: true,
  sameSite: "Strict",
  path: "/",
};

const encoder = new TextEncoder();

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
  return toHex(await hmacSha256(env.ADMIN_TOKEN, "tollgate/dashboard-session/v1"));
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

/** The token a form for `purpose` carries, bound to the session id (see ../http/form-token). */
export function csrfToken(secret: string, session: Session, purpose: CsrfPurpose): Promise<string> {
  return formToken(secret, session.sessionId, purpose);
}

export function verifyCsrf(
  secret: string,
  session: Session,
  purpose: CsrfPurpose,
  token: string | undefined,
): Promise<boolean> {
  return formTokenMatches(secret, session.sessionId, purpose, token);
}

/**
 * True only when the browser says the request came from this origin. For session-authenticated
 * API calls that change something, which carry no CSRF token: current browsers send
 * `Sec-Fetch-Site`, and `fetch()` sends a real `Origin`, so their absence is refused.
 *
 * Not Hono's `csrf` (used for the form posts, ../http/form-token): it checks only form content
 * types and lets everything else through, but these are JSON calls, and a session must not
 * authenticate any change without the browser's word on its origin, whatever the content type.
 */
export function provenSameOrigin(c: Context): boolean {
  const site = c.req.header("Sec-Fetch-Site");
  const origin = c.req.header("Origin");
  if (site !== undefined && site !== "same-origin") return false;
  if (origin !== undefined && origin !== new URL(c.req.url).origin) return false;
  return site !== undefined || origin !== undefined;
}

// ---------------------------------------------------------------- sign-in form token

/**
 * The sign-in form's token: there is no session yet to bind it to, so it is a signed
 * double-submit token (see ../http/form-token), like sign-up's. It stops login CSRF: another
 * site signing a visitor in to the attacker's account.
 */
export const SIGN_IN_COOKIE: NonceCookie = { name: "tg_signin", path: "/account" };

/** The sign-in form's token; sets the nonce cookie if absent. */
export function signInToken(c: Context, secret: string): Promise<string> {
  return issueNonceToken(c, secret, SIGN_IN_COOKIE, "sign-in");
}

export function verifySignInToken(
  c: Context,
  secret: string,
  token: string | undefined,
): Promise<boolean> {
  return verifyNonceToken(c, secret, SIGN_IN_COOKIE, "sign-in", token);
}

export function clearSignInToken(c: Context): void {
  clearNonce(c, SIGN_IN_COOKIE);
}

// ---------------------------------------------------------------- one-time messages ("flash")

/**
 * What a form post leaves for the page it redirects to (post/redirect/get): a notice, and for
 * "Create key" the new key itself.
 *
 * Why an encrypted cookie: every form answers with a 303, so reloading the page only repeats a
 * harmless GET, never the post (no second key, no second top-up). The one thing the next GET
 * must show that cannot travel in its URL is the new key. The server keeps no state per
 * session, so the key rides in the `tg_flash` cookie: HttpOnly (no script reads it), Secure,
 * SameSite=Strict, two minutes long, AES-256-GCM-encrypted and authenticated under a key
 * derived from the session secret (a leaked or logged cookie shows nothing, and a forged one is
 * refused), bound to the session id (another session cannot open it) and cleared by the very
 * response that reads it, so the key is shown once: a reload finds no cookie. The pages are
 * `no-store`, so going back does not show it from a cache either.
 */
export interface Flash {
  notice?: { tone: "ok" | "warn" | "bad"; text: string; detail?: string };
  newKey?: { key: string; name: string | null };
}

export const FLASH_COOKIE = "tg_flash";
const FLASH_TTL_SECONDS = 120;
const FLASH_COOKIE_OPTIONS: CookieOptions = {
  ...COOKIE,
  path: "/account",
  maxAge: FLASH_TTL_SECONDS,
};

function flashKey(secret: string): Promise<Uint8Array> {
  return hmacSha256(secret, "tollgate/dashboard-flash/v1");
}

const AAD = encoder.encode(FLASH_COOKIE);

/** Leaves `flash` for the next page view of this session (null: the signed-out page). */
export async function setFlash(
  c: Context,
  secret: string,
  sessionId: string | null,
  flash: Flash,
  now = Date.now(),
): Promise<void> {
  const payload = encoder.encode(
    JSON.stringify({ s: sessionId ?? "", e: Math.floor(now / 1000) + FLASH_TTL_SECONDS, f: flash }),
  );
  const sealed = await seal(await flashKey(secret), payload, AAD);
  setCookie(c, FLASH_COOKIE, toBase64Url(sealed), FLASH_COOKIE_OPTIONS);
}

/**
 * The flash left for this session, read once: the cookie is cleared whatever it held. Null
 * when there is none, it does not decrypt, it expired or it belongs to another session.
 */
export async function takeFlash(
  c: Context,
  secret: string,
  sessionId: string | null,
  now = Date.now(),
): Promise<Flash | null> {
  const value = getCookie(c, FLASH_COOKIE);
  if (value === undefined) return null;
  deleteCookie(c, FLASH_COOKIE, FLASH_COOKIE_OPTIONS);
  try {
    const plain = await open(await flashKey(secret), fromBase64Url(value), AAD);
    if (!plain) return null;
    const parsed = JSON.parse(new TextDecoder().decode(plain)) as {
      s: string;
      e: number;
      f: Flash;
    };
    if (parsed.s !== (sessionId ?? "") || parsed.e * 1000 <= now) return null;
    return parsed.f;
  } catch {
    return null;
  }
}
