/**
 * The `ledger` table: balance changes with a unique reference (money rule 4). Called inside
 * the caller's `transactionSync`.
 */
import type { Buckets } from "../domain/rules";

export function hasEntry(sql: SqlStorage, ref: string): boolean {
  return sql.exec("SELECT 1 FROM ledger WHERE ref = ?", ref).toArray().length > 0;
}

export function appendEntry(
  sql: SqlStorage,
  entry: { ref: string; kind: string; monthly: number; purchased: number; at: number },
  note: string | null,
): void {
  sql.exec(
    "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at, note) VALUES (?, ?, ?, ?, ?, ?)",
    entry.ref,
    entry.kind,
    entry.monthly,
    entry.purchased,
    entry.at,
    note,
  );
}

/** The deltas of the entry `ref`, if there is one. */
export function entryDeltas(sql: SqlStorage, ref: string): Buckets | null {
  const row = sql
    .exec<{ m: number; p: number }>(
      "SELECT monthly_delta AS m, purchased_delta AS p FROM ledger WHERE ref = ?",
      ref,
    )
    .toArray()[0];
  return row ? { monthly: row.m, purchased: row.p } : null;
}

export function entryTotals(sql: SqlStorage): Buckets & { count: number } {
  const row = sql
    .exec<{ m: number | null; p: number | null; n: number }>(
      "SELECT SUM(monthly_delta) AS m, SUM(purchased_delta) AS p, COUNT(*) AS n FROM ledger",
    )
    .one();
  return { monthly: row.m ?? 0, purchased: row.p ?? 0, count: row.n };
}
