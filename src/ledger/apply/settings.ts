/**
 * The account's settings, applied: the payment method, the limits, auto-recharge and the
 * low-balance level. Each reads the state, asks its pure decision where there is one
 * (`domain/commands.ts`), writes through `store/`, and returns a domain value, inside the
 * object's one transaction (`Tx`).
 */
import { decideAutoRecharge, decideLimits, raisesSpendLimit } from "../domain/commands";
import { rateLimitOf } from "../domain/decisions";
import { addEffects } from "../domain/effects";
import type {
  AlertsResult,
  AutoRechargeInput,
  LimitsInput,
  LimitsResult,
  SettingsResult,
  SuspendResult,
} from "../domain/types";
import { rechargeFollowUp } from "../follow-ups";
import {
  readStateRow,
  writeAutoRecharge,
  writeLimits,
  writeLowBalanceLevel,
  writePaymentMethod,
  writeSuspension,
} from "../store/state";
import { currentState, liveState, type Tx } from "../tx";
import { autoRechargeOf, limitsOf } from "../views";

/**
 * Records the customer's payment method on file (null: none). A recharge created from now on
 * pays with it, whatever changes later (a retry must send exactly its first attempt's
 * parameters under the same Stripe idempotency key).
 */
export function applyPaymentMethod(tx: Tx, paymentMethodId: string | null): void {
  writePaymentMethod(tx.sql, paymentMethodId);
}

/**
 * Operator and customer limits: the monthly spending limit (null: none) and the per-account
 * rate limit override (null: the plan's). Raising the limit ends a pause at once, and starts
 * the recharge the pause held back if the balance is still at or below the threshold.
 */
export function applyLimits(tx: Tx, input: LimitsInput): LimitsResult {
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  // Decided here, inside the object's one transaction, against the limit as it is now.
  if (
    input.mayRaise === false &&
    input.spendLimitCents !== undefined &&
    raisesSpendLimit(s.spend_limit_cents, input.spendLimitCents)
  ) {
    return { ok: false, reason: "session_required" };
  }
  const d = decideLimits(s, input);
  writeLimits(tx.sql, d.spendLimitCents, d.rateLimitOverride);
  // Re-decided from scratch: still over the limit pauses again (without a second email: the
  // email's reference is the month).
  addEffects(tx.fx, rechargeFollowUp(tx.sql, liveState(tx), tx.now));
  const after = liveState(tx);
  return {
    ok: true,
    limits: limitsOf(tx.sql, after, tx.now),
    rateLimitPerMinute: rateLimitOf(after),
  };
}

/**
 * Changes auto-recharge settings. Enabling needs a payment method on file; enabling at or
 * below the threshold starts a recharge at once. A package change affects the next trigger
 * only: a pending recharge keeps the package it was created with.
 */
export function applyAutoRecharge(tx: Tx, input: AutoRechargeInput): SettingsResult {
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const d = decideAutoRecharge(s, input);
  if (d.kind === "refuse") return { ok: false, reason: d.reason };
  writeAutoRecharge(tx.sql, d.enabled, d.package);
  const next = liveState(tx);
  addEffects(tx.fx, rechargeFollowUp(tx.sql, next, tx.now));
  return { ok: true, settings: autoRechargeOf(tx.sql, next, tx.now) };
}

/**
 * Sets the low-balance level (null: no alert). A level at or above the current total sends
 * nothing now: the customer just chose it looking at their balance. The alert is armed once
 * the total is above the level, at once if it already is (the mutation's low-balance
 * follow-up), and the next fall to the level emails.
 */
export function applyAlerts(tx: Tx, input: { lowBalanceCredits: number | null }): AlertsResult {
  if (!readStateRow(tx.sql)) return { ok: false, reason: "not_initialized" };
  writeLowBalanceLevel(tx.sql, input.lowBalanceCredits);
  return { ok: true, alerts: { lowBalanceCredits: input.lowBalanceCredits } };
}

/**
 * Suspends the account or lifts it (null). Suspending again keeps the first time and takes the
 * new reason; no purchase starts meanwhile (`decideTopUp`, `decideRecharge`). Lifting it
 * re-decides auto-recharge, as any change that lets one through does.
 */
export function applySuspension(tx: Tx, suspension: { reason: string } | null): SuspendResult {
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const next = suspension ? { at: s.suspended_at ?? tx.now, reason: suspension.reason } : null;
  writeSuspension(tx.sql, next);
  if (!next) addEffects(tx.fx, rechargeFollowUp(tx.sql, liveState(tx), tx.now));
  return { ok: true, suspension: next };
}
