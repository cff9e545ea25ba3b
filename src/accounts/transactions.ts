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

/** The columns of the CSV export: the JSON item's fields, in the contract's order. */
export const TRANSACTION_CSV_COLUMNS = [
  "id",
  "type",
  "status",
  "credits",
  "amount_cents",
  "currency",
  "failure_code",
  "invoice_url",
  "action_url",
  "description",
  "created_at",
] as const;

/** Rows per D1 query of the export: one page in flight at a time. */
const EXPORT_PAGE = 100;

/** Every transaction after `after` (all of them without), newest first, one D1 page at a time. */
export async function* allTransactionPages(db: Db, accountId: string, after?: After) {
  let cursor = after;
  for (;;) {
    const rows = await listTransactionPage(db, accountId, EXPORT_PAGE, cursor);
    if (rows.length > 0) yield rows;
    const last = rows[rows.length - 1];
    if (rows.length < EXPORT_PAGE || !last) return;
    cursor = { createdAt: last.created_at, id: last.id };
  }
}
