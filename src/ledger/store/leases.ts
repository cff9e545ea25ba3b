/**
 * The bank's side of escrow leases (docs/ledger-shards.md): the `leases` table, one row per
 * lease, and the shard's reported debits written into the ordinary minute aggregates. Created
 * on first use (`CREATE TABLE IF NOT EXISTS`): an account that never had shards has no such
 * table and its schema version is unchanged. Every function runs inside the caller's
 * `transactionSync`.
 */
import type { Buckets } from "../domain/rules";

/** A lease row: open while `closed_at` is null. */
export type LeaseRow = {
  id: string;
  shard: number;
  monthly: number;
  purchased: number;
  expires_at: number;
  closed_at: number | null;
};

/** Closed leases are kept this long, so a late close or take of one is answered as a replay. */
const CLOSED_KEPT_MS = 86_400_000;

/** Whether each object's `leases` table exists, asked of `sqlite_master` once per object. */
const known = new WeakMap<SqlStorage, boolean>();

function ensureLeases(sql: SqlStorage): void {
  if (known.get(sql)) return;
  sql.exec(
    `CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, shard INTEGER NOT NULL,
       monthly INTEGER NOT NULL CHECK (monthly >= 0), purchased INTEGER NOT NULL CHECK (purchased >= 0),
       expires_at INTEGER NOT NULL, closed_at INTEGER)`,
  );
  known.set(sql, true);
}

/** Whether the object has ever granted a lease (no table, no read of it on the hot path). */
function hasLeases(sql: SqlStorage): boolean {
  const was = known.get(sql);
  if (was !== undefined) return was;
  // Only `ensureLeases` creates the table, in this object: a "no" stays true until it runs.
  const has =
    sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'").toArray()
      .length > 0;
  known.set(sql, has);
  return has;
}

export function findLease(sql: SqlStorage, id: string): LeaseRow | null {
  if (!hasLeases(sql)) return null;
  return sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0] ?? null;
}

export function openLeases(sql: SqlStorage): LeaseRow[] {
  if (!hasLeases(sql)) return [];
  return sql
    .exec<LeaseRow>("SELECT * FROM leases WHERE closed_at IS NULL ORDER BY expires_at")
    .toArray();
}

export function insertLease(
  sql: SqlStorage,
  lease: { id: string; shard: number; expiresAt: number } & Buckets,
): void {
  ensureLeases(sql);
  sql.exec(
    "INSERT INTO leases (id, shard, monthly, purchased, expires_at) VALUES (?, ?, ?, ?, ?)",
    lease.id,
    lease.shard,
    lease.monthly,
    lease.purchased,
    lease.expiresAt,
  );
}

/** Marks a lease closed; drops rows closed more than a day ago (storage grows with time). */
export function closeLease(sql: SqlStorage, id: string, now: number): void {
  sql.exec("UPDATE leases SET closed_at = ? WHERE id = ?", now, id);
  sql.exec("DELETE FROM leases WHERE closed_at < ?", now - CLOSED_KEPT_MS);
}
