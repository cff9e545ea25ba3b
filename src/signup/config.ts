/** Sign-up settings, and the small pure helpers the rest of src/signup shares. */
import type { Bindings } from "../env";

/** `SIGNUP_ENABLED = "true"` turns sign-up on; anything else (or unset) leaves it off. */
export function signupEnabled(env: Pick<Bindings, "SIGNUP_ENABLED">): boolean {
  return env.SIGNUP_ENABLED === "true";
}

/**
 * `SIGNUP_STORE_LINKS = "true"` keeps sign-up emails whole in D1, links included, so that
 * `GET /admin/signup-emails` shows them: for local development without a mail server only.
 * Anything else (the default) stores them with the link's token redacted.
 */
export function signupStoresLinks(env: Pick<Bindings, "SIGNUP_STORE_LINKS">): boolean {
  return env.SIGNUP_STORE_LINKS === "true";
}

/** How long an emailed link works. */
export const LINK_TTL_MS = 30 * 60_000;
/** Random base62 characters in a link's token: 32 × log2(62) ≈ 190 bits. */
export const TOKEN_LENGTH = 32;
export const TOKEN_PATTERN = /^[0-9A-Za-z]{32}$/;

/** Sign-up requests allowed per client address and per email address, per hour. */
export const LIMITS = { perClient: 5, perEmail: 3, windowMs: 60 * 60_000 } as const;
/** Rows older than this are deleted (a few at a time, as new requests come in). */
export const RETENTION_MS = 24 * 60 * 60_000;
export const PURGE_BATCH = 20;

/** Sign-up emails have no account yet: they are recorded under this account id. */
export const SIGNUP_EMAIL_ACCOUNT = "signup";
/** Sign-up emails are deleted (by the reconciler's cron) once their link has expired. */
export const EMAIL_RETENTION_MS = LINK_TTL_MS;
export const EMAIL_KINDS = { link: "signup_link", existing: "signup_existing_account" } as const;

export const SIGN_UP_PATH = "/account/sign-up";
export const CONFIRM_PATH = "/account/sign-up/confirm";

/** Email addresses are compared and stored trimmed and lowercase. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * What the per-address limit counts: an IPv4 address as is, an IPv6 address by its /64 (one
 * subscriber usually holds a whole /64, so counting single addresses would limit nothing).
 */
export function clientKey(address: string | undefined): string {
  const a = (address ?? "").trim().toLowerCase();
  if (a === "") return "unknown";
  if (!a.includes(":")) return a;
  const [head = "", tail, ...rest] = a.split("::");
  if (rest.length > 0) return a;
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return a;
  const groups = [...left, ...Array<string>(missing).fill("0"), ...right];
  const prefix = groups.slice(0, 4);
  if (!prefix.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return a;
  return `${prefix.map((g) => Number.parseInt(g, 16).toString(16)).join(":")}::/64`;
}

/**
 * Where links point: the configured dashboard's origin, not the request's Host, so a forged
 * Host header cannot make us email a link to someone else's site.
 */
export function publicOrigin(env: Pick<Bindings, "DASHBOARD_URL">, requestUrl: string): string {
  try {
    return new URL(env.DASHBOARD_URL).origin;
  } catch {
    return new URL(requestUrl).origin;
  }
}
