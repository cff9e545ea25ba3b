/**
 * Projections: the D1 history rows of what the ledger decided, written to the outbox in the
 * caller's `transactionSync`, so the row cannot be lost to a D1 failure after the commit.
 * `src/delivery/outbox.ts` writes them to D1 (idempotent on the row id) and the row leaves the
 * outbox only once D1 has accepted it.
 */
import type { HistoryRow, OutboxItem } from "../domain/types";

export function insertProjection(sql: SqlStorage, row: HistoryRow, now: number): OutboxItem {
  const item: OutboxItem = { type: "projection", ref: `history:${row.id}`, row };
  sql.exec(
    "INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
    item.ref,
    JSON.stringify(item),
    now,
  );
  return item;
}
