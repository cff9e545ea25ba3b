/**
 * A shard's own storage (docs/ledger-shards.md): the lease it holds (at most one), its debits
 * of that lease per (minute, key), and the refunds it made of them. Each debit is one upsert,
 * written before it is answered, so a restarted shard neither spends its lease twice nor
 * forgets what it spent.
 */
import type { LeaseReport } from "../domain/leases";
import type { Buckets } from "../domain/rules";

export type LeaseStatus = "taking" | "active" | "closing";

export interface ShardLease {
  id: string;
  status: LeaseStatus;
  granted: Buckets;
  expiresAt: number;
  /** The bank's own live credits when it granted the lease (for the balance answered). */
  bankTotal: number;
  /** Keys revoked when the lease was granted: refused here (later ones come with a recall). */
  revoked: Set<string>;
  /** The account's requests per minute when the lease was granted (the shards share it). */
  rateLimit: number;
  spent: Buckets;
  refunded: Buckets;
}

export function ensureShardSchema(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS lease (id TEXT PRIMARY KEY, status TEXT NOT NULL,
      monthly INTEGER NOT NULL DEFAULT 0, purchased INTEGER NOT NULL DEFAULT 0,
      expires_at INTEGER NOT NULL DEFAULT 0, bank_total INTEGER NOT NULL DEFAULT 0,
      revoked TEXT NOT NULL DEFAULT '[]', rate_limit INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS spend (minute INTEGER NOT NULL, key_id TEXT NOT NULL,
      requests INTEGER NOT NULL, monthly INTEGER NOT NULL, purchased INTEGER NOT NULL,
      PRIMARY KEY (minute, key_id)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS refunds (ref TEXT PRIMARY KEY, minute INTEGER NOT NULL,
      key_id TEXT NOT NULL, monthly INTEGER NOT NULL, purchased INTEGER NOT NULL)`);
}

export function readMeta(sql: SqlStorage, key: string): string | null {
  return (
    sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ??
    null
  );
}

export function writeMeta(sql: SqlStorage, key: string, value: string): void {
  sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
}

/** The lease held, with what was spent and refunded of it, rebuilt from storage. */
export function readLease(sql: SqlStorage): ShardLease | null {
  const row = sql
    .exec<{
      id: string;
      status: LeaseStatus;
      monthly: number;
      purchased: number;
      expires_at: number;
      bank_total: number;
      revoked: string;
      rate_limit: number;
    }>("SELECT * FROM lease LIMIT 1")
    .toArray()[0];
  if (!row) return null;
  const sum = (table: string) => {
    const r = sql
      .exec<{ m: number | null; p: number | null }>(
        `SELECT SUM(monthly) AS m, SUM(purchased) AS p FROM ${table}`,
      )
      .one();
    return { monthly: r.m ?? 0, purchased: r.p ?? 0 };
  };
  return {
    id: row.id,
    status: row.status,
    granted: { monthly: row.monthly, purchased: row.purchased },
    expiresAt: row.expires_at,
    bankTotal: row.bank_total,
    revoked: new Set(JSON.parse(row.revoked) as string[]),
    rateLimit: row.rate_limit,
    spent: sum("spend"),
    refunded: sum("refunds"),
  };
}

export function insertTaking(sql: SqlStorage, id: string): void {
  sql.exec("INSERT INTO lease (id, status) VALUES (?, 'taking')", id);
}

export function activate(
  sql: SqlStorage,
  id: string,
  lease: Buckets & { expiresAt: number; bankTotal: number; revoked: string[]; rateLimit: number },
): void {
  sql.exec(
    "UPDATE lease SET status = 'active', monthly = ?, purchased = ?, expires_at = ?, bank_total = ?, revoked = ?, rate_limit = ? WHERE id = ?",
    lease.monthly,
    lease.purchased,
    lease.expiresAt,
    lease.bankTotal,
    JSON.stringify(lease.revoked),
    lease.rateLimit,
    id,
  );
}

export function markClosing(sql: SqlStorage, id: string): void {
  sql.exec("UPDATE lease SET status = 'closing' WHERE id = ?", id);
}

/** The bank settled the lease: the shard holds nothing. */
export function dropLease(sql: SqlStorage): void {
  sql.exec("DELETE FROM lease; DELETE FROM spend; DELETE FROM refunds");
}

export function recordSpend(sql: SqlStorage, minute: number, keyId: string, take: Buckets): void {
  sql.exec(
    `INSERT INTO spend (minute, key_id, requests, monthly, purchased) VALUES (?, ?, 1, ?, ?)
     ON CONFLICT(minute, key_id) DO UPDATE SET requests = requests + 1,
       monthly = monthly + excluded.monthly, purchased = purchased + excluded.purchased`,
    minute,
    keyId,
    take.monthly,
    take.purchased,
  );
}

export function hasRefund(sql: SqlStorage, ref: string): boolean {
  return sql.exec("SELECT 1 FROM refunds WHERE ref = ?", ref).toArray().length > 0;
}

/** A refund of one of the lease's debits; false when that debit was refunded already. */
export function recordRefund(
  sql: SqlStorage,
  ref: string,
  charge: Buckets & { minute: number; key_id: string },
): boolean {
  return (
    sql.exec(
      "INSERT OR IGNORE INTO refunds (ref, minute, key_id, monthly, purchased) VALUES (?, ?, ?, ?, ?)",
      ref,
      charge.minute,
      charge.key_id,
      charge.monthly,
      charge.purchased,
    ).rowsWritten > 0
  );
}

/** What the shard spent of its lease, as the bank settles it. */
export function readReport(sql: SqlStorage): LeaseReport {
  return {
    rows: sql
      .exec<{
        minute: number;
        key_id: string;
        requests: number;
        monthly: number;
        purchased: number;
      }>("SELECT minute, key_id, requests, monthly, purchased FROM spend")
      .toArray(),
    refunds: sql
      .exec<{ ref: string; minute: number; key_id: string; monthly: number; purchased: number }>(
        "SELECT ref, minute, key_id, monthly, purchased FROM refunds",
      )
      .toArray(),
  };
}
