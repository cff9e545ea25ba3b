/**
 * CSRF protection for every HTML form (the Billing page's, sign-in, sign-out and sign-up's):
 * one signed token scheme and one origin check.
 *
 * The token is HMAC(secret, "csrf\n" + binding + "\n" + purpose), base64url. The binding is
 * what the attacker's browser cannot present for the victim:
 * - signed in: the session id inside the HttpOnly, SameSite=Strict session cookie;
 * - no session yet (sign-in, sign-up): a random nonce in its own HttpOnly, SameSite=Strict
 *   cookie (a signed double-submit token), bound as `nonce:<nonce>` so that it can never
 *   equal a session id (those have no colon).
 * Another site can neither read the cookie nor compute the HMAC, and a token for one purpose is
 * refused by every other.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import type { CookieOptions } from "hono/utils/cookie";
import { hmacSha256, randomBase62, secretsEqual, toBase64Url } from "../platform/crypto";

/** The form token for `purpose`, bound to a session id or to a nonce binding. */
export async function formToken(secret: string, binding: string, purpose: string) {
  return toBase64Url(await hmacSha256(secret, `csrf\n${binding}\n${purpose}`));
}

export async function formTokenMatches(
  secret: string,
  binding: string,
  purpose: string,
  token: string | undefined,
): Promise<boolean> {
  if (!token) return false;
  return secretsEqual(token, await formToken(secret, binding, purpose));
}

/** The cookie holding the nonce of a form that has no session behind it. */
export interface NonceCookie {
  name: string;
  /** The narrowest path covering the form's page and its post. */
  path: string;
}

const NONCE = /^[0-9A-Za-z]{24}$/;
const NONCE_TTL_SECONDS = 60 * 60;

const nonceCookieOptions = (cookie: NonceCookie): CookieOptions => ({
  httpOnly: true,
  secure: true,
  sameSite: "Strict",
  path: cookie.path,
  maxAge: NONCE_TTL_SECONDS,
});

/** The token for a form on this response; sets the nonce cookie when the browser has none. */
export async function issueNonceToken(
  c: Context,
  secret: string,
  cookie: NonceCookie,
  purpose: string,
): Promise<string> {
  let nonce = getCookie(c, cookie.name);
  if (!nonce || !NONCE.test(nonce)) {
    nonce = randomBase62(24);
    setCookie(c, cookie.name, nonce, nonceCookieOptions(cookie));
  }
  return formToken(secret, `nonce:${nonce}`, purpose);
}

export async function verifyNonceToken(
  c: Context,
  secret: string,
  cookie: NonceCookie,
  purpose: string,
  token: string | undefined,
): Promise<boolean> {
  const nonce = getCookie(c, cookie.name);
  if (!nonce || !NONCE.test(nonce)) return false;
  return formTokenMatches(secret, `nonce:${nonce}`, purpose, token);
}

/** Spends the nonce (after the form did what it was for). */
export function clearNonce(c: Context, cookie: NonceCookie): void {
  deleteCookie(c, cookie.name, nonceCookieOptions(cookie));
}

/**
 * The origin check is Hono's `csrf` middleware. It checks only the content types a page on
 * another site can post without a CORS preflight (which we never answer), so the only ones
 * another site can send, and it refuses a post on which neither `Sec-Fetch-Site` nor `Origin`
 * vouches for this origin, including one carrying neither header (every browser we support
 * sends at least one; a script without them also lacks the SameSite=Strict cookies).
 *
 * Hono accepts a post when EITHER header vouches for it; ours must also not be contradicted
 * by the other one (a same-origin `Origin` beside `Sec-Fetch-Site: cross-site` is refused), so
 * each callback looks at both. `Origin: null`, which Chromium sends on our own posts under
 * Referrer-Policy: no-referrer, passes on a same-origin `Sec-Fetch-Site`. "none" means typed
 * by the user. It runs in place, not mounted, so that each route keeps the order of its checks
 * (a post without a session still gets the sign-in page first).
 */
const VOUCHING_SITES = new Set(["same-origin", "none"]);
const ownOrigin = (c: Context) => new URL(c.req.url).origin;
const honoCsrf = csrf({
  secFetchSite: (site, c) => {
    const origin = c.req.header("Origin");
    return (
      VOUCHING_SITES.has(site) &&
      (origin === undefined || origin === "null" || origin === ownOrigin(c))
    );
  },
  origin: (origin, c) => origin === ownOrigin(c) && c.req.header("Sec-Fetch-Site") === undefined,
});

/** True when the browser says the form was posted from this origin. */
export async function postedFromThisOrigin(c: Context): Promise<boolean> {
  try {
    await honoCsrf(c, async () => {});
    return true;
  } catch (err) {
    if (err instanceof HTTPException && err.status === 403) return false;
    throw err;
  }
}
