/**
 * Hourly limits per account on the account actions that call Stripe or send email, shared by
 * the API and the Billing page (issue 18: one free account's parallel Checkout calls stalled
 * Stripe for every customer, since Stripe rate-limits per Stripe account). Proxied traffic has
 * its own per-minute limit in the ledger; none of this is on its path.
 *
 * Not limited here, on purpose: key creation (bounded by its own count of keys made in the
 * last hour, see `KEYS_PER_HOUR`), and key revocation (a security action must never be
 * refused; each key is revoked and emailed about once, so its emails are bounded by creations).
 */
import { takeAction } from "../db/account-actions";
import type { Db } from "../db/client";
import type { ApiError } from "../platform/errors";
import { refusal } from "../platform/refusals";

export const ACTION_WINDOW_MS = 60 * 60_000;

/** Allowed per account per hour. Plan Checkout and card setup share one count. */
export const ACTION_LIMITS = {
  checkout: 10,
  billing_portal: 20,
  top_up: 30,
  alerts: 20,
  /** Invitations: each emails an address an owner typed. */
  invite: 20,
  /** Test sends to a webhook endpoint: each is an outbound request to a customer's URL. */
  webhook_test: 30,
} as const;

export type LimitedAction = keyof typeof ACTION_LIMITS;

export function actionRateLimited(retryAfterSeconds: number): ApiError {
  return refusal("action_rate_limited", {
    headers: { "Retry-After": String(retryAfterSeconds) },
    extra: { retry_after_seconds: retryAfterSeconds },
  });
}

/** Counts the action; past the account's hourly limit, 429 `rate_limited` with `Retry-After`. */
export async function limitAction(
  db: Db,
  accountId: string,
  action: LimitedAction,
  now = Date.now(),
): Promise<void> {
  const decision = await takeAction(db, {
    accountId,
    action,
    limit: ACTION_LIMITS[action],
    windowMs: ACTION_WINDOW_MS,
    now,
  });
  if (!decision.ok) throw actionRateLimited(decision.retryAfterSeconds);
}
