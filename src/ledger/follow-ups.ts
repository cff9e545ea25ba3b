/**
 * What every balance change is followed by, in its own transaction: the auto-recharge trigger
 * and the low-balance alert. Each applies a pure decision (`decideRecharge`, `lowBalanceStep`)
 * through `store/` and returns the effects (outbox items, alarms) for after the commit.
 */
import { decideRecharge } from "./domain/decisions";
import { addEffects, type Effects, noEffects } from "./domain/effects";
import { accountWide } from "./domain/leases";
import { lowBalanceStep } from "./domain/low-balance";
import { type Buckets, liveBalance, monthStart } from "./domain/rules";
import type { StateRow } from "./domain/types";
import { openLeases } from "./store/leases";
import { insertBalanceProjection } from "./store/projections";
import {
  hasPendingAutoRecharge,
  pauseForSpendLimit,
  recordLowBalanceAlert,
  spentThisMonth,
  startAutoRecharge,
} from "./store/recharges";
import { armLowBalance, readStateRow } from "./store/state";
import { currentState, liveState, type Tx } from "./tx";

/**
 * Inside a transaction, with `s` carrying the live buckets: the trigger decided
 * (`decideRecharge`) and applied. The facts are getters: each is read only if the rule gets to
 * it, as before the rule was pure.
 */
export function rechargeFollowUp(sql: SqlStorage, s: StateRow, now: number): Effects {
  const fx = noEffects();
  const d = decideRecharge(
    s,
    {
      get pending() {
        return hasPendingAutoRecharge(sql);
      },
      get spentThisMonthCents() {
        return spentThisMonth(sql, now);
      },
    },
    now,
  );
  if (d.kind === "pause") {
    fx.alarms.push(d.resumesAt);
    fx.deliver.push(pauseForSpendLimit(sql, s, now, d.resumesAt));
  } else if (d.kind === "start") {
    fx.deliver.push(startAutoRecharge(sql, s, d.package, d.clearPause, now));
  }
  return fx;
}

/** The trigger decided afresh on the live state (a debit refused while a pause ended). */
export function triggerRecharge(tx: Tx): void {
  addEffects(tx.fx, rechargeFollowUp(tx.sql, liveState(tx), tx.now));
}

/** A pause by the spending limit lasts until the calendar month turns (the alarm). */
export function resumeIfMonthTurned(tx: Tx): void {
  const s = currentState(tx);
  if (s && s.paused_period !== null && s.paused_period !== monthStart(tx.now))
    addEffects(tx.fx, rechargeFollowUp(tx.sql, s, tx.now));
}

/**
 * Inside the mutation's transaction, after its changes: the alert fires when armed and the
 * live total is at or below the level, and is armed again once the total is above it, by
 * whatever raised it except a refund. A refund gives back a request that never happened
 * (its upstream failed); if it re-armed, a client retrying against a failing upstream right
 * at the level would be emailed once per retry.
 */
export function lowBalanceFollowUp(tx: Pick<Tx, "sql" | "open" | "now">, rearm: boolean): Effects {
  const fx = noEffects();
  const s = currentState(tx);
  if (!s) return fx;
  // Account-wide: credits out on lease to the account's shards are still its own.
  const wide = accountWide(s, openLeases(tx.sql));
  const step = lowBalanceStep({
    level: s.low_balance_credits,
    armed: s.low_balance_armed === 1,
    total: wide.monthly + wide.purchased,
  });
  if (step === "arm" && rearm) armLowBalance(tx.sql);
  else if (step === "alert") fx.deliver.push(recordLowBalanceAlert(tx.sql, s, tx.now));
  return fx;
}

/**
 * Inside the mutation's transaction: the balance projected to D1 for the operators' overview
 * when the mutation changed it (`before`: the live balance before it, null before `init`).
 * None for `init`: the account's creation writes its first row to D1 itself, so a new account
 * costs no early alarm.
 */
export function balanceFollowUp(
  tx: Pick<Tx, "sql" | "open" | "now">,
  before: Buckets | null,
): Effects {
  const fx = noEffects();
  const row = readStateRow(tx.sql);
  if (!row || !before) return fx;
  const live = liveBalance(row, tx.open);
  if (before.monthly === live.monthly && before.purchased === live.purchased) return fx;
  fx.deliver.push(insertBalanceProjection(tx.sql, row.account_id, live, tx.now));
  return fx;
}
