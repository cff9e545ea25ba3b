/**
 * The account ledger's storage across restarts and schema versions (src/ledger/schema.ts).
 *
 * An object whose storage was written under the current schema opens, after a restart, with
 * everything intact: balances, usage, replay, refunds of settled and open debits. Its tables
 * are made by `ensureSchema` itself (the current DDL, never a frozen copy), so this test follows
 * the schema as it changes: a version that breaks what earlier storage holds fails here.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import {
  addOneMonth,
  DAY_SECONDS,
  floorTo,
  HOUR_SECONDS,
  minuteOf,
} from "../../src/ledger/domain/rules";
import { ensureSchema, SCHEMA_VERSION, SCHEMA_VERSIONS } from "../../src/ledger/store/schema";

const DAY = DAY_SECONDS * 1000;

function schemaVersion(sql: SqlStorage): string {
  return sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").one()
    .value;
}

function dropAllTables(sql: SqlStorage): void {
  const tables = sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    )
    .toArray();
  for (const t of tables) sql.exec(`DROP TABLE "${t.name}"`);
}

/**
 * What the current code stores for an account some months old, row by row: entries, a day and
 * two hours already settled, one settled minute still shown at minute grain, two open minutes.
 */
function writeAccount(sql: SqlStorage, accountId: string, now: number) {
  const nowSec = Math.floor(now / 1000);
  const settledUntil = minuteOf(now) - 120;
  const day = floorTo(nowSec - 100 * DAY_SECONDS, DAY_SECONDS);
  const oldHour = floorTo(nowSec - 2 * DAY_SECONDS, HOUR_SECONDS);
  const hour = floorTo(nowSec - 3 * HOUR_SECONDS, HOUR_SECONDS);
  const settledMinute = hour + 60;
  const cycleStart = now - 10 * DAY;
  // Entries: monthly 3000 + 2, purchased 1000 + 50. Settled gross debits: monthly 30 (day) + 10
  // (hour), purchased 6 (old hour); the settled buckets are the entries less those.
  sql.exec(
    `INSERT INTO state (id, account_id, plan, monthly, purchased, cycle_started_at, cycle_ends_at,
       stripe_cycles, plan_version, cycle_max_monthly, compacted_until, auto_enabled, auto_package,
       has_payment_method, payment_method_id, spend_limit_cents, low_balance_credits)
     VALUES (1, ?, 'starter', 2962, 1044, ?, ?, 1, 5, 3000, ?, 1, 'credits_1000', 1,
       'pm_card_visa', 20000, 100)`,
    accountId,
    cycleStart,
    addOneMonth(cycleStart),
    settledUntil,
  );
  const entries: Array<[string, string, number, number, string | null]> = [
    [`cycle:${accountId}:initial`, "cycle_grant", 3000, 0, "initial monthly credits starter"],
    ["rch_1", "purchase", 0, 1000, "top_up credits_1000"],
    ["adj_1", "adjustment", 0, 50, "goodwill"],
    ["refund:dbt_settled", "refund", 2, 0, null],
    ["void:dbt_lost", "void", 0, 0, "debit never committed; reply lost"],
  ];
  for (const [ref, kind, m, p, note] of entries) {
    sql.exec(
      "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at, note) VALUES (?, ?, ?, ?, ?, ?)",
      ref,
      kind,
      m,
      p,
      cycleStart,
      note,
    );
  }
  sql.exec(
    `INSERT INTO usage_days (day, requests, credits, debit_monthly, peak) VALUES (?, 10, 30, 30, 3)`,
    day,
  );
  sql.exec(
    `INSERT INTO usage_hours (hour, requests, credits, debit_purchased, peak) VALUES (?, 2, 6, 6, 1)`,
    oldHour,
  );
  // Five debits of 2, one of them refunded (`refund:dbt_settled`).
  sql.exec(
    `INSERT INTO usage_hours (hour, requests, credits, debit_monthly, refunded_monthly, peak)
     VALUES (?, 4, 8, 10, 2, 4)`,
    hour,
  );
  const minute = (m: number, requests: number, debitMonthly: number, refunded: number) =>
    sql.exec(
      `INSERT INTO debit_minutes (slot, minute, requests, credits, debit_monthly, refunded_monthly)
       VALUES (?, ?, ?, ?, ?, ?)`,
      (m / 60) % 1440,
      m,
      requests,
      debitMonthly - refunded,
      debitMonthly,
      refunded,
    );
  minute(settledMinute, 4, 10, 2);
  minute(settledUntil, 3, 3, 0);
  minute(settledUntil + 60, 1, 5, 0);
  sql.exec(
    "INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at, settled_at, payment_method) VALUES ('rch_1', 'top_up', 'credits_1000', 1000, 700, 'succeeded', ?, ?, 'pm_card_visa')",
    cycleStart,
    cycleStart,
  );
  sql.exec("INSERT INTO revoked_keys (key_id, revoked_at) VALUES ('key_gone', ?)", now - DAY);
  // An upgrade paid for the next cycle, before that cycle's own invoice: nothing granted yet.
  sql.exec(
    "INSERT INTO paid_upgrades (invoice_id, cycle_ends_at, plan, allowance, at) VALUES ('in_up', ?, 'pro', 8000, ?)",
    addOneMonth(addOneMonth(cycleStart)),
    now - DAY,
  );
  return { settledMinute, settledUntil };
}

/**
 * A fresh object's storage replaced by `writeAccount`'s, under the current DDL (or under the
 * versions given, an older schema the restart then upgrades), then restarted.
 */
async function storedObject(versions = SCHEMA_VERSIONS) {
  const accountId = `acct_${crypto.randomUUID()}`;
  const now = Date.now();
  const written = await runInDurableObject(ledgerFor(env, accountId), (_i, state) => {
    const sql = state.storage.sql;
    dropAllTables(sql);
    ensureSchema(state.storage, versions);
    return state.storage.transactionSync(() => writeAccount(sql, accountId, now));
  });
  await runInDurableObject(ledgerFor(env, accountId), (_i, state) => state.abort("restart")).catch(
    () => {},
  );
  return { accountId, now, ...written, ledger: ledgerFor(env, accountId) };
}

const total = (rows: Array<{ requests: number; credits: number }>) => ({
  requests: rows.reduce((n, r) => n + r.requests, 0),
  credits: rows.reduce((n, r) => n + r.credits, 0),
});

describe("storage written under the current schema opens unchanged after a restart", () => {
  it("keeps balances, replay, usage, settings and revoked keys", async () => {
    const { accountId, now, ledger } = await storedObject();
    // Live: the settled buckets less the open minutes (monthly 3 + 5).
    expect(await ledger.balance()).toEqual({ monthly: 2954, purchased: 1044, total: 3998 });
    expect(await ledger.audit()).toMatchObject({
      consistent: true,
      ledger_total: 3998,
      entries: 5,
      // Two open minutes, two hours, one day; the settled minute counts in its hour.
      debit_aggregates: 5,
      stored_monthly: 2954,
      stored_purchased: 1044,
    });
    expect(await ledger.snapshot()).toMatchObject({
      accountId,
      plan: "starter",
      hasPaymentMethod: true,
      autoRecharge: { enabled: true, package: "credits_1000", pending: false },
      limits: { spendLimitCents: 20_000 },
      lowBalanceCredits: 100,
    });
    expect(await ledger.recharge("rch_1")).toMatchObject({ status: "succeeded", credits: 1000 });
    const version = await runInDurableObject(ledger, (_i, state) =>
      schemaVersion(state.storage.sql),
    );
    expect(version).toBe(String(SCHEMA_VERSION));
    // Usage: the day, the old hour, and the last day at minute grain (the recent hour's row is
    // not shown twice).
    const range = [Math.floor((now - 200 * DAY) / 1000), Math.ceil(now / 1000) + 60] as const;
    expect(total(await ledger.usage(...range))).toEqual({ requests: 20, credits: 52 });
    expect(await ledger.debit(1, "dbt_revoked", "key_gone")).toMatchObject({
      ok: false,
      reason: "key_revoked",
    });
  });

  it("refunds a settled debit and a new one, settles its open minutes, replay unchanged", async () => {
    const { now, settledMinute, ledger } = await storedObject();
    const range = [Math.floor((now - 200 * DAY) / 1000), Math.ceil(now / 1000) + 60] as const;
    // A debit settled into the hour three hours ago: back from that hour, once.
    const settled = { minute: settledMinute, monthly: 2, purchased: 0 };
    expect(await ledger.refund("dbt_old", settled)).toMatchObject({
      ok: true,
      refunded: true,
      balance: { monthly: 2956, purchased: 1044 },
    });
    expect(await ledger.refund("dbt_old", settled)).toMatchObject({ ok: true, refunded: false });
    const d = await ledger.debit(7, "dbt_new");
    if (!d.ok) throw new Error("debit refused");
    expect(d.balance).toEqual({ monthly: 2949, purchased: 1044, total: 3993 });
    expect(total(await ledger.usage(...range))).toEqual({ requests: 20, credits: 57 });
    const settledNow = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      // Nothing is due in the outbox; a send here would be a bug.
      vi.spyOn(env.RECHARGE_QUEUE, "send").mockRejectedValue(new Error("nothing to send"));
      await instance.alarm();
      return {
        audit: instance.audit(),
        open: state.storage.sql.exec<{ m: number }>("SELECT compacted_until AS m FROM state").one()
          .m,
      };
    });
    vi.restoreAllMocks();
    expect(settledNow.open).toBeGreaterThanOrEqual(minuteOf(now));
    expect(settledNow.audit).toMatchObject({
      consistent: true,
      ledger_total: 3993,
      monthly: 2949,
      purchased: 1044,
    });
    expect(await ledger.refund("dbt_new", { minute: d.minute, ...d.charged })).toMatchObject({
      ok: true,
      refunded: true,
      balance: { monthly: 2956, purchased: 1044 },
    });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 4000 });
  });
});

describe("schema 8 storage upgraded to per-key aggregates (9)", () => {
  it('keeps every sum under key "", refunds a charge that names no key, counts new debits per key', async () => {
    const before = SCHEMA_VERSIONS.filter((v) => v.version <= 8);
    const { now, settledMinute, ledger } = await storedObject(before);
    const range = [Math.floor((now - 200 * DAY) / 1000), Math.ceil(now / 1000) + 60] as const;
    expect(await ledger.balance()).toEqual({ monthly: 2954, purchased: 1044, total: 3998 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 3998 });
    expect(await runInDurableObject(ledger, (_i, state) => schemaVersion(state.storage.sql))).toBe(
      String(SCHEMA_VERSION),
    );
    const byKey = await ledger.usage(...range, { byKey: true });
    expect(new Set(byKey.map((r) => r.key_id))).toEqual(new Set([""]));
    expect(total(byKey)).toEqual({ requests: 20, credits: 52 });
    // A refund queued before the upgrade names no key: it comes out of the "" rows.
    expect(
      await ledger.refund("dbt_old", { minute: settledMinute, monthly: 2, purchased: 0 }),
    ).toMatchObject({ ok: true, refunded: true });
    const d = await ledger.debit(3, "dbt_keyed", "key_new");
    if (!d.ok) throw new Error("debit refused");
    const after = await ledger.usage(...range, { byKey: true });
    expect(total(after.filter((r) => r.key_id === "key_new"))).toEqual({ requests: 1, credits: 3 });
    expect(total(after.filter((r) => r.key_id === ""))).toEqual({ requests: 19, credits: 50 });
    expect(await ledger.keysLastUsed()).toEqual({ key_new: d.minute });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 3997 });
  });
});

describe("schema 9 storage (a minute row per key) upgraded to one row per account-minute (10)", () => {
  it("sums each slot's newest minute into one row with its keys inside; balances, usage by key, refunds and replay unchanged", async () => {
    const before = SCHEMA_VERSIONS.filter((v) => v.version <= 9);
    const accountId = `acct_${crypto.randomUUID()}`;
    const now = Date.now();
    const written = await runInDurableObject(ledgerFor(env, accountId), (_i, state) => {
      const sql = state.storage.sql;
      dropAllTables(sql);
      ensureSchema(state.storage, before);
      return state.storage.transactionSync(() => {
        const w = writeAccount(sql, accountId, now);
        const open = w.settledUntil + 60;
        const row = (key: string, minute: number, n: number, m: number, p: number) =>
          sql.exec(
            `INSERT INTO debit_minutes (slot, key_id, minute, requests, credits, debit_monthly,
               debit_purchased) VALUES (?, ?, ?, ?, ?, ?, ?)`,
            (minute / 60) % 1440,
            key,
            minute,
            n,
            m + p,
            m,
            p,
          );
        // The open minute's keys beside its "" row: key_a two debits of 3 monthly, key_b one
        // of 4 purchased; and a key's row a day older in another minute's slot (settled).
        row("key_a", open, 2, 6, 0);
        row("key_b", open, 1, 0, 4);
        row("key_old", w.settledUntil - DAY_SECONDS, 5, 5, 0);
        return { ...w, open };
      });
    });
    await runInDurableObject(ledgerFor(env, accountId), (_i, state) =>
      state.abort("restart"),
    ).catch(() => {});
    const ledger = ledgerFor(env, accountId);
    // Live: 2962 − 3 − (5 + 6) monthly, 1044 − 4 purchased; replay agrees.
    expect(await ledger.balance()).toEqual({ monthly: 2948, purchased: 1040, total: 3988 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 3988 });
    const minutes = await runInDurableObject(ledger, (_i, state) =>
      state.storage.sql
        .exec<{ minute: number; requests: number; keys: string }>(
          "SELECT minute, requests, keys FROM debit_minutes ORDER BY minute",
        )
        .toArray(),
    );
    // One row per minute; the day-old key row sharing a slot is gone (it was settled).
    expect(minutes).toEqual([
      { minute: written.settledMinute, requests: 4, keys: "{}" },
      { minute: written.settledUntil, requests: 3, keys: "{}" },
      { minute: written.open, requests: 4, keys: expect.any(String) },
    ]);
    expect(JSON.parse(minutes[2]?.keys ?? "")).toEqual({
      key_a: [2, 6, 6, 0, 0, 0],
      key_b: [1, 4, 0, 4, 0, 0],
    });
    const range = [Math.floor((now - 200 * DAY) / 1000), Math.ceil(now / 1000) + 60] as const;
    const byKey = await ledger.usage(...range, { byKey: true });
    expect(total(byKey.filter((r) => r.key_id === "key_a"))).toEqual({ requests: 2, credits: 6 });
    expect(total(byKey.filter((r) => r.key_id === "key_b"))).toEqual({ requests: 1, credits: 4 });
    expect(total(byKey.filter((r) => r.key_id === ""))).toEqual({ requests: 20, credits: 52 });
    expect(await ledger.keysLastUsed()).toEqual({ key_a: written.open, key_b: written.open });
    // A refund names its key: it comes out of that key's share of the row, once.
    const charge = { minute: written.open, monthly: 3, purchased: 0, key_id: "key_a" };
    expect(await ledger.refund("dbt_a", charge)).toMatchObject({ ok: true, refunded: true });
    expect(await ledger.refund("dbt_a", charge)).toMatchObject({ ok: true, refunded: false });
    // key_b took no monthly credit: nothing to give back, whatever the row's other keys hold.
    const forged = { minute: written.open, monthly: 1, purchased: 0, key_id: "key_b" };
    expect(await ledger.refund("dbt_b", forged)).toEqual({ ok: false, reason: "not_found" });
    // Settled into hours per key: the same sums.
    await runInDurableObject(ledger, async (raw) => {
      vi.spyOn(env.RECHARGE_QUEUE, "send").mockRejectedValue(new Error("nothing to send"));
      await (raw as AccountLedger).alarm();
    });
    vi.restoreAllMocks();
    const settled = await ledger.usage(...range, { byKey: true });
    expect(total(settled.filter((r) => r.key_id === "key_a"))).toEqual({ requests: 1, credits: 3 });
    expect(total(settled.filter((r) => r.key_id === "key_b"))).toEqual({ requests: 1, credits: 4 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 3991 });
  });
});

describe("schema versions", () => {
  it("an object runs each newer version's statements once; storage it cannot know is refused", async () => {
    const accountId = `acct_${crypto.randomUUID()}`;
    const ledger = ledgerFor(env, accountId);
    await ledger.init({ accountId, plan: "free" });
    const next = [
      ...SCHEMA_VERSIONS,
      {
        version: SCHEMA_VERSION + 1,
        statements: ["ALTER TABLE state ADD COLUMN probe INTEGER NOT NULL DEFAULT 7"],
      },
    ];
    const result = await runInDurableObject(ledger, (_i, state) => {
      const sql = state.storage.sql;
      const before = schemaVersion(sql);
      ensureSchema(state.storage, next);
      // A second start at that version runs nothing (the ALTER would fail if it ran again).
      ensureSchema(state.storage, next);
      const after = schemaVersion(sql);
      const probe = sql.exec<{ probe: number }>("SELECT probe FROM state").one().probe;
      // The code's versions stop one short of the storage's: newer code wrote it.
      let newer = "";
      try {
        ensureSchema(state.storage);
      } catch (err) {
        newer = String(err);
      }
      // Storage from before the first version (never deployed: local state) is not guessed at.
      sql.exec("UPDATE meta SET value = '6' WHERE key = 'schema_version'");
      let older = "";
      try {
        ensureSchema(state.storage);
      } catch (err) {
        older = String(err);
      }
      // Back to a version this code opens (the extra column is harmless), for whatever comes next.
      sql.exec("UPDATE meta SET value = ? WHERE key = 'schema_version'", String(SCHEMA_VERSION));
      return { before, after, probe, newer, older };
    });
    expect(result).toEqual({
      before: String(SCHEMA_VERSION),
      after: String(SCHEMA_VERSION + 1),
      probe: 7,
      newer: expect.stringContaining(`schema version ${SCHEMA_VERSION + 1}`),
      older: expect.stringContaining("schema version 6"),
    });
  });
});
