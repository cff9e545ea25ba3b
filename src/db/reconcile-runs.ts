/** `reconcile_runs`: the reconciler's last run, one row, for the operators' overview. */
import { sql } from "drizzle-orm";
import type { Db } from "./client";
import { reconcileRuns } from "./schema";

export interface LastReconcile {
  finished_at: string;
  checked: number;
  attention: number;
}

export async function recordReconcile(db: Db, run: LastReconcile): Promise<void> {
  await db
    .insert(reconcileRuns)
    .values({ id: 1, finishedAt: run.finished_at, checked: run.checked, attention: run.attention })
    .onConflictDoUpdate({
      target: reconcileRuns.id,
      set: {
        finishedAt: sql`excluded.finished_at`,
        checked: sql`excluded.checked`,
        attention: sql`excluded.attention`,
      },
    });
}

export async function lastReconcile(db: Db): Promise<LastReconcile | null> {
  const row = await db.select().from(reconcileRuns).get();
  return row
    ? { finished_at: row.finishedAt, checked: row.checked, attention: row.attention }
    : null;
}
