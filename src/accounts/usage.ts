import { z } from "zod";
import { ledgerFor } from "../ledger/client";
import type { Bindings } from "../platform/env";

export type Granularity = "minute" | "hour" | "day";

export const BUCKET_SECONDS: Record<Granularity, number> = { minute: 60, hour: 3_600, day: 86_400 };
/**
 * A day of minutes (all the ring keeps; 1,441 so "24 hours ago to now" fits with both partial
 * minutes), a month of hours, a little over a year of days: enough for any chart, bounded per
 * request.
 */
export const MAX_BUCKETS: Record<Granularity, number> = { minute: 1_441, hour: 31 * 24, day: 400 };
const DEFAULT_BUCKETS: Record<Granularity, number> = { minute: 60, hour: 24, day: 30 };
/**
 * Minutes are kept for a day (the ledger's ring: the last 1,440, the current one included). A
 * range may start up to a day before the current minute; the one minute the ring no longer
 * holds shows as zero.
 */
const MINUTES_KEPT_MS = 1_440 * 60_000;

/** Buckets `[start, end)` in unix seconds, both aligned to the granularity's UTC boundaries. */
export interface UsageRange {
  granularity: Granularity;
  start: number;
  end: number;
}

export interface UsageQuery extends UsageRange {
  /** `group_by=key`: one point per key and period with traffic. */
  byKey: boolean;
}

export interface UsagePoint {
  start: string;
  requests: number;
  credits: number;
}

/** With `group_by=key`: null for debits no key made (or counted before keys were recorded). */
export interface KeyedUsagePoint {
  start: string;
  key_id: string | null;
  requests: number;
  credits: number;
}

/** A usage row: `at` is any unix second inside its bucket (a minute start or a bucket start). */
export interface UsageRow {
  at: number;
  requests: number;
  credits: number;
  key_id?: string;
}

export const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/**
 * The range of whole buckets covering a period: the bucket holding `fromMs` up to and including
 * the bucket holding the last instant before `toMs`. Unix time has no leap seconds, so hour
 * and day boundaries in UTC are plain multiples of the bucket size.
 */
export function bucketRange(granularity: Granularity, fromMs: number, toMs: number): UsageRange {
  const stepMs = BUCKET_SECONDS[granularity] * 1000;
  return {
    granularity,
    start: (Math.floor(fromMs / stepMs) * stepMs) / 1000,
    end: (Math.ceil(toMs / stepMs) * stepMs) / 1000,
  };
}

/**
 * Every bucket of `range`, oldest first, with the rows summed into it and zeros where nothing
 * was used. Rows outside the range are ignored.
 */
export function zeroFilledSeries(rows: ReadonlyArray<UsageRow>, range: UsageRange): UsagePoint[] {
  const step = BUCKET_SECONDS[range.granularity];
  const count = Math.max(0, Math.floor((range.end - range.start) / step));
  const requests = new Array<number>(count).fill(0);
  const credits = new Array<number>(count).fill(0);
  for (const row of rows) {
    const i = Math.floor((row.at - range.start) / step);
    if (i < 0 || i >= count) continue;
    requests[i] = (requests[i] ?? 0) + row.requests;
    credits[i] = (credits[i] ?? 0) + row.credits;
  }
  return requests.map((n, i) => ({
    start: iso(range.start + i * step),
    requests: n,
    credits: credits[i] ?? 0,
  }));
}

/**
 * The rows summed per bucket and key, only the (bucket, key) pairs that had traffic, oldest
 * first and by key within a bucket. Rows outside the range are ignored.
 */
export function keyedSeries(rows: ReadonlyArray<UsageRow>, range: UsageRange): KeyedUsagePoint[] {
  const step = BUCKET_SECONDS[range.granularity];
  const points = new Map<string, { at: number; key: string; requests: number; credits: number }>();
  for (const row of rows) {
    if (row.at < range.start || row.at >= range.end) continue;
    const at = range.start + Math.floor((row.at - range.start) / step) * step;
    const key = row.key_id ?? "";
    const id = `${at}:${key}`;
    const p = points.get(id) ?? { at, key, requests: 0, credits: 0 };
    p.requests += row.requests;
    p.credits += row.credits;
    points.set(id, p);
  }
  return [...points.values()]
    .filter((p) => p.requests > 0 || p.credits > 0)
    .sort((a, b) => a.at - b.at || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((p) => ({
      start: iso(p.at),
      key_id: p.key === "" ? null : p.key,
      requests: p.requests,
      credits: p.credits,
    }));
}

/** The series `GET /v1/account/usage` answers: per key with `group_by=key`, else zero-filled. */
export async function loadUsageSeries(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  accountId: string,
  q: UsageQuery,
): Promise<UsagePoint[] | KeyedUsagePoint[]> {
  const rows = await ledgerFor(env, accountId).usage(q.start, q.end, {
    byKey: q.byKey,
    minutes: q.granularity === "minute",
  });
  return q.byKey ? keyedSeries(rows, q) : zeroFilledSeries(rows, q);
}

/**
 * The account's usage over `range`, read from its Durable Object (minute rows for the last day,
 * hour rows for 90 days, day rows before), summed per bucket and zero-filled. A period older
 * than 90 days has only its day's row, which an hourly series shows in the day's first hour.
 */
export async function loadUsage(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  accountId: string,
  range: UsageRange,
) {
  const rows = await ledgerFor(env, accountId).usage(range.start, range.end);
  return zeroFilledSeries(rows, range);
}

/** Credits used over `[from, to)` (unix seconds) and the requests of the busiest minute in it. */
export async function usageTotals(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  accountId: string,
  from: number,
  to: number,
): Promise<{ credits: number; peakRequestsPerMinute: number }> {
  const rows = await ledgerFor(env, accountId).usage(from, to);
  return {
    credits: rows.reduce((sum, r) => sum + r.credits, 0),
    peakRequestsPerMinute: rows.reduce((peak, r) => Math.max(peak, r.peak), 0),
  };
}

const time = z.iso.datetime({
  offset: true,
  error: "must be an RFC 3339 time such as 2026-04-01T00:00:00Z",
});

/**
 * The query of `GET /v1/account/usage`, resolved against `nowMs`: defaults (the last 24 hours
 * by hour, the last 30 days by day, ending with the current bucket), order and size checks.
 */
export function usageQuery(nowMs: number) {
  return z
    .strictObject({
      from: time.optional(),
      to: time.optional(),
      granularity: z
        .enum(["minute", "hour", "day"], { error: "must be minute, hour or day" })
        .default("hour"),
      group_by: z.enum(["key"], { error: "must be key" }).optional(),
      format: z.enum(["json", "csv"], { error: "must be json or csv" }).optional(),
    })
    .transform((q, ctx): UsageQuery => {
      const step = BUCKET_SECONDS[q.granularity] * 1000;
      const toMs = q.to ? Date.parse(q.to) : nowMs;
      const fromMs = q.from
        ? Date.parse(q.from)
        : Math.ceil(toMs / step) * step - DEFAULT_BUCKETS[q.granularity] * step;
      if (fromMs >= toMs) {
        ctx.issues.push({
          code: "custom",
          path: [q.from ? "from" : "to"],
          message: "from must be before to",
          input: q,
        });
        return z.NEVER;
      }
      const range = bucketRange(q.granularity, fromMs, toMs);
      if (
        q.granularity === "minute" &&
        range.start * 1000 < Math.floor(nowMs / 60_000) * 60_000 - MINUTES_KEPT_MS
      ) {
        ctx.issues.push({
          code: "custom",
          path: ["from"],
          message: "granularity=minute covers the last 24 hours; use hour or day before that",
          input: q,
        });
        return z.NEVER;
      }
      const max = MAX_BUCKETS[q.granularity];
      if ((range.end - range.start) / BUCKET_SECONDS[q.granularity] > max) {
        ctx.issues.push({
          code: "custom",
          path: ["from"],
          message: `the range is at most ${max} ${q.granularity}s at granularity=${q.granularity}`,
          input: q,
        });
        return z.NEVER;
      }
      return { ...range, byKey: q.group_by === "key" };
    });
}
