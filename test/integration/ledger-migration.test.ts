/**
 * An account's Durable Object written by the previous schema (v3: one ledger row per debit,
 * the balance in the state row, per-minute usage flushed to D1) migrates in place on first
 * use and loses nothing: balances, ledger replay, recharges, outbox, revoked keys, usage.
 *
 * The v3 tables below are copied from `src/ledger/account-ledger.ts` at commit 50952f5 (main
 * when ledger v4 started): `createTablesV2()` and the v3 block of `ensureSchema()`.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import { addOneMonth, minuteOf } from "../../src/ledger/domain/rules";

const V3_SCHEMA = [
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
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
        auto_enabled INTEGER NOT NULL DEFAULT 0,
        auto_package TEXT,
        has_payment_method INTEGER NOT NULL DEFAULT 0,
        last_failure_at INTEGER,
        last_failure_code TEXT,
        last_failure_message TEXT
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
  `CREATE TABLE IF NOT EXISTS recharges (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        package TEXT NOT NULL,
        credits INTEGER NOT NULL,
        amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        settled_at INTEGER,
        failure_code TEXT
      )`,
  "CREATE INDEX IF NOT EXISTS recharges_pending ON recharges (kind, status) WHERE status = 'pending'",
  `CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      )`,
  `CREATE TABLE IF NOT EXISTS usage (
        minute INTEGER PRIMARY KEY,
        requests INTEGER NOT NULL,
        credits INTEGER NOT NULL,
        dirty INTEGER NOT NULL DEFAULT 1
      )`,
  `CREATE TABLE IF NOT EXISTS revoked_keys (
        key_id TEXT PRIMARY KEY,
        revoked_at INTEGER NOT NULL
      )`,
  // v3, in place:
  "ALTER TABLE state ADD COLUMN payment_method_id TEXT",
  "ALTER TABLE state ADD COLUMN spend_limit_cents INTEGER DEFAULT 20000",
  "ALTER TABLE state ADD COLUMN rate_limit_override INTEGER",
  "ALTER TABLE state ADD COLUMN paused_period INTEGER",
  "ALTER TABLE state ADD COLUMN cycle_max_monthly INTEGER NOT NULL DEFAULT 0",
  "ALTER TABLE recharges ADD COLUMN payment_method TEXT",
  "ALTER TABLE state ADD COLUMN last_failure_action_url TEXT",
  "ALTER TABLE state ADD COLUMN last_failure_recharge_id TEXT",
];

const DAY = 86_400_000;
const now = Date.now();

/** What a v3 object held: every row written with v3's own statements. */
function writeV3(sql: SqlStorage, accountId: string) {
  for (const statement of V3_SCHEMA) sql.exec(statement);
  sql.exec("INSERT INTO meta (key, value) VALUES ('schema_version', '3')");
  const cycleStart = now - 10 * DAY;
  sql.exec(
    `INSERT INTO state (id, account_id, plan, monthly, purchased, cycle_started_at, cycle_ends_at,
       stripe_cycles, plan_version, auto_enabled, auto_package, has_payment_method,
       payment_method_id, spend_limit_cents, cycle_max_monthly)
     VALUES (1, ?, 'starter', 2992, 1050, ?, ?, 1, 5, 1, 'credits_1000', 1, 'pm_card_visa', 20000, 3000)`,
    accountId,
    cycleStart,
    addOneMonth(cycleStart),
  );
  const entries: Array<[string, string, number, number, number, string | null]> = [
    [`cycle:${accountId}:initial`, "cycle_grant", 3000, 0, cycleStart, "initial monthly credits"],
    ["rch_old", "purchase", 0, 1000, now - 9 * DAY, "top_up credits_1000"],
    ["dbt_old1", "debit", -3, 0, now - 8 * DAY, null],
    ["dbt_old2", "debit", -2, 0, now - 8 * DAY + 1_000, null],
    ["refund:dbt_old2", "refund", 2, 0, now - 8 * DAY + 2_000, null],
    ["dbt_recent1", "debit", -1, 0, now - 2 * 3_600_000, null],
    ["adj_1", "adjustment", 0, 50, now - 3_600_000, "goodwill"],
    ["dbt_recent2", "debit", -4, 0, now - 30 * 60_000, null],
  ];
  for (const [ref, kind, m, p, at, note] of entries) {
    sql.exec(
      "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at, note) VALUES (?, ?, ?, ?, ?, ?)",
      ref,
      kind,
      m,
      p,
      at,
      note,
    );
  }
  sql.exec(
    "INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at, settled_at, payment_method) VALUES ('rch_old', 'top_up', 'credits_1000', 1000, 700, 'succeeded', ?, ?, 'pm_card_visa')",
    now - 9 * DAY,
    now - 9 * DAY,
  );
  sql.exec(
    "INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at, payment_method) VALUES ('rch_pending', 'auto_recharge', 'credits_1000', 1000, 700, 'pending', ?, 'pm_card_visa')",
    now - 5 * 60_000,
  );
  // A v3 outbox row: a bare recharge job.
  const job = {
    kind: "auto_recharge",
    recharge_id: "rch_pending",
    account_id: accountId,
    package: "credits_1000",
    credits: 1000,
    amount_cents: 700,
    currency: "usd",
    created_at: new Date(now - 5 * 60_000).toISOString(),
    payment_method: "pm_card_visa",
  };
  sql.exec(
    "INSERT INTO outbox (id, body, attempts, created_at) VALUES ('rch_pending', ?, 2, ?)",
    JSON.stringify(job),
    now - 5 * 60_000,
  );
  // v3 kept the last day of minutes (older ones were flushed to D1 and deleted).
  sql.exec(
    "INSERT INTO usage (minute, requests, credits, dirty) VALUES (?, 1, 1, 0), (?, 1, 4, 1)",
    minuteOf(now - 2 * 3_600_000),
    minuteOf(now - 30 * 60_000),
  );
  sql.exec("INSERT INTO revoked_keys (key_id, revoked_at) VALUES ('key_gone', ?)", now - DAY);
  return JSON.stringify(job);
}

/** Replaces the object's storage with a v3 object's, then restarts it so v4 opens it fresh. */
async function v3Object() {
  const accountId = `acct_${crypto.randomUUID()}`;
  let jobBody = "";
  await runInDurableObject(ledgerFor(env, accountId), (_i, state) => {
    const sql = state.storage.sql;
    state.storage.transactionSync(() => {
      const tables = sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
        )
        .toArray();
      for (const t of tables) sql.exec(`DROP TABLE "${t.name}"`);
      jobBody = writeV3(sql, accountId);
    });
  });
  await runInDurableObject(ledgerFor(env, accountId), (_i, state) => state.abort("upgrade")).catch(
    () => {},
  );
  return { accountId, jobBody, ledger: ledgerFor(env, accountId) };
}

describe("a v3 Durable Object migrates in place on first use", () => {
  it("keeps balances, replay, recharges, outbox, revoked keys and usage", async () => {
    const { accountId, jobBody, ledger } = await v3Object();
    expect(await ledger.balance()).toEqual({ monthly: 2992, purchased: 1050, total: 4042 });
    expect(await ledger.audit()).toMatchObject({
      consistent: true,
      ledger_total: 4042,
      entries: 8,
      stored_monthly: 2992,
      stored_purchased: 1050,
    });
    const snapshot = await ledger.snapshot();
    expect(snapshot).toMatchObject({
      account_id: accountId,
      plan: "starter",
      has_payment_method: true,
      auto_recharge: { enabled: true, package: "credits_1000", pending: true },
      limits: { monthly_spend_limit_cents: 20_000 },
      alerts: { low_balance_credits: null },
    });
    expect(await ledger.recharge("rch_old")).toMatchObject({ status: "succeeded", credits: 1000 });
    expect((await ledger.pendingRecharges()).map((r) => r.id)).toEqual(["rch_pending"]);
    const stored = await runInDurableObject(ledger, (_i, state) => ({
      outbox: state.storage.sql.exec("SELECT id, body, attempts FROM outbox").toArray(),
      version: state.storage.sql
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
        .one().value,
      oldUsage: state.storage.sql
        .exec("SELECT name FROM sqlite_master WHERE name = 'usage'")
        .toArray().length,
    }));
    expect(stored).toEqual({
      outbox: [{ id: "rch_pending", body: jobBody, attempts: 2 }],
      version: "7",
      oldUsage: 0,
    });
    // Revoked keys are still refused.
    expect(await ledger.debit(1, "dbt_new0", "key_gone")).toMatchObject({
      ok: false,
      reason: "key_revoked",
    });
    // Usage: the last day's minutes, and the days before rebuilt from the debit rows
    // (dbt_old1; dbt_old2 was refunded, so it was never served).
    const rows = await ledger.usage(
      Math.floor((now - 30 * DAY) / 1000),
      Math.ceil(now / 1000) + 60,
    );
    expect(rows.reduce((n, r) => n + r.requests, 0)).toBe(3);
    expect(rows.reduce((n, r) => n + r.credits, 0)).toBe(8);

    // A v3 debit is refunded by its ref alone (a v3 refund message), exactly once.
    const refund = await ledger.refund("dbt_recent1");
    expect(refund).toMatchObject({ ok: true, refunded: true, balance: { monthly: 2993 } });
    expect(await ledger.refund("dbt_recent1")).toMatchObject({ ok: true, refunded: false });
    // …and it leaves the usage it was counted in.
    const after = await ledger.usage(
      Math.floor((now - 30 * DAY) / 1000),
      Math.ceil(now / 1000) + 60,
    );
    expect(after.reduce((n, r) => n + r.requests, 0)).toBe(2);
    expect(after.reduce((n, r) => n + r.credits, 0)).toBe(7);
    // A v4 debit after it, and its refund.
    const d = await ledger.debit(5, "dbt_new1");
    if (!d.ok) throw new Error("debit refused");
    expect(d.balance).toEqual({ monthly: 2988, purchased: 1050, total: 4038 });
    expect(await ledger.refund("dbt_new1", { minute: d.minute, ...d.charged })).toMatchObject({
      ok: true,
      refunded: true,
      balance: { monthly: 2993, purchased: 1050 },
    });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 4043 });
  });

  it("folds v3 debit rows older than a week into hours in the alarm, replay unchanged", async () => {
    const { ledger } = await v3Object();
    const result = await runInDurableObject(ledger, async (raw) => {
      const instance = raw as unknown as AccountLedger & { alarm(): Promise<void> };
      // The outbox's job is not this test's subject: keep it from reaching the queue.
      const queue = (instance as unknown as { env: Cloudflare.Env }).env.RECHARGE_QUEUE;
      vi.spyOn(queue, "send").mockRejectedValue(new Error("not in this test"));
      const before = instance.audit();
      await instance.alarm();
      const debitRows = (instance as unknown as { sql: SqlStorage }).sql
        .exec<{ ref: string }>("SELECT ref FROM ledger WHERE kind = 'debit' ORDER BY seq")
        .toArray()
        .map((r) => r.ref);
      return { before, after: instance.audit(), debitRows, balance: instance.balance() };
    });
    expect(result.debitRows).toEqual(["dbt_recent1", "dbt_recent2"]);
    expect(result.after).toMatchObject({
      consistent: true,
      ledger_total: result.before.ledger_total,
      entries: result.before.entries - 2,
    });
    expect(result.balance).toEqual({ monthly: 2992, purchased: 1050, total: 4042 });
    vi.restoreAllMocks();
  });
});

describe("a v4 Durable Object migrates to v5 (the low-balance alert)", () => {
  it("gains the alert's columns with no alert set, and keeps its balance", async () => {
    const accountId = `acct_${crypto.randomUUID()}`;
    const ledger = ledgerFor(env, accountId);
    await ledger.init({ accountId, plan: "free" });
    const d = await ledger.debit(7, "dbt_v4");
    expect(d.ok).toBe(true);
    // Back to what v4 stored: no alert columns, schema version 4.
    await runInDurableObject(ledger, (_i, state) => {
      const sql = state.storage.sql;
      state.storage.transactionSync(() => {
        sql.exec("ALTER TABLE state DROP COLUMN low_balance_credits");
        sql.exec("ALTER TABLE state DROP COLUMN low_balance_armed");
        sql.exec("UPDATE meta SET value = '4' WHERE key = 'schema_version'");
      });
    });
    await runInDurableObject(ledger, (_i, state) => state.abort("upgrade")).catch(() => {});
    const reopened = ledgerFor(env, accountId);
    expect(await reopened.balance()).toEqual({ monthly: 493, purchased: 0, total: 493 });
    expect((await reopened.snapshot())?.alerts).toEqual({ low_balance_credits: null });
    const stored = await runInDurableObject(reopened, (_i, state) => ({
      version: state.storage.sql
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
        .one().value,
      state: state.storage.sql
        .exec("SELECT low_balance_credits, low_balance_armed FROM state")
        .one(),
    }));
    expect(stored).toEqual({
      version: "7",
      state: { low_balance_credits: null, low_balance_armed: 0 },
    });
    // The alert works on the migrated object: set above the balance, armed at once.
    expect(await reopened.setAlerts({ lowBalanceCredits: 100 })).toEqual({
      ok: true,
      alerts: { low_balance_credits: 100 },
    });
    expect(await reopened.audit()).toMatchObject({ consistent: true, ledger_total: 493 });
  });
});
