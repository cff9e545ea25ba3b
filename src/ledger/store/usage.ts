/**
 * The account's usage, read from its own aggregates: minute grain for the last day (the ring),
 * hour grain for 90 days, day grain beyond, each per key and summed over keys for the account.
 * The caller settles the ring first when it lags (so every hour before the ring's window is
 * complete); nothing here writes.
 */
import { perKey } from "../domain/minute-row";
import { DAY_SECONDS, HOUR_SECONDS, MINUTE_SECONDS, minuteOf } from "../domain/rules";
import { readMinutes } from "./aggregates";

export interface UsageRowWithPeak {
  at: number;
  requests: number;
  credits: number;
  /** Requests of the account's busiest minute in the row's period. */
  peak: number;
  /** Only when read per key: "" for debits no key made (or from before per-key rows). */
  key_id?: string;
}

/** The first hour boundary from which the ring holds every minute (about a day ago). */
export function ringWindowStart(nowMs: number): number {
  const oldest = minuteOf(nowMs) - DAY_SECONDS + MINUTE_SECONDS;
  return Math.ceil(oldest / HOUR_SECONDS) * HOUR_SECONDS;
}

/** The oldest minute the ring still shows: the last 1,440 minutes, the current one included. */
export function oldestShownMinute(nowMs: number): number {
  return minuteOf(nowMs) - DAY_SECONDS + MINUTE_SECONDS;
}

type Row = { at: number; key_id: string; requests: number; credits: number; peak: number };

/**
 * Per key the rows come as stored; for the account they are summed per period (a minute's
 * peak is its requests; an hour's or a day's is the MAX its key rows carry: see aggregates.ts).
 */
function select(
  sql: SqlStorage,
  from: string,
  at: string,
  peak: string,
  where: string,
  byKey: boolean,
  ...args: number[]
): UsageRowWithPeak[] {
  const query = byKey
    ? `SELECT ${at} AS at, key_id, requests, credits, ${peak} AS peak FROM ${from} WHERE ${where}`
    : `SELECT ${at} AS at, SUM(requests) AS requests, SUM(credits) AS credits,
         ${peak === "requests" ? "SUM(requests)" : `MAX(${peak})`} AS peak
       FROM ${from} WHERE ${where} GROUP BY ${at}`;
  return sql
    .exec<Row>(query, ...args)
    .toArray()
    .map((r) =>
      byKey
        ? { at: r.at, requests: r.requests, credits: r.credits, peak: r.peak, key_id: r.key_id }
        : { at: r.at, requests: r.requests, credits: r.credits, peak: r.peak },
    );
}

/**
 * Rows whose period starts in [start, end) (unix seconds), each at the finest grain kept: a
 * period older than 90 days shows as its day's row, one older than a day as its hour's.
 */
export function usageRows(
  sql: SqlStorage,
  start: number,
  end: number,
  nowMs: number,
  byKey = false,
): UsageRowWithPeak[] {
  const ring = ringWindowStart(nowMs);
  const rows: UsageRowWithPeak[] = [];
  if (end > ring) {
    rows.push(...ringRows(sql, Math.max(start, ring), end, nowMs, byKey));
  }
  if (start < ring) {
    for (const [table, key] of [
      ["usage_hours", "hour"],
      ["usage_days", "day"],
    ] as const) {
      rows.push(
        ...select(
          sql,
          table,
          key,
          "peak",
          `${key} >= ? AND ${key} < ?`,
          byKey,
          start,
          Math.min(end, ring),
        ),
      );
    }
  }
  return rows.sort((a, b) => a.at - b.at);
}

/** Minute rows in [start, end) within the last 1,440 minutes (the ring, settled or not). */
export function minuteRows(
  sql: SqlStorage,
  start: number,
  end: number,
  nowMs: number,
  byKey: boolean,
): UsageRowWithPeak[] {
  return ringRows(sql, Math.max(start, oldestShownMinute(nowMs)), end, nowMs, byKey).sort(
    (a, b) => a.at - b.at,
  );
}

/**
 * The ring's rows in [start, end) up to the current minute: one per minute for the account, or
 * one per key of each minute (minute-row.ts `perKey`). A minute's peak is its requests.
 */
function ringRows(
  sql: SqlStorage,
  start: number,
  end: number,
  nowMs: number,
  byKey: boolean,
): UsageRowWithPeak[] {
  const minutes = readMinutes(sql, start, Math.min(end, minuteOf(nowMs) + 1));
  if (!byKey)
    return minutes.map((m) => ({
      at: m.minute,
      requests: m.requests,
      credits: m.credits,
      peak: m.requests,
    }));
  return minutes.flatMap((m) =>
    perKey(m).map((k) => ({
      at: m.minute,
      requests: k.requests,
      credits: k.credits,
      peak: k.requests,
      key_id: k.key_id,
    })),
  );
}

/**
 * Each key's last minute with a debit: the checkpoint's record of settled minutes, or a later
 * open minute in the ring. Reads one row per key plus the open minutes' rows.
 */
export function keysLastUsed(sql: SqlStorage, settledUntil: number): Record<string, number> {
  const out: Record<string, number> = {};
  const settled = sql
    .exec<{ key_id: string; minute: number }>("SELECT key_id, minute FROM key_last_used")
    .toArray();
  for (const r of settled) out[r.key_id] = r.minute;
  for (const m of readMinutes(sql, settledUntil, Number.MAX_SAFE_INTEGER))
    for (const keyId of Object.keys(m.keys)) out[keyId] = Math.max(out[keyId] ?? 0, m.minute);
  return out;
}
