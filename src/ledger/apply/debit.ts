/**
 * A debit that writes alone (not in a group commit's batch: `joinsBatch`), written: its share of
 * the account-minute's row, and only near the threshold or across the alert level the trigger
 * and the alert, which read the stored settings. Inside the object's `transactionSync`, after
 * the pending batch was written; returns the effects for after it.
 */
import type { DebitDecision } from "../domain/decisions";
import { addEffects, type Effects, noEffects } from "../domain/effects";
import type { StateRow } from "../domain/types";
import { rechargeFollowUp } from "../follow-ups";
import { settleMinutes } from "../store/aggregates";
import { type LastMinuteRow, recordDebit } from "../store/minute-writes";
import { recordLowBalanceAlert } from "../store/recharges";
import { readStateRow } from "../store/state";

export function applyDebit(
  sql: SqlStorage,
  d: Extract<DebitDecision, { kind: "take" }>,
  settledUntil: number,
  keyId: string,
  now: number,
  last: LastMinuteRow,
): Effects {
  const fx = noEffects();
  // Rare: no checkpoint for a day (an idle object); settle before reusing a slot.
  if (d.mustSettle) settleMinutes(sql, settledUntil, d.minute, Math.floor(now / 1000));
  recordDebit(sql, d.minute, keyId, d.take, last);
  const live = (): StateRow => ({ ...(readStateRow(sql) as StateRow), ...d.after });
  // The trigger reads the stored settings (and the pending check) only near the threshold.
  if (d.nearThreshold) addEffects(fx, rechargeFollowUp(sql, live(), now));
  // Worded after the trigger: the email says whether a recharge is now in flight.
  if (d.crossesAlert) fx.deliver.push(recordLowBalanceAlert(sql, live(), now));
  return fx;
}
