/**
 * Request debits as aggregates (money rule 4): one row per account-minute in a ring of a day's
 * slots, settled into hour rows (kept 90 days) and day rows (kept for good). Every function
 * runs inside the caller's `transactionSync` but `checkpoint`, which is one; none awaits.
 */

import {
  keysJson,
  leaveMinute,
  type MinuteDelta,
  type MinuteRow,
  perKey,
  refundedAtShard,
  takeBack,
} from "../domain/minute-row";
import {
  type Buckets,
  DAY_SECONDS,
  floorTo,
  HOUR_RETENTION_SECONDS,
  HOUR_SECONDS,
  liveBalance,
  MINUTE_SECONDS,
  minuteOf,
  slotOf,
} from "../domain/rules";
import type { DebitCharge } from "../domain/types";
import {
  MINUTE_COLUMNS,
  minuteRowOf,
  readStoredMinute,
  recordDebits,
  type StoredMinute,
  sumsOf,
} from "./minute-writes";
import { insertBalanceProjection } from "./projections";
import { readStateRow } from "./state";

/** The minute rows in [from, until), as stored (keys parsed). */
export function readMinutes(sql: SqlStorage, from: number, until: number): MinuteRow[] {
  return sql
    .exec<StoredMinute>(
      `SELECT ${MINUTE_COLUMNS} FROM debit_minutes WHERE minute >= ? AND minute < ?`,
      from,
      until,
    )
    .toArray()
    .map(minuteRowOf);
}

/**
 * A shard's debits of one (minute, key), from its lease's report, written as the bank's own
 * would be (`recordDebits`: the minute's one row), then its refunds of them taken out. The
 * caller makes sure the minute is open and its slot may be reused (`ringNeedsSettling`).
 */
export function recordShardDebits(
  sql: SqlStorage,
  row: { minute: number; key_id: string; requests: number; refunds: number } & Buckets & {
      refunded: Buckets;
    },
): void {
  const { minute, requests, monthly, purchased } = row;
  const keys: MinuteDelta["keys"] = new Map();
  if (row.key_id !== "") keys.set(row.key_id, { requests, monthly, purchased });
  recordDebits(sql, { minute, requests, monthly, purchased, keys });
  if (row.refunds === 0 && row.refunded.monthly + row.refunded.purchased === 0) return;
  const stored = readMinute(sql, minute);
  if (stored) writeMinute(sql, refundedAtShard(stored, row.key_id, row.refunds, row.refunded));
}

/** Gross debits of the minutes not settled yet (from `since` on): what the live balance lacks. */
export function openDebits(sql: SqlStorage, since: number): Buckets {
  const row = sql
    .exec<{ m: number | null; p: number | null }>(
      "SELECT SUM(debit_monthly) AS m, SUM(debit_purchased) AS p FROM debit_minutes WHERE minute >= ?",
      since,
    )
    .one();
  return { monthly: row.m ?? 0, purchased: row.p ?? 0 };
}

type AggregateRow = {
  minute: number;
  key_id: string;
  requests: number;
  credits: number;
  debit_monthly: number;
  debit_purchased: number;
  refunded_monthly: number;
  refunded_purchased: number;
};

/**
 * The checkpoint: settles the minutes in [from, until) into their hours and moves their gross
 * debits into the state row's settled buckets, with `compacted_until = until`, in the caller's
 * transaction, so every minute is counted exactly once (the ring while open, the hour after).
 * Also rolls hours older than 90 days into days. Returns what was settled.
 */
export function settleMinutes(
  sql: SqlStorage,
  from: number,
  until: number,
  nowSec: number,
): Buckets {
  const minutes = readMinutes(sql, from, until);
  const rows: AggregateRow[] = minutes.flatMap((m) =>
    perKey(m).map((k) => ({ ...k, minute: m.minute })),
  );
  // The account's requests per minute (all keys): each hour row's `peak` is the account's
  // busiest minute among the minutes settled with it, so MAX(peak) over an hour's key rows is
  // the account's busiest minute of that hour (minutes are settled whole, never split).
  const perMinute = new Map<number, number>();
  for (const m of minutes) perMinute.set(m.minute, (perMinute.get(m.minute) ?? 0) + m.requests);
  const hourPeak = new Map<number, number>();
  for (const [minute, n] of perMinute) {
    const hour = floorTo(minute, HOUR_SECONDS);
    hourPeak.set(hour, Math.max(hourPeak.get(hour) ?? 0, n));
  }
  const hours = new Map<string, AggregateRow & { peak: number }>();
  const lastUsed = new Map<string, number>();
  const settled = { monthly: 0, purchased: 0 };
  for (const r of rows) {
    settled.monthly += r.debit_monthly;
    settled.purchased += r.debit_purchased;
    if (r.key_id !== "") lastUsed.set(r.key_id, Math.max(lastUsed.get(r.key_id) ?? 0, r.minute));
    const hour = floorTo(r.minute, HOUR_SECONDS);
    const id = `${hour}:${r.key_id}`;
    const h = hours.get(id) ?? {
      minute: hour,
      key_id: r.key_id,
      requests: 0,
      credits: 0,
      debit_monthly: 0,
      debit_purchased: 0,
      refunded_monthly: 0,
      refunded_purchased: 0,
      peak: hourPeak.get(hour) ?? 0,
    };
    h.requests += r.requests;
    h.credits += r.credits;
    h.debit_monthly += r.debit_monthly;
    h.debit_purchased += r.debit_purchased;
    h.refunded_monthly += r.refunded_monthly;
    h.refunded_purchased += r.refunded_purchased;
    hours.set(id, h);
  }
  for (const h of hours.values()) {
    sql.exec(
      `INSERT INTO usage_hours (hour, key_id, requests, credits, debit_monthly, debit_purchased,
         refunded_monthly, refunded_purchased, peak) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(hour, key_id) DO UPDATE SET requests = requests + excluded.requests,
         credits = credits + excluded.credits, debit_monthly = debit_monthly + excluded.debit_monthly,
         debit_purchased = debit_purchased + excluded.debit_purchased,
         refunded_monthly = refunded_monthly + excluded.refunded_monthly,
         refunded_purchased = refunded_purchased + excluded.refunded_purchased,
         peak = MAX(peak, excluded.peak)`,
      h.minute,
      h.key_id,
      h.requests,
      h.credits,
      h.debit_monthly,
      h.debit_purchased,
      h.refunded_monthly,
      h.refunded_purchased,
      h.peak,
    );
  }
  for (const [keyId, minute] of lastUsed) {
    sql.exec(
      `INSERT INTO key_last_used (key_id, minute) VALUES (?, ?)
       ON CONFLICT(key_id) DO UPDATE SET minute = MAX(minute, excluded.minute)`,
      keyId,
      minute,
    );
  }
  // The state row's CHECK (>= 0) holds: the settled buckets never drop below the live ones.
  sql.exec(
    "UPDATE state SET monthly = monthly - ?, purchased = purchased - ?, compacted_until = ? WHERE id = 1",
    settled.monthly,
    settled.purchased,
    until,
  );
  // A key's slot row is reused by its next debit at that minute of the day; one left two days
  // unused (a key that went quiet or was revoked) is settled and shown nowhere: dropped, so the
  // ring holds at most a day's minutes of the keys used in the last two days.
  sql.exec(
    "DELETE FROM debit_minutes WHERE minute < ? AND minute < ?",
    until,
    floorTo(nowSec, MINUTE_SECONDS) - 2 * DAY_SECONDS,
  );
  rollHoursIntoDays(sql, floorTo(nowSec - HOUR_RETENTION_SECONDS, DAY_SECONDS));
  return settled;
}

/** Hours before `before` (a day boundary) become day rows: sums kept, storage bounded. */
function rollHoursIntoDays(sql: SqlStorage, before: number): void {
  const old = sql.exec("SELECT 1 FROM usage_hours WHERE hour < ? LIMIT 1", before).toArray();
  if (old.length === 0) return;
  sql.exec(
    `INSERT INTO usage_days (day, key_id, requests, credits, debit_monthly, debit_purchased,
       refunded_monthly, refunded_purchased, peak)
     SELECT (hour / ${DAY_SECONDS}) * ${DAY_SECONDS}, key_id, SUM(requests), SUM(credits),
       SUM(debit_monthly), SUM(debit_purchased), SUM(refunded_monthly), SUM(refunded_purchased),
       MAX(peak)
       FROM usage_hours WHERE hour < ? GROUP BY 1, 2
     ON CONFLICT(day, key_id) DO UPDATE SET requests = requests + excluded.requests,
       credits = credits + excluded.credits, debit_monthly = debit_monthly + excluded.debit_monthly,
       debit_purchased = debit_purchased + excluded.debit_purchased,
       refunded_monthly = refunded_monthly + excluded.refunded_monthly,
       refunded_purchased = refunded_purchased + excluded.refunded_purchased,
       peak = MAX(peak, excluded.peak)`,
    before,
  );
  sql.exec("DELETE FROM usage_hours WHERE hour < ?", before);
}

const NET_GUARD =
  "requests >= 1 AND debit_monthly - refunded_monthly >= ? AND debit_purchased - refunded_purchased >= ?";
const TAKE_BACK =
  "requests = requests - 1, credits = credits - ?, refunded_monthly = refunded_monthly + ?, refunded_purchased = refunded_purchased + ?";

/**
 * Takes a refunded debit out of its key's aggregate that counts it, guarded: the aggregate must still
 * hold a request and, per bucket, at least what the refund returns, net of earlier refunds, so
 * no refund can return more than its minute (or, once settled, its hour or day) took.
 * False when nothing there can pay it back (an unknown or already settled-away debit).
 */
export function refundFromAggregate(
  sql: SqlStorage,
  charge: DebitCharge,
  settledUntil: number,
): boolean {
  const credits = charge.monthly + charge.purchased;
  // A charge from before per-key aggregates (schema 9) names no key: its debit is in the
  // rows the upgrade kept under "".
  const keyId = charge.key_id ?? "";
  const args = [credits, charge.monthly, charge.purchased] as const;
  const guard = [charge.monthly, charge.purchased] as const;
  if (charge.minute >= settledUntil) {
    const row = readMinute(sql, charge.minute);
    const after = row ? takeBack(row, keyId, charge) : null;
    if (after) writeMinute(sql, after);
    return after !== null;
  }
  const hour = floorTo(charge.minute, HOUR_SECONDS);
  const settled =
    sql.exec(
      `UPDATE usage_hours SET ${TAKE_BACK} WHERE hour = ? AND key_id = ? AND ${NET_GUARD}`,
      ...args,
      hour,
      keyId,
      ...guard,
    ).rowsWritten === 1 ||
    sql.exec(
      `UPDATE usage_days SET ${TAKE_BACK} WHERE day = ? AND key_id = ? AND ${NET_GUARD}`,
      ...args,
      floorTo(charge.minute, DAY_SECONDS),
      keyId,
      ...guard,
    ).rowsWritten === 1;
  // The settled minute's ring row is only shown (minute grain for the last day): keep it in step.
  if (settled) usageLeavesMinute(sql, charge.minute, keyId, credits);
  return settled;
}

/** A refunded request leaves the minute it was shown in (usage only, no balance effect). */
export function usageLeavesMinute(
  sql: SqlStorage,
  minute: number,
  keyId: string,
  credits: number,
): void {
  const row = readMinute(sql, minute);
  if (row) writeMinute(sql, leaveMinute(row, keyId, credits));
}

/** The ring's row of `minute`, if its slot still holds that minute. */
function readMinute(sql: SqlStorage, minute: number): MinuteRow | null {
  const r = readStoredMinute(sql, minute);
  return r ? minuteRowOf(r) : null;
}

/** A refund's change to a minute row, written back whole (refunds are not the hot path). */
function writeMinute(sql: SqlStorage, row: MinuteRow): void {
  sql.exec(
    `UPDATE debit_minutes SET requests = ?, credits = ?, debit_monthly = ?, debit_purchased = ?,
       refunded_monthly = ?, refunded_purchased = ?, keys = ? WHERE slot = ? AND minute = ?`,
    ...sumsOf(row),
    keysJson(row.keys),
    slotOf(row.minute),
    row.minute,
  );
}

/** Gross debits of every aggregate row that counts in replay, and how many rows there are. */
export function aggregateTotals(sql: SqlStorage, settledUntil: number): Buckets & { rows: number } {
  const row = sql
    .exec<{ m: number | null; p: number | null; n: number }>(
      `SELECT SUM(m) AS m, SUM(p) AS p, SUM(n) AS n FROM (
         SELECT SUM(debit_monthly) AS m, SUM(debit_purchased) AS p, COUNT(*) AS n
           FROM debit_minutes WHERE minute >= ?
         UNION ALL SELECT SUM(debit_monthly), SUM(debit_purchased), COUNT(*) FROM usage_hours
         UNION ALL SELECT SUM(debit_monthly), SUM(debit_purchased), COUNT(*) FROM usage_days)`,
      settledUntil,
    )
    .one();
  return { monthly: row.m ?? 0, purchased: row.p ?? 0, rows: row.n ?? 0 };
}

/** Whether any debit was counted in a minute from `minute` on. */
export function hadTrafficSince(sql: SqlStorage, minute: number): boolean {
  return (
    sql.exec("SELECT 1 FROM debit_minutes WHERE minute >= ? LIMIT 1", minute).toArray().length > 0
  );
}

/**
 * The alarm's checkpoint: every closed minute (before the current one) settled into its hour
 * and the state row, in one transaction. Null: nothing to settle (no ledger, or no minute has
 * closed since the last one); else whether there was any debit since then.
 */
export function checkpoint(storage: DurableObjectStorage, now: number): boolean | null {
  const sql = storage.sql;
  const s = readStateRow(sql);
  const until = minuteOf(now);
  if (!s || until <= s.compacted_until) return null;
  const moved = storage.transactionSync(() => {
    const settled = settleMinutes(sql, s.compacted_until, until, Math.floor(now / 1000));
    // The traffic since the last balance projection reaches D1 now, once per checkpoint (the
    // operators' overview), never per request.
    const row = readStateRow(sql);
    if (row && settled.monthly + settled.purchased > 0)
      insertBalanceProjection(
        sql,
        row.account_id,
        liveBalance(row, openDebits(sql, row.compacted_until)),
        now,
      );
    return settled;
  });
  return moved.monthly + moved.purchased > 0 || hadTrafficSince(sql, s.compacted_until);
}
