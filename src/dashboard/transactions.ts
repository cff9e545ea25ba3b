import type { Db } from "../db/client";
import { listTransactionPage } from "../db/transactions";

/** Opaque cursor: the (created_at, id) of the last row of the page, base64url-encoded. */
export function encodeCursor(createdAt: string, id: string): string {
  return btoa(JSON.stringify([createdAt, id]))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

export function decodeCursor(cursor: string): [string, string] | null {
  try {
    const value = JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
    if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "string")) {
      return value as [string, string];
    }
  } catch {
    // fall through
  }
  return null;
}

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
