/**
 * Who is at the operator console. In production Cloudflare Access stands in front of /admin
 * and every request carries its assertion (`accessOperator`, the operator's email). In local
 * mode, without Access, the operator types ADMIN_TOKEN once into the sign-in form and gets
 * `tg_operator`: an HMAC-signed cookie holding an expiry and a random id (never the token),
 * HttpOnly, SameSite=Strict, scoped to /admin. Its forms, in both modes, carry the one form
 * token (src/http/form-token.ts: a nonce cookie, HMAC-bound to the form's purpose).
 */
import type { Context } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { accessOperator } from "../../accounts/operator-auth";
import { sessionSecret } from "../../accounts/sessions";
import type { AppEnv } from "../../http/context";
import {
  issueNonceToken,
  type NonceCookie,
  postedFromThisOrigin,
  verifyNonceToken,
} from "../../http/form-token";
import type { Actor } from "../../platform/actor";
import { operatorActor } from "../../platform/actor";
import { randomBase62 } from "../../platform/crypto";
import { forbidden } from "../kit/forms";

export const CONSOLE_PATH = "/admin";
const OPERATOR_COOKIE = "tg_operator";
const OPERATOR_TTL_SECONDS = 12 * 60 * 60;
/** The forms' nonce cookie: the console's pages and posts are all under /admin. */
const FORM_COOKIE: NonceCookie = { name: "tg_operator_form", path: CONSOLE_PATH };

export type ConsolePurpose =
  | "operator-sign-in"
  | "operator-sign-out"
  | "operator-credits"
  | "operator-suspend"
  | "operator-unsuspend"
  | "operator-revoke-key"
  | "operator-sign-in-link";

const cookieOptions: CookieOptions = {
  httpOnly: true,
  secure: true,
  sameSite: "Strict",
  path: CONSOLE_PATH,
};

/** The operator at the console: Access first, else the local sign-in cookie; null: nobody. */
export async function consoleOperator(c: Context<AppEnv>): Promise<Actor | null> {
  const viaAccess = await accessOperator(c);
  if (viaAccess) return viaAccess;
  const secret = await sessionSecret(c.env);
  if (!secret || !c.env.ADMIN_TOKEN) return null;
  const value = await getSignedCookie(c, secret, OPERATOR_COOKIE);
  if (!value) return null;
  const [expires] = value.split(".");
  if (!(Number(expires) > Math.floor(Date.now() / 1000))) return null;
  return operatorActor(null);
}

/** Local mode: signs the operator in after the ADMIN_TOKEN was checked. */
export async function startOperatorSession(c: Context<AppEnv>, secret: string): Promise<void> {
  const expires = Math.floor(Date.now() / 1000) + OPERATOR_TTL_SECONDS;
  await setSignedCookie(c, OPERATOR_COOKIE, `${expires}.${randomBase62(24)}`, secret, {
    ...cookieOptions,
    maxAge: OPERATOR_TTL_SECONDS,
  });
}

export function endOperatorSession(c: Context<AppEnv>): void {
  deleteCookie(c, OPERATOR_COOKIE, cookieOptions);
}

/** The secret the console's form tokens are signed with; null: forms cannot be offered. */
export const formSecret = (c: Context<AppEnv>) => sessionSecret(c.env);

export async function consoleFormToken(
  c: Context<AppEnv>,
  secret: string,
  purpose: ConsolePurpose,
): Promise<string> {
  return issueNonceToken(c, secret, FORM_COOKIE, purpose);
}

/** A console form post: from this origin, with this purpose's token; else the 403 page. */
export async function checkConsoleForm(
  c: Context<AppEnv>,
  purpose: ConsolePurpose,
  token: string | undefined,
): Promise<void> {
  const secret = await formSecret(c);
  if (
    !secret ||
    !(await postedFromThisOrigin(c)) ||
    !(await verifyNonceToken(c, secret, FORM_COOKIE, purpose, token))
  )
    throw forbidden();
}
