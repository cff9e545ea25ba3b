/** Paid upgrades (`paid_upgrades`): the allowances paid for per cycle (money rule 9). */
import { PLANS, type PlanId } from "../../pricing";

/** What the upgrade entry `ref` added the first time, if it was recorded (a replay). */
export function recordedUpgradeDelta(sql: SqlStorage, ref: string): number | null {
  const seen = sql
    .exec<{ m: number }>("SELECT monthly_delta AS m FROM ledger WHERE ref = ?", ref)
    .toArray()[0];
  return seen ? seen.m : null;
}

/** The paid upgrade invoice `ref`, for the cycle ending at `cycleEndsAt` (once). */
export function recordPaidUpgrade(
  sql: SqlStorage,
  ref: string,
  cycleEndsAt: number,
  plan: PlanId,
  now: number,
): void {
  sql.exec(
    `INSERT INTO paid_upgrades (invoice_id, cycle_ends_at, plan, allowance, at)
     VALUES (?, ?, ?, ?, ?) ON CONFLICT(invoice_id) DO NOTHING`,
    ref,
    cycleEndsAt,
    plan,
    PLANS[plan].monthlyCredits,
    now,
  );
}

/** The largest plan of the upgrades paid for the cycle ending at `cycleEndsAt`, if any. */
export function largestPaidUpgrade(sql: SqlStorage, cycleEndsAt: number): PlanId | null {
  const row = sql
    .exec<{ plan: PlanId }>(
      "SELECT plan FROM paid_upgrades WHERE cycle_ends_at = ? ORDER BY allowance DESC LIMIT 1",
      cycleEndsAt,
    )
    .toArray()[0];
  return row?.plan ?? null;
}
