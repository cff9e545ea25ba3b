/**
 * The account ledger's SQLite schema and the in-place migrations of existing objects, run
 * synchronously in the constructor and gated by `meta.schema_version` (one transaction: an
 * object is at one version or the next, never between).
 *
 * Tables (version 7):
 * - `state`         one row: account id, plan, settings (the low-balance alert's level and
 *                   whether it is armed among them), and the *settled* buckets (CHECK >= 0):
 *                   every entry plus every debit minute before `compacted_until`. The live
 *                   balance is the settled buckets less the debit minutes not settled yet; it is
 *                   held in memory and this row is not written by a request's debit.
 * - `ledger`        entries with a unique `ref`: cycle grants, plan changes, purchases,
 *                   adjustments, refunds (`refund:<debit>`), and (from before v4 only) one row per
 *                   request debit. Signed deltas per bucket.
 * - `debit_minutes` request debits aggregated per minute, a ring of 1,440 slots (slot = minute
 *                   of the day): count, net credits, gross per-bucket debits, refunded per
 *                   bucket. A debit is one UPSERT of its minute's row (1 row read, 1 written).
 *                   Rows before `compacted_until` are settled (also counted in `usage_hours`)
 *                   and stay only to show the last day at minute grain.
 * - `usage_hours`   settled minutes rolled into hours (the same columns, plus the busiest
 *                   minute's requests), kept for 90 days.
 * - `usage_days`    hours older than that, rolled into days, kept for good.
 * - `recharges`     purchases this account started and their outcome; at most one
 *                   auto-recharge in flight (`pending` or `requires_action`) at a time.
 * - `outbox`        queue messages and notices written with the recharge that needs them;
 *                   deleted once delivered, re-sent by the alarm otherwise.
 * - `revoked_keys`  keys refused on every debit.
 * - `paid_upgrades` upgrade invoices paid (`subscription_update`), by invoice id, with the end
 *                   of the cycle they are for: one that arrived before its cycle's own invoice
 *                   raises that cycle's grant when it starts (money rule 9).
 *
 * Replay (money rule 4): the sum of `ledger` less the gross debits of every aggregate row that
 * counts (minute rows from `compacted_until` on, every hour and day row) is the balance.
 */
import { PLANS } from "../../pricing";
import {
  DAY_SECONDS,
  DEFAULT_SPEND_LIMIT_CENTS,
  HOUR_SECONDS,
  minuteOf,
  RING_SLOTS,
} from "../domain/rules";

export const SCHEMA_VERSION = 7;

/** Brings the object's storage to SCHEMA_VERSION; safe on every start (one row read when current). */
export function ensureSchema(storage: DurableObjectStorage, nowMs: number): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = sql
    .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
    .toArray()[0];
  const version = row ? Number(row.value) : 0;
  if (version >= SCHEMA_VERSION) return;
  storage.transactionSync(() => {
    if (version < 2) createTablesV2(sql);
    if (version < 3) migrateToV3(sql);
    if (version < 4) migrateToV4(sql, nowMs);
    if (version < 5) migrateToV5(sql);
    if (version < 6) migrateToV6(sql);
    if (version < 7) migrateToV7(sql);
    sql.exec(
      "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      String(SCHEMA_VERSION),
    );
  });
}

/** The tables as schema version 2 had them; later versions alter them in place. */
function createTablesV2(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS state (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      account_id TEXT NOT NULL,
      plan TEXT NOT NULL,
      monthly INTEGER NOT NULL CHECK (monthly >= 0),
      purchased INTEGER NOT NULL CHECK (purchased >= 0),
      cycle_started_at INTEGER NOT NULL,
      cycle_ends_at INTEGER NOT NULL,
      stripe_cycles INTEGER NOT NULL DEFAULT 0,
      plan_version INTEGER NOT NULL DEFAULT 0,
      auto_enabled INTEGER NOT NULL DEFAULT 0,
      auto_package TEXT,
      has_payment_method INTEGER NOT NULL DEFAULT 0,
      last_failure_at INTEGER,
      last_failure_code TEXT,
      last_failure_message TEXT
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS ledger (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      ref TEXT NOT NULL UNIQUE,
      kind TEXT NOT NULL,
      monthly_delta INTEGER NOT NULL,
      purchased_delta INTEGER NOT NULL,
      at INTEGER NOT NULL,
      note TEXT
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS recharges (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      package TEXT NOT NULL,
      credits INTEGER NOT NULL,
      amount_cents INTEGER NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      settled_at INTEGER,
      failure_code TEXT
    )`);
  sql.exec(
    "CREATE INDEX IF NOT EXISTS recharges_pending ON recharges (kind, status) WHERE status = 'pending'",
  );
  sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      id TEXT PRIMARY KEY,
      body TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS usage (
      minute INTEGER PRIMARY KEY,
      requests INTEGER NOT NULL,
      credits INTEGER NOT NULL,
      dirty INTEGER NOT NULL DEFAULT 1
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS revoked_keys (
      key_id TEXT PRIMARY KEY,
      revoked_at INTEGER NOT NULL
    )`);
}

/**
 * v3: the card a recharge pays with, the spending limit, the rate limit override, the pause,
 * and the largest allowance granted this cycle. Existing accounts get the default limit, and
 * their cycle's bound is their plan's allowance.
 */
function migrateToV3(sql: SqlStorage): void {
  sql.exec("ALTER TABLE state ADD COLUMN payment_method_id TEXT");
  sql.exec(
    `ALTER TABLE state ADD COLUMN spend_limit_cents INTEGER DEFAULT ${DEFAULT_SPEND_LIMIT_CENTS}`,
  );
  sql.exec("ALTER TABLE state ADD COLUMN rate_limit_override INTEGER");
  sql.exec("ALTER TABLE state ADD COLUMN paused_period INTEGER");
  sql.exec("ALTER TABLE state ADD COLUMN cycle_max_monthly INTEGER NOT NULL DEFAULT 0");
  for (const plan of Object.values(PLANS)) {
    sql.exec("UPDATE state SET cycle_max_monthly = ? WHERE plan = ?", plan.monthlyCredits, plan.id);
  }
  sql.exec("ALTER TABLE recharges ADD COLUMN payment_method TEXT");
  sql.exec("ALTER TABLE state ADD COLUMN last_failure_action_url TEXT");
  sql.exec("ALTER TABLE state ADD COLUMN last_failure_recharge_id TEXT");
}

const AGGREGATE_COLUMNS = `requests INTEGER NOT NULL DEFAULT 0,
      credits INTEGER NOT NULL DEFAULT 0,
      debit_monthly INTEGER NOT NULL DEFAULT 0,
      debit_purchased INTEGER NOT NULL DEFAULT 0,
      refunded_monthly INTEGER NOT NULL DEFAULT 0,
      refunded_purchased INTEGER NOT NULL DEFAULT 0`;

/**
 * v4: request debits as per-minute aggregates, usage kept in the object (minute, hour, day).
 * Nothing is lost: v3's state row becomes the settled balance as is (no debit is open yet),
 * its per-request debit rows stay ledger entries (replayed and refundable as before), its
 * usage minutes (the last day; older ones were flushed to D1) move into the ring and the
 * hours, and the usage before them is rebuilt from those debit rows (their refunds excluded).
 * Settling starts at the next minute, so every migrated minute counts as settled.
 */
function migrateToV4(sql: SqlStorage, nowMs: number): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS debit_minutes (
      slot INTEGER PRIMARY KEY CHECK (slot >= 0 AND slot < ${RING_SLOTS}),
      minute INTEGER NOT NULL,
      ${AGGREGATE_COLUMNS}
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS usage_hours (
      hour INTEGER PRIMARY KEY,
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0
    )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS usage_days (
      day INTEGER PRIMARY KEY,
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0
    )`);
  const settledFrom = minuteOf(nowMs) + 60;
  sql.exec("ALTER TABLE state ADD COLUMN compacted_until INTEGER NOT NULL DEFAULT 0");
  sql.exec("UPDATE state SET compacted_until = ?", settledFrom);

  const first = sql.exec<{ m: number | null }>("SELECT MIN(minute) AS m FROM usage").one().m;
  const before = first ?? settledFrom;
  // Usage older than the v3 minutes, from the debit rows themselves (a refunded one was not served).
  sql.exec(
    `INSERT INTO usage_hours (hour, requests, credits, peak)
     SELECT (d.at / ${HOUR_SECONDS * 1000}) * ${HOUR_SECONDS}, COUNT(*),
            -SUM(d.monthly_delta + d.purchased_delta), 0
       FROM ledger d LEFT JOIN ledger r ON r.ref = 'refund:' || d.ref
      WHERE d.kind = 'debit' AND r.seq IS NULL AND d.at < ?
      GROUP BY 1`,
    before * 1000,
  );
  sql.exec(
    `INSERT INTO usage_hours (hour, requests, credits, peak)
     SELECT (minute / ${HOUR_SECONDS}) * ${HOUR_SECONDS}, SUM(requests), SUM(credits), MAX(requests)
       FROM usage WHERE minute >= 0 GROUP BY 1
     ON CONFLICT(hour) DO UPDATE SET requests = requests + excluded.requests,
       credits = credits + excluded.credits, peak = MAX(peak, excluded.peak)`,
  );
  sql.exec(
    `INSERT INTO debit_minutes (slot, minute, requests, credits)
     SELECT (minute / 60) % ${RING_SLOTS}, minute, requests, credits FROM usage WHERE minute > ?
     ON CONFLICT(slot) DO NOTHING`,
    settledFrom - DAY_SECONDS,
  );
  sql.exec("DROP TABLE usage");
}

/**
 * v5: the low-balance alert. `low_balance_credits` is the customer's level (null: no alert);
 * `low_balance_armed` is 1 while the total has been above the level since the last email, so
 * one fall to the level emails once. Existing accounts have no level, hence nothing armed.
 */
function migrateToV5(sql: SqlStorage): void {
  sql.exec("ALTER TABLE state ADD COLUMN low_balance_credits INTEGER");
  sql.exec("ALTER TABLE state ADD COLUMN low_balance_armed INTEGER NOT NULL DEFAULT 0");
}

/**
 * v6: the index of the auto-recharge in flight, pending or waiting for the customer
 * (`hasPendingAutoRecharge` repeats its WHERE exactly, so the lookup stays one indexed read).
 */
function migrateToV6(sql: SqlStorage): void {
  sql.exec(
    "CREATE INDEX IF NOT EXISTS recharges_in_flight ON recharges (kind) WHERE status IN ('pending', 'requires_action')",
  );
}

/** v7: paid upgrades, so one paid before its cycle's invoice arrived still counts for it. */
function migrateToV7(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS paid_upgrades (
      invoice_id TEXT PRIMARY KEY,
      cycle_ends_at INTEGER NOT NULL,
      plan TEXT NOT NULL,
      allowance INTEGER NOT NULL,
      at INTEGER NOT NULL
    )`);
  sql.exec("CREATE INDEX IF NOT EXISTS paid_upgrades_cycle ON paid_upgrades (cycle_ends_at)");
}
