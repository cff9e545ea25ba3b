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

/** Signed amounts added to the settled buckets (a refund, an adjustment, a purchase). */
export function addToBuckets(sql: SqlStorage, monthly: number, purchased: number): void {
  sql.exec(
    "UPDATE state SET monthly = monthly + ?, purchased = purchased + ? WHERE id = 1",
    monthly,
    purchased,
  );
}

/** A billing cycle started: its monthly credits (by `delta`), plan and bounds. */
export function writeCycle(
  sql: SqlStorage,
  delta: number,
  c: {
    plan: PlanId;
    version: number;
    startedAt: number;
    endsAt: number;
    stripeCycles: number;
    cycleMaxMonthly: number;
  },
): void {
  sql.exec(
    `UPDATE state SET monthly = monthly + ?, plan = ?, plan_version = ?,
       cycle_started_at = ?, cycle_ends_at = ?, stripe_cycles = ?, cycle_max_monthly = ?
     WHERE id = 1`,
    delta,
    c.plan,
    c.version,
    c.startedAt,
    c.endsAt,
    c.stripeCycles,
    c.cycleMaxMonthly,
  );
}

export function writePlan(
  sql: SqlStorage,
  plan: PlanId,
  version: number,
  stripeCycles: number,
): void {
  sql.exec(
    "UPDATE state SET plan = ?, plan_version = ?, stripe_cycles = ? WHERE id = 1",
    plan,
    version,
    stripeCycles,
  );
}

/** A paid upgrade's monthly credits, and the largest allowance paid for in this cycle. */
export function raiseMonthly(sql: SqlStorage, added: number, cycleMaxMonthly: number): void {
  sql.exec(
    "UPDATE state SET monthly = monthly + ?, cycle_max_monthly = ? WHERE id = 1",
    added,
    cycleMaxMonthly,
  );
}

/** New limits end any pause: the trigger decides afresh whether one still holds. */
export function writeLimits(
  sql: SqlStorage,
  spendLimitCents: number | null,
  rateLimitOverride: number | null,
): void {
  sql.exec(
    "UPDATE state SET spend_limit_cents = ?, rate_limit_override = ?, paused_period = NULL WHERE id = 1",
    spendLimitCents,
    rateLimitOverride,
  );
}

export function writeAutoRecharge(sql: SqlStorage, enabled: boolean, pkg: string | null): void {
  sql.exec(
    "UPDATE state SET auto_enabled = ?, auto_package = ? WHERE id = 1",
    enabled ? 1 : 0,
    pkg,
  );
}

export function writePaymentMethod(sql: SqlStorage, paymentMethodId: string | null): void {
  sql.exec(
    "UPDATE state SET has_payment_method = ?, payment_method_id = ? WHERE id = 1",
    paymentMethodId ? 1 : 0,
    paymentMethodId,
  );
}

/** A new low-balance level, disarmed: the mutation's follow-up arms it if above the level. */
export function writeLowBalanceLevel(sql: SqlStorage, level: number | null): void {
  sql.exec("UPDATE state SET low_balance_credits = ?, low_balance_armed = 0 WHERE id = 1", level);
}

export function armLowBalance(sql: SqlStorage): void {
  sql.exec("UPDATE state SET low_balance_armed = 1 WHERE id = 1");
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
