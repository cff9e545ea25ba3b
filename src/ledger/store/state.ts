/** The account's one state row (`state`, id 1): the settled buckets and the settings. */
import { PLANS, type PlanId } from "../../pricing";
import { addOneMonth, DEFAULT_SPEND_LIMIT_CENTS, minuteOf } from "../domain/rules";
import type { StateRow } from "../domain/types";

export function readStateRow(sql: SqlStorage): StateRow | null {
  return sql.exec<StateRow>("SELECT * FROM state WHERE id = 1").toArray()[0] ?? null;
}

/** A new account's row: the plan's allowance for a cycle starting `now`. Returns the allowance. */
export function insertInitialState(
  sql: SqlStorage,
  accountId: string,
  plan: PlanId,
  now: number,
): number {
  const allowance = PLANS[plan].monthlyCredits;
  sql.exec(
    `INSERT INTO state (id, account_id, plan, monthly, purchased, cycle_started_at, cycle_ends_at,
       spend_limit_cents, cycle_max_monthly, compacted_until)
     VALUES (1, ?, ?, ?, 0, ?, ?, ?, ?, ?)`,
    accountId,
    plan,
    allowance,
    now,
    addOneMonth(now),
    DEFAULT_SPEND_LIMIT_CENTS,
    allowance,
    minuteOf(now),
  );
  return allowance;
}

/** An operator's suspension (`at` in ms, with its reason), or none: both null. */
export function writeSuspension(
  sql: SqlStorage,
  suspension: { at: number; reason: string } | null,
): void {
  sql.exec(
    "UPDATE state SET suspended_at = ?, suspension_reason = ? WHERE id = 1",
    suspension?.at ?? null,
    suspension?.reason ?? null,
  );
}
