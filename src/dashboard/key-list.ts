import { listKeyPage } from "../db/api-keys";
import type { Db } from "../db/client";
import { decodeCursor, encodeCursor } from "./transactions";

/**
 * One page of the account's keys (revoked ones too), newest first, with the same opaque
 * (created_at, id) cursor as the transaction history; null when the cursor is not one of ours.
 */
export async function listKeys(db: Db, accountId: string, limit: number, cursor?: string) {
  let after: { createdAt: string; id: string } | undefined;
  if (cursor) {
    const decoded = decodeCursor(cursor);
    if (!decoded) return null;
    after = { createdAt: decoded[0], id: decoded[1] };
  }
  const rows = await listKeyPage(db, accountId, limit + 1, after);
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
