/**
 * Low-balance alerts, the pure rules: when the email goes out (once per crossing of the
 * customer's level) and which wording it takes (what auto-recharge will do about it). No I/O:
 * the Durable Object applies what these decide, in the transaction that moved the balance.
 */
import type { PackageId } from "../../pricing";

/** The largest level a customer may set: more credits than any plan or package holds. */
export const MAX_LOW_BALANCE_CREDITS = 1_000_000;

/** The alert's settings (null: no alert); `accounts/ledger-json.ts` builds the JSON. */
export interface AlertSettings {
  lowBalanceCredits: number | null;
}

/**
 * What a balance change means for the alert, given the level, whether the alert is armed (the
 * total has been above the level since the last email) and the total after the change:
 * - `alert`: armed and now at or below the level: email once and disarm;
 * - `arm`: disarmed and now above the level: the next fall to the level emails again;
 * - `null`: nothing changes (no level, still above while armed, still at or below while not).
 */
export function lowBalanceStep(input: {
  level: number | null;
  armed: boolean;
  total: number;
}): "alert" | "arm" | null {
  if (input.level === null) return null;
  if (input.armed && input.total <= input.level) return "alert";
  if (!input.armed && input.total > input.level) return "arm";
  return null;
}

/**
 * Auto-recharge as it stands when the balance crosses the level, which decides what the email
 * asks of the customer:
 * - `on`: a recharge is in flight, or will start at the threshold: nothing to do;
 * - `paused`: on, but the spending limit leaves no room for another package this month:
 *   raise the limit;
 * - `failed`: off because the last recharge failed or needs authentication: fix the card or
 *   complete the payment, then turn it back on;
 * - `off`: turn auto-recharge on or buy credits.
 */
export type LowBalanceSituation =
  | {
      auto_recharge: "on";
      package: PackageId;
      credits: number;
      amount_cents: number;
      /** A recharge is already in flight (the total is at or below the threshold). */
      pending: boolean;
      threshold: number;
    }
  | { auto_recharge: "paused"; limit_cents: number; resumes_at: string }
  | {
      auto_recharge: "failed";
      /** What failed: an auto-recharge, or a top-up (a failed top-up turns it off too). */
      kind: "auto_recharge" | "top_up";
      code: string;
      message: string;
      /** Where to complete a payment that needs authentication; null for a declined card. */
      action_url: string | null;
    }
  | { auto_recharge: "off" };

/** The wording's choice, from the account's settings at the moment of the crossing. */
export function lowBalanceSituation(input: {
  autoEnabled: boolean;
  package: { id: PackageId; credits: number; priceCents: number };
  threshold: number;
  /** An auto-recharge is in flight. */
  pending: boolean;
  /** Paused for this month by the spending limit (the settings show `paused`). */
  pausedThisMonth: boolean;
  /** Another package would still fit under this month's spending limit. */
  nextFits: boolean;
  limitCents: number | null;
  resumesAt: string;
  lastFailure: {
    kind: "auto_recharge" | "top_up";
    code: string;
    message: string;
    actionUrl: string | null;
  } | null;
}): LowBalanceSituation {
  if (input.autoEnabled) {
    // One in flight arrives whatever the limit: it was counted against it when it started.
    if (!input.pending && (input.pausedThisMonth || !input.nextFits)) {
      return {
        auto_recharge: "paused",
        limit_cents: input.limitCents ?? 0,
        resumes_at: input.resumesAt,
      };
    }
    return {
      auto_recharge: "on",
      package: input.package.id,
      credits: input.package.credits,
      amount_cents: input.package.priceCents,
      pending: input.pending,
      threshold: input.threshold,
    };
  }
  if (input.lastFailure) {
    return {
      auto_recharge: "failed",
      kind: input.lastFailure.kind,
      code: input.lastFailure.code,
      message: input.lastFailure.message,
      action_url: input.lastFailure.actionUrl,
    };
  }
  return { auto_recharge: "off" };
}
