/**
 * The account's usage, read from its own aggregates: minute grain for the last day (the ring),
 * hour grain for 90 days, day grain beyond. The caller settles the ring first when it lags
 * (so every hour before the ring's window is complete); nothing here writes.
 */
import { DAY_SECONDS, HOUR_SECONDS, MINUTE_SECONDS, minuteOf } from "../domain/rules";

export interface UsageRowWithPeak {
  at: number;
  requests: number;
  credits: number;
  /** Requests of the busiest minute in the row's period. */
  peak: number;
}

/** The first hour boundary from which the ring holds every minute (about a day ago). */
export function ringWindowStart(nowMs: number): number {
  const oldest = minuteOf(nowMs) - DAY_SECONDS + MINUTE_SECONDS;
  return Math.ceil(oldest / HOUR_SECONDS) * HOUR_SECONDS;
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
): UsageRowWithPeak[] {
  const ring = ringWindowStart(nowMs);
  const rows: UsageRowWithPeak[] = [];
  if (end > ring) {
    rows.push(
      ...sql
        .exec<{ at: number; requests: number; credits: number }>(
          "SELECT minute AS at, requests, credits FROM debit_minutes WHERE minute >= ? AND minute < ? AND minute <= ?",
          Math.max(start, ring),
          end,
          minuteOf(nowMs),
        )
        .toArray()
        .map((r) => ({ at: r.at, requests: r.requests, credits: r.credits, peak: r.requests })),
    );
  }
  if (start < ring) {
    for (const [table, key] of [
      ["usage_hours", "hour"],
      ["usage_days", "day"],
    ] as const) {
      rows.push(
        ...sql
          .exec<{ at: number; requests: number; credits: number; peak: number }>(
            `SELECT ${key} AS at, requests, credits, peak FROM ${table} WHERE ${key} >= ? AND ${key} < ?`,
            start,
            Math.min(end, ring),
          )
          .toArray()
          .map((r) => ({ ...r })),
      );
    }
  }
  return rows.sort((a, b) => a.at - b.at);
}
