import { listKeyPage } from "../db/api-keys";
import type { Db } from "../db/client";
import { type After, encodeCursor } from "../http/cursor";
import { ledgerFor } from "../ledger/client";
import type { Bindings } from "../platform/env";

/**
 * One page of the account's keys (revoked ones too), newest first, with the same opaque
 * (created_at, id) cursor as the transaction history (see ./cursor). `last_used_at` (minute
 * precision, null if never) comes from the ledger's per-key usage: no D1 write per request.
 */
export async function listKeys(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  db: Db,
  accountId: string,
  limit: number,
  after?: After,
) {
  const [rows, lastUsed] = await Promise.all([
    listKeyPage(db, accountId, limit + 1, after),
    ledgerFor(env, accountId).keysLastUsed(),
  ]);
  const data = rows.slice(0, limit).map((k) => {
    const minute = lastUsed[k.id];
    return {
      ...k,
      last_used_at: minute === undefined ? null : new Date(minute * 1000).toISOString(),
    };
  });
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
