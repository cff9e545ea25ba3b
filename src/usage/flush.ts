import { sql } from "drizzle-orm";
import { createDb } from "../db/client";
import { usageMinutes } from "../db/schema";

/** D1 allows 100 bound parameters per statement; a usage row binds 4. */
const ROWS_PER_STATEMENT = 25;

/**
 * Writes per-minute rollups to D1 as absolute values, so a repeated flush of the same minute
 * converges instead of double counting.
 */
export async function flushUsageToD1(
  d1: D1Database,
  accountId: string,
  rows: ReadonlyArray<{ minute: number; requests: number; credits: number }>,
): Promise<void> {
  if (rows.length === 0) return;
  const db = createDb(d1);
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
