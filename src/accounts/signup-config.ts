/** Sign-up settings, and the small pure helpers sign-up shares. */
import type { Bindings } from "../platform/env";

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

/**
 * Sign-up requests allowed per hour: per client (an IPv4 address or IPv6 /64), per network
 * around it (IPv4 /24, IPv6 /48: one subscriber often holds a whole /48, and a new /64 per
 * request must not mean a fresh limit), and per mailbox (`mailboxKey`).
 */
export const LIMITS = { perClient: 5, perNetwork: 10, perEmail: 3, windowMs: 60 * 60_000 } as const;

/**
 * The ceiling on sign-up emails (links and "you already have an account") from everyone
 * together, per hour, unless `SIGNUP_EMAILS_PER_HOUR` sets another: the backstop for what the
 * per-client limits cannot see (many networks), so that nobody can send hundreds of thousands
 * of emails an hour from the operator's domain. Reaching it refuses every sign-up with 429
 * until the hour's oldest request ages out, logs an error and emails `OPERATOR_EMAIL`.
 */
export const DEFAULT_SIGNUP_EMAILS_PER_HOUR = 500;

export function signupEmailsPerHour(env: Pick<Bindings, "SIGNUP_EMAILS_PER_HOUR">): number {
  const n = Number(env.SIGNUP_EMAILS_PER_HOUR);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_SIGNUP_EMAILS_PER_HOUR;
}
/** Rows older than this are deleted (a few at a time, as new requests come in). */
export const RETENTION_MS = 24 * 60 * 60_000;
export const PURGE_BATCH = 20;

/** Sign-up emails have no account yet: they are recorded under this account id. */
export const SIGNUP_EMAIL_ACCOUNT = "signup";
/** Sign-up emails are deleted (by the reconciler's cron) once their link has expired. */
export const EMAIL_RETENTION_MS = LINK_TTL_MS;
export const EMAIL_KINDS = {
  link: "signup_link",
  existing: "signup_existing_account",
  signIn: "sign_in_link",
  signInUnknown: "sign_in_no_account",
  invite: "invitation",
} as const;

export const SIGN_UP_PATH = "/account/sign-up";
export const CONFIRM_PATH = "/account/sign-up/confirm";
export const SIGN_IN_PATH = "/account/sign-in";
export const SIGN_IN_CONFIRM_PATH = "/account/sign-in/confirm";
export const INVITE_PATH = "/account/invitation";

/** How long an invitation's link works: a week, as the person may be away. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60_000;

/**
 * Email addresses are stored and sent to trimmed and lowercase; the limits and the "already has
 * an account" check compare their mailbox (`mailboxKey` in ../email/address).
 */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
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
