/**
 * CSRF protection for the sign-up forms, which have no session yet: a signed double-submit
 * token. The page sets a random nonce in an HttpOnly, SameSite=Strict cookie and puts
 * HMAC(secret, purpose + nonce) in the form; a post is accepted only when the field matches
 * the cookie it arrives with. Another site can neither read the cookie nor compute the HMAC
 * (and the origin check runs too). This guards against sign-in forgery: being made to
 * confirm an attacker's link would sign the victim in to the attacker's account.
 */
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { randomBase62, secretsEqual } from "../crypto";
import { SIGN_UP_PATH } from "./config";

export type SignupFormPurpose = "sign-up" | "confirm";

export const FORM_COOKIE = "tg_signup";
const NONCE = /^[0-9A-Za-z]{24}$/;
const encoder = new TextEncoder();

async function mac(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
  return btoa(String.fromCharCode(...sig))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

const tokenOf = (secret: string, purpose: SignupFormPurpose, nonce: string) =>
  mac(secret, `tollgate/signup-form/v1\n${purpose}\n${nonce}`);

/** The token for a form on this response; sets the nonce cookie when the browser has none. */
export async function issueFormToken(
  c: Context,
  secret: string,
  purpose: SignupFormPurpose,
): Promise<string> {
  let nonce = getCookie(c, FORM_COOKIE);
  if (!nonce || !NONCE.test(nonce)) {
    nonce = randomBase62(24);
    // Path covers the sign-up page and its confirm page, nothing else.
    setCookie(c, FORM_COOKIE, nonce, {
      httpOnly: true,
      secure: true,
      sameSite: "Strict",
      path: SIGN_UP_PATH,
      maxAge: 60 * 60,
    });
  }
  return tokenOf(secret, purpose, nonce);
}

export async function verifyFormToken(
  c: Context,
  secret: string,
  purpose: SignupFormPurpose,
  token: string | undefined,
): Promise<boolean> {
  const nonce = getCookie(c, FORM_COOKIE);
  if (!token || !nonce || !NONCE.test(nonce)) return false;
  return secretsEqual(token, await tokenOf(secret, purpose, nonce));
}
