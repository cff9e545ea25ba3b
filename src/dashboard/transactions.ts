import { fromBase64Url, toBase64Url } from "../crypto";
import type { Db } from "../db/client";
import { listTransactionPage } from "../db/transactions";

/** Opaque cursor: the (created_at, id) of the last row of the page, base64url-encoded. */
export function encodeCursor(createdAt: string, id: string): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([createdAt, id])));
}

export function decodeCursor(cursor: string): [string, string] | null {
  try {
    const value = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
    if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "string")) {
      return value as [string, string];
    }
  } catch {
    // fall through
  }
  return null;
}

/** One page of history, newest first; null when the cursor is not one of ours. */
export async function listTransactions(db: Db, accountId: string, limit: number, cursor?: string) {
  let after: { createdAt: string; id: string } | undefined;
  if (cursor) {
    const decoded = decodeCursor(cursor);
    if (!decoded) return null;
    after = { createdAt: decoded[0], id: decoded[1] };
  }
  const rows = await listTransactionPage(db, accountId, limit + 1, after);
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
