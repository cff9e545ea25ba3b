import { listKeyPage } from "../db/api-keys";
import type { Db } from "../db/client";
import { type After, encodeCursor } from "../http/cursor";

/**
 * One page of the account's keys (revoked ones too), newest first, with the same opaque
 * (created_at, id) cursor as the transaction history (see ./cursor).
 */
export async function listKeys(db: Db, accountId: string, limit: number, after?: After) {
  const rows = await listKeyPage(db, accountId, limit + 1, after);
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
