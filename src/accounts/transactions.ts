import type { Db } from "../db/client";
import { listTransactionPage } from "../db/transactions";
import { type After, encodeCursor } from "../http/cursor";

const PURCHASES = new Set(["auto_recharge", "top_up"]);

/**
 * The failed purchase whose history row offers "Retry: buy credits now", if any: only the
 * newest purchase, and only when it failed. A later purchase (succeeded, or still in flight)
 * already answered that failure, and an older failure was answered by whatever came after it;
 * offering those a retry would invite buying the same credits twice. `rows` newest first.
 */
export function retryableFailure(
  rows: ReadonlyArray<{ id: string; type: string; status: string }>,
): string | null {
  const latest = rows.find((r) => PURCHASES.has(r.type));
  return latest?.status === "failed" ? latest.id : null;
}

/** One page of history, newest first, after the row a (decoded) cursor names. */
export async function listTransactions(db: Db, accountId: string, limit: number, after?: After) {
  const rows = await listTransactionPage(db, accountId, limit + 1, after);
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
