/**
 * The account ledger's SQLite schema, made synchronously in the constructor and gated by
 * `meta.schema_version` (cloudflare/agents `_ensureSchema`): an object at the current version
 * reads one row and runs nothing; any other runs the statements of every version above its own
 * in one transaction, so it is at one version or the next, never between.
 *
 * Tables (schema version 10; 8 added the state row's `suspended_at`, `suspension_reason` and
 * `balance_version`; 9 keyed the aggregates by (period, key_id) and added `key_last_used`; 10
 * made the minute ring one row per account-minute again, the keys' sums inside it):
 * - `meta`          `schema_version`.
 * - `state`         one row: account id, plan, settings (the low-balance alert's level and
 *                   whether it is armed among them; an operator's suspension), and the *settled* buckets (CHECK >= 0):
 *                   every entry plus every debit minute before `compacted_until`. The live
 *                   balance is the settled buckets less the debit minutes not settled yet; it is
 *                   held in memory and this row is not written by a request's debit.
 * - `ledger`        entries with a unique `ref`: cycle grants, plan changes (no credits), paid
 *                   upgrades (invoice id), purchases, adjustments, refunds (`refund:<debit>`),
 *                   debits declared never committed (`void:<debit>`, no delta). Signed deltas
 *                   per bucket. No request debit.
 * - `debit_minutes` request debits aggregated per account-minute, a ring of 1,440 slots (slot =
 *                   minute of the day): count, net credits, gross per-bucket debits, refunded
 *                   per bucket, and the same six per named key in the JSON column `keys` (the
 *                   debits of no key are the remainder, key ""; domain/minute-row.ts). A write
 *                   of a group commit's debits is one UPSERT of the row (1 read, 1 written).
 *                   Rows before `compacted_until` are settled (also counted in `usage_hours`)
 *                   and stay only to show the last day at minute grain.
 * - `usage_hours`   settled minutes rolled into hours per key (the same columns, plus the
 *                   account's busiest minute's requests: MAX over the hour's key rows), kept
 *                   for 90 days.
 * - `usage_days`    hours older than that, rolled into days per key, kept for good.
 * - `key_last_used` each key's last settled minute (the open minutes add the rest).
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
import { DEFAULT_SPEND_LIMIT_CENTS, RING_SLOTS } from "../domain/rules";

const AGGREGATE_COLUMNS = `requests INTEGER NOT NULL DEFAULT 0,
      credits INTEGER NOT NULL DEFAULT 0,
      debit_monthly INTEGER NOT NULL DEFAULT 0,
      debit_purchased INTEGER NOT NULL DEFAULT 0,
      refunded_monthly INTEGER NOT NULL DEFAULT 0,
      refunded_purchased INTEGER NOT NULL DEFAULT 0`;

/** The tables as the current design has them (the header above says what each holds). */
const CREATE_TABLES: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS state (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      account_id TEXT NOT NULL,
      plan TEXT NOT NULL,
      monthly INTEGER NOT NULL CHECK (monthly >= 0),
      purchased INTEGER NOT NULL CHECK (purchased >= 0),
      cycle_started_at INTEGER NOT NULL,
      cycle_ends_at INTEGER NOT NULL,
      stripe_cycles INTEGER NOT NULL DEFAULT 0,
      plan_version INTEGER NOT NULL DEFAULT 0,
      cycle_max_monthly INTEGER NOT NULL DEFAULT 0,
      compacted_until INTEGER NOT NULL DEFAULT 0,
      auto_enabled INTEGER NOT NULL DEFAULT 0,
      auto_package TEXT,
      has_payment_method INTEGER NOT NULL DEFAULT 0,
      payment_method_id TEXT,
      spend_limit_cents INTEGER DEFAULT ${DEFAULT_SPEND_LIMIT_CENTS},
      rate_limit_override INTEGER,
      paused_period INTEGER,
      low_balance_credits INTEGER,
      low_balance_armed INTEGER NOT NULL DEFAULT 0,
      last_failure_at INTEGER,
      last_failure_code TEXT,
      last_failure_message TEXT,
      last_failure_action_url TEXT,
      last_failure_recharge_id TEXT
    )`,
  `CREATE TABLE IF NOT EXISTS ledger (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      ref TEXT NOT NULL UNIQUE,
      kind TEXT NOT NULL,
      monthly_delta INTEGER NOT NULL,
      purchased_delta INTEGER NOT NULL,
      at INTEGER NOT NULL,
      note TEXT
    )`,
  `CREATE TABLE IF NOT EXISTS debit_minutes (
      slot INTEGER PRIMARY KEY CHECK (slot >= 0 AND slot < ${RING_SLOTS}),
      minute INTEGER NOT NULL,
      ${AGGREGATE_COLUMNS}
    )`,
  `CREATE TABLE IF NOT EXISTS usage_hours (
      hour INTEGER PRIMARY KEY,
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0
    )`,
  `CREATE TABLE IF NOT EXISTS usage_days (
      day INTEGER PRIMARY KEY,
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0
    )`,
  `CREATE TABLE IF NOT EXISTS recharges (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      package TEXT NOT NULL,
      credits INTEGER NOT NULL,
      amount_cents INTEGER NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      settled_at INTEGER,
      failure_code TEXT,
      payment_method TEXT
    )`,
  "CREATE INDEX IF NOT EXISTS recharges_pending ON recharges (kind, status) WHERE status = 'pending'",
  // `hasPendingAutoRecharge` repeats this WHERE exactly, so its lookup stays one indexed read.
  "CREATE INDEX IF NOT EXISTS recharges_in_flight ON recharges (kind) WHERE status IN ('pending', 'requires_action')",
  `CREATE TABLE IF NOT EXISTS outbox (
      id TEXT PRIMARY KEY,
      body TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL
    )`,
  `CREATE TABLE IF NOT EXISTS revoked_keys (
      key_id TEXT PRIMARY KEY,
      revoked_at INTEGER NOT NULL
    )`,
  `CREATE TABLE IF NOT EXISTS paid_upgrades (
      invoice_id TEXT PRIMARY KEY,
      cycle_ends_at INTEGER NOT NULL,
      plan TEXT NOT NULL,
      allowance INTEGER NOT NULL,
      at INTEGER NOT NULL
    )`,
  "CREATE INDEX IF NOT EXISTS paid_upgrades_cycle ON paid_upgrades (cycle_ends_at)",
];

/**
 * 9: the aggregates per key. Each table is rebuilt keyed by (period, key_id) WITHOUT ROWID (the
 * primary key is the row: a debit's UPSERT still reads one row and writes one), its rows kept
 * under key_id "" (debits from before, whose key no row recorded). `key_last_used` holds each
 * key's last settled minute (written by the checkpoint, never by a debit).
 */
const PER_KEY_AGGREGATES: readonly string[] = [
  ...(
    [
      [
        "debit_minutes",
        "slot",
        `slot INTEGER NOT NULL CHECK (slot >= 0 AND slot < ${RING_SLOTS}),
      key_id TEXT NOT NULL DEFAULT '',
      minute INTEGER NOT NULL,
      ${AGGREGATE_COLUMNS}`,
        "slot, minute",
      ],
      [
        "usage_hours",
        "hour",
        `hour INTEGER NOT NULL,
      key_id TEXT NOT NULL DEFAULT '',
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0`,
        "hour",
      ],
      [
        "usage_days",
        "day",
        `day INTEGER NOT NULL,
      key_id TEXT NOT NULL DEFAULT '',
      ${AGGREGATE_COLUMNS},
      peak INTEGER NOT NULL DEFAULT 0`,
        "day",
      ],
    ] as const
  ).flatMap(([table, period, columns, kept]) => [
    `CREATE TABLE ${table}_v9 (${columns}, PRIMARY KEY (${period}, key_id)) WITHOUT ROWID`,
    `INSERT INTO ${table}_v9 (${kept}, requests, credits, debit_monthly, debit_purchased,
       refunded_monthly, refunded_purchased${table === "debit_minutes" ? "" : ", peak"})
     SELECT ${kept}, requests, credits, debit_monthly, debit_purchased, refunded_monthly,
       refunded_purchased${table === "debit_minutes" ? "" : ", peak"} FROM ${table}`,
    `DROP TABLE ${table}`,
    `ALTER TABLE ${table}_v9 RENAME TO ${table}`,
  ]),
  "CREATE TABLE key_last_used (key_id TEXT PRIMARY KEY, minute INTEGER NOT NULL) WITHOUT ROWID",
];

/**
 * 10: one row per account-minute (group commit: a write of many debits of many keys is one
 * row). The ring is rebuilt keyed by slot alone; each slot keeps the newest minute it holds (an
 * older one there is a day older, settled and no longer shown), its key rows summed into the
 * columns and, for the named keys, into `keys` (`{"key":[requests, credits, debit_monthly,
 * debit_purchased, refunded_monthly, refunded_purchased]}`); key "" rows stay the remainder.
 */
const MINUTE_ROWS: readonly string[] = [
  // WITHOUT ROWID as in 9: SQLite's cursor then counts the UPSERT as 1 row written, 0 read.
  `CREATE TABLE debit_minutes_v10 (
      slot INTEGER NOT NULL CHECK (slot >= 0 AND slot < ${RING_SLOTS}),
      minute INTEGER NOT NULL,
      ${AGGREGATE_COLUMNS},
      keys TEXT NOT NULL DEFAULT '{}',
      PRIMARY KEY (slot)
    ) WITHOUT ROWID`,
  `INSERT INTO debit_minutes_v10 (slot, minute, requests, credits, debit_monthly, debit_purchased,
     refunded_monthly, refunded_purchased, keys)
   SELECT slot, minute, SUM(requests), SUM(credits), SUM(debit_monthly), SUM(debit_purchased),
     SUM(refunded_monthly), SUM(refunded_purchased),
     IFNULL(json_group_object(key_id, json_array(requests, credits, debit_monthly,
       debit_purchased, refunded_monthly, refunded_purchased)) FILTER (WHERE key_id != ''), '{}')
   FROM debit_minutes d
   WHERE minute = (SELECT MAX(minute) FROM debit_minutes n WHERE n.slot = d.slot)
   GROUP BY slot, minute`,
  "DROP TABLE debit_minutes",
  "ALTER TABLE debit_minutes_v10 RENAME TO debit_minutes",
];

/** The statements that take an object from the version before to `version`. */
export interface SchemaVersion {
  version: number;
  statements: readonly string[];
}

/**
 * Every version, oldest first. 7 is the first this code opens and creates the design whole
 * (6 and before were never deployed; storage from them, local state only, is refused). The
 * next change to the tables is `{ version: 8, statements: ["ALTER TABLE …"] }` appended here,
 * with the header's table list updated: existing objects run it on their next start, new ones
 * run 7 then 8, so both end with the same tables. 8 is that: the suspension columns.
 */
export const SCHEMA_VERSIONS: readonly SchemaVersion[] = [
  { version: 7, statements: CREATE_TABLES },
  {
    // An operator's suspension, read by the debit from the row it already holds in memory, and
    // the version of the balance projected to D1 for the operators' overview.
    version: 8,
    statements: [
      "ALTER TABLE state ADD COLUMN suspended_at INTEGER",
      "ALTER TABLE state ADD COLUMN suspension_reason TEXT",
      // The balance projection's counter (projections.ts): D1 keeps the highest it was sent.
      "ALTER TABLE state ADD COLUMN balance_version INTEGER NOT NULL DEFAULT 0",
    ],
  },
  { version: 9, statements: PER_KEY_AGGREGATES },
  { version: 10, statements: MINUTE_ROWS },
];

/** The version `ensureSchema` brings every object to: the last of `SCHEMA_VERSIONS`. */
export const SCHEMA_VERSION = (SCHEMA_VERSIONS.at(-1) as SchemaVersion).version;

/**
 * Brings the object's storage to the last of `versions` (by default the code's); safe on every
 * start: an object already there reads one row. Throws for storage it cannot know: written by
 * newer code, or by a design older than the first version (no such object was ever deployed).
 */
export function ensureSchema(
  storage: DurableObjectStorage,
  versions: readonly SchemaVersion[] = SCHEMA_VERSIONS,
): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = sql
    .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
    .toArray()[0];
  const stored = row ? Number(row.value) : 0;
  const first = versions[0]?.version ?? 0;
  const target = versions.at(-1)?.version ?? 0;
  if (stored === target) return;
  if (stored > target || (stored !== 0 && stored < first)) {
    // Local state from before (wrangler dev's .wrangler/state) is deleted, not migrated.
    throw new Error(
      `account ledger storage is at schema version ${stored}; this code opens ${first} to ${target}`,
    );
  }
  storage.transactionSync(() => {
    for (const v of versions) {
      if (v.version <= stored) continue;
      for (const statement of v.statements) sql.exec(statement);
    }
    sql.exec(
      "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      String(target),
    );
  });
}
