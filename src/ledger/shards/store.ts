/**
 * A shard's own storage (docs/ledger-shards.md): the lease it holds (at most one), its debits
 * of that lease, one row per minute with each key's sums inside it (`spend_minutes`), and the
 * refunds it made of them. Debits are written before they are answered (a batch of them in
 * one row write: group commit, ../debit-batch.ts), so a restarted shard neither spends its
 * lease twice nor forgets what it spent.
 */
import type { LeaseReport } from "../domain/leases";
import type { MinuteDelta } from "../domain/minute-row";
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
    CREATE TABLE IF NOT EXISTS spend_minutes (minute INTEGER PRIMARY KEY, keys TEXT NOT NULL);
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
  const sum = (rows: { monthly: number; purchased: number }[]) => {
    const total = { monthly: 0, purchased: 0 };
    for (const r of rows) {
      total.monthly += r.monthly;
      total.purchased += r.purchased;
    }
    return total;
  };
  return {
    id: row.id,
    status: row.status,
    granted: { monthly: row.monthly, purchased: row.purchased },
    expiresAt: row.expires_at,
    bankTotal: row.bank_total,
    revoked: new Set(JSON.parse(row.revoked) as string[]),
    rateLimit: row.rate_limit,
    spent: sum(spendRows(sql)),
    refunded: sum(
      sql
        .exec<{ monthly: number; purchased: number }>("SELECT monthly, purchased FROM refunds")
        .toArray(),
    ),
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
  sql.exec("DELETE FROM lease; DELETE FROM spend; DELETE FROM spend_minutes; DELETE FROM refunds");
}

/** One key's sums in a minute's row: [requests, monthly, purchased]. */
type KeySums = [number, number, number];

/**
 * Debits of the lease, one delta per minute: each minute's row read, the delta's sums added per
 * key in memory and the row written back, one row written per minute whatever the keys (a
 * keyless debit's sums go under the key ""). Throws, having written nothing it was not told to
 * write, when storage fails; the caller makes it atomic across minutes.
 */
export function recordSpends(sql: SqlStorage, deltas: MinuteDelta[]): void {
  for (const d of deltas) {
    const stored = sql
      .exec<{ keys: string }>("SELECT keys FROM spend_minutes WHERE minute = ?", d.minute)
      .toArray()[0];
    const keys = new Map<string, KeySums>(
      stored ? Object.entries(JSON.parse(stored.keys) as Record<string, KeySums>) : [],
    );
    const add = (id: string, r: number, m: number, p: number) => {
      const [r0, m0, p0] = keys.get(id) ?? [0, 0, 0];
      keys.set(id, [r0 + r, m0 + m, p0 + p]);
    };
    let [r, m, p] = [d.requests, d.monthly, d.purchased];
    for (const [id, k] of d.keys) {
      add(id, k.requests, k.monthly, k.purchased);
      r -= k.requests;
      m -= k.monthly;
      p -= k.purchased;
    }
    if (r > 0 || m > 0 || p > 0) add("", r, m, p);
    sql.exec(
      `INSERT INTO spend_minutes (minute, keys) VALUES (?, ?)
       ON CONFLICT(minute) DO UPDATE SET keys = excluded.keys`,
      d.minute,
      JSON.stringify(Object.fromEntries(keys)),
    );
  }
}

type SpendRow = {
  minute: number;
  key_id: string;
  requests: number;
  monthly: number;
  purchased: number;
};

/**
 * What the lease spent, per minute and key: the rows a shard of this version writes, and any a
 * shard of an earlier one wrote (one row per minute and key, in `spend`) while it held the lease.
 */
function spendRows(sql: SqlStorage): SpendRow[] {
  const rows = sql
    .exec<SpendRow>("SELECT minute, key_id, requests, monthly, purchased FROM spend")
    .toArray();
  for (const { minute, keys } of sql.exec<{ minute: number; keys: string }>(
    "SELECT minute, keys FROM spend_minutes",
  ))
    for (const [key_id, [requests, monthly, purchased]] of Object.entries(
      JSON.parse(keys) as Record<string, KeySums>,
    ))
      rows.push({ minute, key_id, requests, monthly, purchased });
  return rows;
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
    rows: spendRows(sql),
    refunds: sql
      .exec<{ ref: string; minute: number; key_id: string; monthly: number; purchased: number }>(
        "SELECT ref, minute, key_id, monthly, purchased FROM refunds",
      )
      .toArray(),
  };
}
