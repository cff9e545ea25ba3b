/** The `usage_minutes` table: per-minute rollups flushed from each account's Durable Object. */
import { and, eq, gte, lt, sql } from "drizzle-orm";
import type { Db } from "./client";
import { usageMinutes } from "./schema";

/** D1 allows 100 bound parameters per statement; a usage row binds 4. */
const ROWS_PER_STATEMENT = 25;

export interface MinuteRow {
  minute: number;
  requests: number;
  credits: number;
}

/**
 * Writes rollups as absolute values, so a repeated flush of the same minute converges instead
 * of double counting.
 */
export async function upsertUsageMinutes(
  db: Db,
  accountId: string,
  rows: ReadonlyArray<MinuteRow>,
): Promise<void> {
  const statements = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(i, i + ROWS_PER_STATEMENT).map((r) => ({ accountId, ...r }));
    statements.push(
      db
        .insert(usageMinutes)
        .values(chunk)
        .onConflictDoUpdate({
          target: [usageMinutes.accountId, usageMinutes.minute],
          set: { requests: sql`excluded.requests`, credits: sql`excluded.credits` },
        }),
    );
  }
  const [first, ...rest] = statements;
  if (first) await db.batch([first, ...rest]);
}

/** Sums per bucket of `stepSeconds` over `[start, end)` (unix seconds); `at` is the bucket start. */
export function usageByBucket(
  db: Db,
  accountId: string,
  stepSeconds: number,
  start: number,
  end: number,
) {
  // Inlined so SQLite does integer division on the column.
  const step = sql.raw(String(Math.trunc(stepSeconds)));
  const bucket = sql<number>`(${usageMinutes.minute} / ${step}) * ${step}`;
  return db
    .select({
      at: bucket.mapWith(Number),
      requests: sql<number>`sum(${usageMinutes.requests})`.mapWith(Number),
      credits: sql<number>`sum(${usageMinutes.credits})`.mapWith(Number),
    })
    .from(usageMinutes)
    .where(
      and(
        eq(usageMinutes.accountId, accountId),
        gte(usageMinutes.minute, start),
        lt(usageMinutes.minute, end),
      ),
    )
    .groupBy(bucket)
    .all();
}

/** Credits used over `[from, to)` and the requests of the busiest minute in it. */
export async function usageTotals(
  db: Db,
  accountId: string,
  fromSec: number,
  toSec: number,
): Promise<{ credits: number; peakRequestsPerMinute: number }> {
  const row = await db
    .select({
      credits: sql<number>`coalesce(sum(${usageMinutes.credits}), 0)`.mapWith(Number),
      peak: sql<number>`coalesce(max(${usageMinutes.requests}), 0)`.mapWith(Number),
    })
    .from(usageMinutes)
    .where(
      and(
        eq(usageMinutes.accountId, accountId),
        gte(usageMinutes.minute, fromSec),
        lt(usageMinutes.minute, toSec),
      ),
    )
    .get();
  return { credits: row?.credits ?? 0, peakRequestsPerMinute: row?.peak ?? 0 };
}
