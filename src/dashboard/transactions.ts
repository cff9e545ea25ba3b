import type { Db } from "../db/client";
import { listTransactionPage } from "../db/transactions";
import { type After, encodeCursor } from "./cursor";

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
