/**
 * Pure money rules of the account ledger. No I/O: the Durable Object applies what these decide.
 */
import { RECHARGE_THRESHOLD } from "../../pricing";

/** Where a new account's monthly spending limit starts (money rule 10). */
export const DEFAULT_SPEND_LIMIT_CENTS = 20_000;

export interface Buckets {
  monthly: number;
  purchased: number;
}

export interface BalanceView extends Buckets {
  total: number;
}

export function withTotal(b: Buckets): BalanceView {
  return { monthly: b.monthly, purchased: b.purchased, total: b.monthly + b.purchased };
}

/**
 * How a debit of `cost` is taken: monthly credits first, then purchased credits.
 * Returns null when the buckets together cannot pay the whole cost (all or nothing).
 */
export function splitDebit(balance: Buckets, cost: number): Buckets | null {
  if (!Number.isSafeInteger(cost) || cost < 0) throw new RangeError(`invalid cost ${cost}`);
  if (balance.monthly + balance.purchased < cost) return null;
  const monthly = Math.min(balance.monthly, cost);
  return { monthly, purchased: cost - monthly };
}

/**
 * Whether a total is at or below the auto-recharge threshold: the one place the threshold is
 * compared (the trigger, and the debit deciding whether it must look at the trigger at all).
 */
export function atRechargeThreshold(total: number, threshold = RECHARGE_THRESHOLD): boolean {
  return total <= threshold;
}

/** Auto-recharge fires at or below the threshold, when enabled, with none already in flight. */
export function shouldTriggerRecharge(input: {
  total: number;
  enabled: boolean;
  pending: boolean;
  threshold?: number;
}): boolean {
  return input.enabled && !input.pending && atRechargeThreshold(input.total, input.threshold);
}

/** Applies signed deltas; null when either bucket would go below zero. */
export function applyDeltas(balance: Buckets, delta: Buckets): Buckets | null {
  const next = {
    monthly: balance.monthly + delta.monthly,
    purchased: balance.purchased + delta.purchased,
  };
  if (next.monthly < 0 || next.purchased < 0) return null;
  return next;
}

/** Start of the UTC minute containing `ms`, in unix seconds. */
export function minuteOf(ms: number): number {
  return Math.floor(ms / 60_000) * 60;
}

/** The same day-of-month one calendar month later (UTC), clamped to that month's last day. */
export function addOneMonth(ms: number): number {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth() + 1;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return Date.UTC(
    year,
    month,
    Math.min(d.getUTCDate(), lastDay),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    d.getUTCMilliseconds(),
  );
}

/** Start of the UTC calendar month containing `ms`: spending limits count purchases per month. */
export function monthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the next UTC calendar month after the one containing `ms`. */
export function nextMonthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * Whether a purchase of `priceCents` fits under the month's limit, given what was already
 * spent (pending purchases included). A null limit means no limit (money rule 10).
 */
export function fitsSpendLimit(
  spentCents: number,
  priceCents: number,
  limitCents: number | null,
): boolean {
  return limitCents === null || spentCents + priceCents <= limitCents;
}

/**
 * Monthly credits an upgrade adds mid-cycle: what the new allowance has beyond the largest one
 * already granted in this cycle. Flipping between plans therefore adds credits once, never
 * more than the largest allowance paid for in the cycle (money rule 9).
 */
export function upgradeGrant(largestAllowanceThisCycle: number, newAllowance: number): number {
  return Math.max(0, newAllowance - largestAllowanceThisCycle);
}

// ---------------------------------------------------------------- debit aggregates (rule 4)

export const MINUTE_SECONDS = 60;
export const HOUR_SECONDS = 3_600;
export const DAY_SECONDS = 86_400;
/** Minute rows are a ring of one day's slots: storage for them never grows. */
export const RING_SLOTS = DAY_SECONDS / MINUTE_SECONDS;
/** Hour rows are kept this long, then rolled into day rows. */
export const HOUR_RETENTION_SECONDS = 90 * DAY_SECONDS;

/** The ring slot of a minute (unix seconds, a multiple of 60). */
export function slotOf(minute: number): number {
  return (minute / MINUTE_SECONDS) % RING_SLOTS;
}

/** Start of the period of `step` seconds holding `seconds` (UTC; unix time has no leap seconds). */
export function floorTo(seconds: number, step: number): number {
  return Math.floor(seconds / step) * step;
}

/**
 * The minute a debit at `nowMs` is counted in: never one already settled (`settledUntil`), so a
 * clock that steps back cannot put a debit where neither replay nor the balance would see it.
 */
export function debitMinute(nowMs: number, settledUntil: number): number {
  return Math.max(minuteOf(nowMs), settledUntil);
}

/**
 * Whether the minute ring must be settled before a debit in `minute` may reuse a slot: a slot
 * holds a minute a day older, and only settled minutes may be overwritten.
 */
export function ringNeedsSettling(minute: number, settledUntil: number): boolean {
  return minute - settledUntil >= DAY_SECONDS - MINUTE_SECONDS;
}

/** Two amounts per bucket added (the open debits and one more take). */
export function addBuckets(a: Buckets, b: Buckets): Buckets {
  return { monthly: a.monthly + b.monthly, purchased: a.purchased + b.purchased };
}

/** The live balance: the settled buckets less the debits of the minutes not settled yet. */
export function liveBalance(settled: Buckets, open: Buckets): Buckets {
  return { monthly: settled.monthly - open.monthly, purchased: settled.purchased - open.purchased };
}
