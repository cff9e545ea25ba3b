/**
 * Dashboard sessions: a person signs in by an emailed link (./sign-in.ts), and `tg_session`,
 * an HMAC-signed cookie, names the account and the member, never a key (a key never opens a
 * browser session). The cookie alone is not enough: every read also checks in D1 that the
 * member is still an active member of that account and that its session epoch is the one the
 * cookie was signed with, so removal and "sign out everywhere" end sessions at the next
 * request, and the role is always the current one. Sessions are short: an hour idle (renewed
 * while used), twelve hours at most. Forms carry a CSRF token derived from the session id.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, getSignedCookie, setCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { dbFor } from "../db/client";
import { activeMember, type Role } from "../db/members";
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

export const SESSION_COOKIE = "tg_session";
/** Idle time after which a session ends; each use renews it (at most every few minutes). */
export const SESSION_IDLE_SECONDS = 60 * 60;
/** However much it is used, a session ends this long after sign-in. */
export const SESSION_MAX_SECONDS = 12 * 60 * 60;
/** A session read this long after its last renewal is renewed (fewer Set-Cookie headers). */
const RENEW_AFTER_SECONDS = 5 * 60;

/** Who a session names, as D1 says now (the role included), and the cookie's own facts. */
export interface Session {
  accountId: string;
  memberId: string;
  email: string;
  /** The person across accounts (`mailboxKey`). */
  emailKey: string;
  role: Role;
  sessionId: string;
  epoch: number;
  /** Unix seconds. */
  issuedAt: number;
  /** Unix seconds: the idle expiry, never past `issuedAt + SESSION_MAX_SECONDS`. */
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
  | "alerts"
  | "members"
  | "passkeys"
  | "webhooks";

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

type CookieFacts = Pick<
  Session,
  "accountId" | "memberId" | "epoch" | "issuedAt" | "expiresAt" | "sessionId"
>;

async function writeCookie(c: Context, secret: string, f: CookieFacts, now: number) {
  const value = [f.accountId, f.memberId, f.epoch, f.issuedAt, f.expiresAt, f.sessionId].join(".");
  await setSignedCookie(c, SESSION_COOKIE, value, secret, {
    ...COOKIE,
    maxAge: Math.max(1, f.expiresAt - Math.floor(now / 1000)),
  });
}

/** Signs the member in to the account: a new session cookie. */
export async function startSession(
  c: Context<AppEnv>,
  secret: string,
  member: { accountId: string; memberId: string; epoch: number },
  now = Date.now(),
): Promise<{ sessionId: string }> {
  const issuedAt = Math.floor(now / 1000);
  const facts: CookieFacts = {
    accountId: member.accountId,
    memberId: member.memberId,
    epoch: member.epoch,
    issuedAt,
    expiresAt: issuedAt + SESSION_IDLE_SECONDS,
    sessionId: randomBase62(24),
  };
  await writeCookie(c, secret, facts, now);
  return { sessionId: facts.sessionId };
}

export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, SESSION_COOKIE, COOKIE);
}

const VALUE =
  /^([A-Za-z0-9_]{1,64})\.([A-Za-z0-9_]{1,64})\.(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([A-Za-z0-9]{16,64})$/;

/**
 * The request's session, or null when there is none, it is forged, idle or past its maximum,
 * its member was removed (or the account is not theirs), or its epoch was raised since sign-in
 * (checked in D1 on every call, not cached). A session used after a few minutes is renewed:
 * this response carries the cookie with its new idle expiry.
 */
export async function readSession(c: Context<AppEnv>, now = Date.now()): Promise<Session | null> {
  const secret = await sessionSecret(c.env);
  if (!secret) return null;
  const value = await getSignedCookie(c, secret, SESSION_COOKIE);
  if (!value) return null;
  const match = VALUE.exec(value);
  if (!match) return null;
  const [
    ,
    accountId = "",
    memberId = "",
    epochText = "0",
    issued = "0",
    expires = "0",
    sessionId = "",
  ] = match;
  const facts: CookieFacts = {
    accountId,
    memberId,
    epoch: Number(epochText),
    issuedAt: Number(issued),
    expiresAt: Number(expires),
    sessionId,
  };
  const nowSeconds = Math.floor(now / 1000);
  const maxAt = facts.issuedAt + SESSION_MAX_SECONDS;
  if (facts.expiresAt <= nowSeconds || maxAt <= nowSeconds) return null;
  const member = await activeMember(dbFor(c.env.DB), accountId, memberId);
  if (!member || member.sessionEpoch !== facts.epoch) return null;
  const renewed = Math.min(nowSeconds + SESSION_IDLE_SECONDS, maxAt);
  if (renewed - facts.expiresAt >= RENEW_AFTER_SECONDS) {
    facts.expiresAt = renewed;
    await writeCookie(c, secret, facts, now);
  }
  return { ...facts, email: member.email, emailKey: member.emailKey, role: member.role };
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
  /** A webhook endpoint just added, with its signing secret: shown once, like a new key. */
  newWebhook?: { id: string; url: string; secret: string };
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
