/**
 * What a debit costs in storage, measured inside workerd with the SQL cursors' own counters
 * (`rowsRead`, `rowsWritten`: what Cloudflare bills) and `databaseSize`: one row written and
 * at most one read per debit, and storage that grows with time, not with requests (money
 * rule 4, docs/money-rules.md).
 *
 * Only the object's public surface: its RPC methods (called on the instance inside
 * `runInDurableObject`, so ten thousand debits take seconds), its clock moved through its one
 * test seam (`testSetClock`) so a day of traffic runs in seconds, its checkpoints run by
 * `runDurableObjectAlarm` as the runtime would, and its statements counted on the runtime's
 * `SqlStorage` it was given (`state.storage.sql`, the same object).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";

const MINUTE = 60_000;
const MB = 1024 * 1024;

interface Meter {
  cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[];
  alarms: number;
  totals(): { read: number; written: number };
  reset(): void;
  /** Takes the counters off the storage again. */
  stop(): void;
}

/**
 * Counts every statement run on the object's storage: `state.storage.sql` is the very
 * `SqlStorage` the object runs its statements on, so an own `exec` on it sees each one.
 */
function meter(state: DurableObjectState): Meter {
  const sql = state.storage.sql;
  const exec = sql.exec.bind(sql);
  const setAlarm = state.storage.setAlarm.bind(state.storage);
  const m: Meter = {
    cursors: [],
    alarms: 0,
    totals() {
      let read = 0;
      let written = 0;
      for (const c of m.cursors) {
        read += c.rowsRead;
        written += c.rowsWritten;
      }
      return { read, written };
    },
    reset() {
      m.cursors = [];
      m.alarms = 0;
    },
    stop() {
      Reflect.deleteProperty(sql, "exec");
      Reflect.deleteProperty(state.storage, "setAlarm");
    },
  };
  sql.exec = ((query: string, ...bindings: SqlStorageValue[]) => {
    const cursor = exec(query, ...bindings);
    m.cursors.push(cursor);
    return cursor;
  }) as SqlStorage["exec"];
  state.storage.setAlarm = (...args: Parameters<typeof setAlarm>) => {
    m.alarms++;
    return setAlarm(...args);
  };
  return m;
}

async function funded(credits: number) {
  const accountId = `acct_${crypto.randomUUID()}`;
  const ledger = ledgerFor(env, accountId);
  await ledger.init({ accountId, plan: "free" });
  const r = await ledger.adjust({ ref: "fund", monthly: 0, purchased: credits, reason: "test" });
  expect(r.ok).toBe(true);
  return Object.assign(ledger, { accountId });
}

/** The checkpoint, as the runtime runs it (init and every busy hour leave one scheduled). */
async function checkpoint(ledger: ReturnType<typeof ledgerFor>) {
  expect(await runDurableObjectAlarm(ledger)).toBe(true);
}

describe("a debit at the write floor", () => {
  it("writes one row and reads at most one, sets no alarm, and settles exactly", async () => {
    const ledger = await funded(1_000_000);
    // Keyed debits (three keys in turn, usage kept per key) count in the account's rate window.
    expect(await ledger.setLimits({ rateLimitPerMinute: 1_000_000 })).toMatchObject({ ok: true });
    const n = 10_000;
    let t = Date.now();
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const m = meter(state);
      try {
        // 40 requests a second for 250 s: five minutes, so minute rows roll over too.
        for (let i = 0; i < n; i++) {
          t += 25;
          instance.testSetClock(t);
          const r = await instance.debit(1 + (i % 3), `dbt_${i}`, `key_${i % 3}`);
          if (!r.ok) throw new Error(`debit ${i} refused: ${r.reason}`);
        }
        return { debits: m.totals(), alarmsSet: m.alarms };
      } finally {
        m.stop();
      }
    });
    // The checkpoint settles the closed minutes into their hour and the state row.
    await ledger.testSetClock(t + MINUTE);
    await checkpoint(ledger);
    const audit = await ledger.audit();
    const balance = await ledger.balance();
    console.log(
      `per debit: ${result.debits.written / n} rows written, ${result.debits.read / n} read, ${result.alarmsSet} alarms set in ${n} debits`,
    );
    // The meter sees the object's statements (one upsert per debit at least).
    expect(result.debits.written).toBeGreaterThanOrEqual(n);
    expect(result.debits.written / n).toBeLessThanOrEqual(1);
    expect(result.debits.read / n).toBeLessThanOrEqual(1);
    expect(result.alarmsSet).toBe(0);
    // 10,000 debits of 1, 2, 3, ... credits: 3,334 + 2 × 3,333 + 3 × 3,333 = 19,999.
    expect(balance.total).toBe(1_000_500 - 19_999);
    expect(audit).toMatchObject({ consistent: true, ledger_total: 1_000_500 - 19_999 });
    // Five or six minute rows per key (then their hour rows), not ten thousand debit rows.
    expect(audit.debit_aggregates).toBeLessThanOrEqual(3 * 8);
  });

  it("a low-balance alert costs nothing per debit until the one debit that crosses its level", async () => {
    const ledger = await funded(1_000);
    expect(await ledger.setAlerts({ lowBalanceCredits: 600 })).toMatchObject({ ok: true });
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const m = meter(state);
      const per = async (n: number) => {
        m.reset();
        for (let i = 0; i < n; i++) {
          const r = await instance.debit(1, `dbt_${i}`, undefined);
          if (!r.ok) throw new Error(`debit ${i} refused: ${r.reason}`);
        }
        return m.totals();
      };
      try {
        // 1,500 → 601: armed, above the level.
        const above = await per(899);
        // 601 → 600 (the crossing), then 99 more below it (disarmed).
        const crossing = await per(1);
        const below = await per(99);
        return { above, crossing, below, total: instance.balance().total };
      } finally {
        m.stop();
      }
    });
    expect(result.total).toBe(501);
    expect(result.above.written / 899).toBeLessThanOrEqual(1);
    expect(result.above.read / 899).toBeLessThanOrEqual(1);
    expect(result.below.written / 99).toBeLessThanOrEqual(1);
    expect(result.below.read / 99).toBeLessThanOrEqual(1);
    // The crossing: its minute, the state row disarmed, the email in the outbox and out again.
    expect(result.crossing.written).toBeGreaterThan(1);
    expect(result.crossing.written).toBeLessThanOrEqual(6);
  });

  it("storage grows with time, not with requests, with several keys", async () => {
    const ledger = await funded(10_000_000);
    // Keyed debits count in the account's rate window: lifted, as an operator may.
    expect(await ledger.setLimits({ rateLimitPerMinute: 1_000_000 })).toMatchObject({ ok: true });
    let t = Math.floor(Date.now() / MINUTE) * MINUTE + 1_000;
    let i = 0;
    // Usage is kept per key: three keys in turn, and an operator's debit (no key) now and then.
    const KEYS = ["key_a", "key_b", "key_c"];
    const keyOf = (n: number) => (n % 50 === 49 ? undefined : KEYS[n % KEYS.length]);
    /** `count` debits, one each `stepMs` (0: all at the same instant); the database's size. */
    const debits = (count: number, stepMs: number) =>
      runInDurableObject(ledger, async (raw, state) => {
        const instance = raw as AccountLedger;
        for (let k = 0; k < count; k++) {
          t += stepMs;
          instance.testSetClock(t);
          const r = await instance.debit(1, `dbt_${i}`, keyOf(i));
          i++;
          if (!r.ok) throw new Error(`debit ${i} refused`);
        }
        return state.storage.sql.databaseSize;
      });
    // Within one minute: the first 50 debits create their rows (one per key and the operator's),
    // the next 10,000 only update them.
    const oneRow = await debits(50, 0);
    const sameMinute = await debits(10_000, 0);
    // Then 26 hours at one debit every 4 s (900 an hour), a checkpoint each hour: the ring of
    // minute rows fills (a day of minutes per key) and hour rows start to accrue.
    const day = async () => {
      let size = 0;
      for (let h = 0; h < 26; h++) {
        size = await debits(900, 4_000);
        await checkpoint(ledger);
      }
      return size;
    };
    i = 20_000;
    const firstDay = await day();
    // Another 26 hours, as many requests again: only the hour rows are new.
    const secondDay = await day();
    const sizes = {
      oneRow,
      sameMinute,
      firstDay,
      secondDay,
      requests: 10_050 + (i - 20_000),
      audit: await ledger.audit(),
    };
    console.log("databaseSize", sizes);
    // Not one byte per request once the minute's rows exist.
    expect(sizes.sameMinute).toBe(sizes.oneRow);
    // A full day of minute rows per key (4 × 1,440) and the hours: well under 2 MB, whatever
    // the traffic.
    expect(sizes.firstDay).toBeLessThan(2 * MB);
    // The second day adds 26 hour rows per key (~80 bytes each), a few pages, for 23,400 more
    // requests: extrapolated to a million requests that is far below 2 MB.
    const perMillion = ((sizes.secondDay - sizes.firstDay) / 23_400) * 1_000_000;
    expect(perMillion).toBeLessThan(2 * MB);
    expect(sizes.secondDay - sizes.firstDay).toBeLessThanOrEqual(4 * 4096);
    expect(sizes.audit.consistent).toBe(true);
    expect(sizes.audit.storage_bytes).toBe(sizes.secondDay);
    expect(sizes.audit.ledger_total).toBe(10_000_500 - sizes.requests);
    // Each key's usage is all there, and sums to the account's.
    const range = [0, Math.ceil(t / 1000) + 60] as const;
    const byKey = await ledger.usage(...range, { byKey: true });
    const perKey: Record<string, number> = {};
    for (const r of byKey) perKey[r.key_id ?? "?"] = (perKey[r.key_id ?? "?"] ?? 0) + r.requests;
    const expected: Record<string, number> = {};
    for (const n of [
      ...Array(10_050).keys(),
      ...Array.from({ length: i - 20_000 }, (_, k) => 20_000 + k),
    ]) {
      const k = keyOf(n) ?? "";
      expected[k] = (expected[k] ?? 0) + 1;
    }
    expect(perKey).toEqual(expected);
  });

  it("a restarted object rebuilds the balance from the checkpoint and the open minutes", async () => {
    const ledger = await funded(1_000);
    let t = Date.now();
    let i = 0;
    let charge = { minute: 0, monthly: 0, purchased: 0 };
    const debits = (count: number) =>
      runInDurableObject(ledger, async (raw) => {
        const instance = raw as AccountLedger;
        for (let k = 0; k < count; k++, i++) {
          t += 1_000;
          instance.testSetClock(t);
          const r = await instance.debit(2, `dbt_${i}`, undefined);
          if (!r.ok) throw new Error("refused");
          charge = { minute: r.minute, ...r.charged };
        }
      });
    await debits(151);
    await checkpoint(ledger); // a checkpoint halfway: some minutes settled, some open
    await debits(149);
    // A repeated init changes nothing, the open minutes included.
    await ledger.init({ accountId: ledger.accountId, plan: "free" });
    expect(await ledger.balance()).toMatchObject({ monthly: 0, purchased: 900 });
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    // A stub to an aborted object stays broken: a new one reaches the restarted object.
    const fresh = ledgerFor(env, ledger.accountId);
    expect(await fresh.balance()).toMatchObject({ monthly: 0, purchased: 900 });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 900 });
    // Refunds of an aggregated debit are exact, once, after the restart too.
    const refund = await fresh.refund("dbt_299", charge);
    expect(refund).toMatchObject({ ok: true, refunded: true, balance: { purchased: 902 } });
    expect(await fresh.refund("dbt_299", charge)).toMatchObject({ ok: true, refunded: false });
    // A refund can never return more than its minute took.
    const greedy = await fresh.refund("dbt_forged", {
      minute: charge.minute,
      monthly: 0,
      purchased: 10_000,
    });
    expect(greedy).toEqual({ ok: false, reason: "not_found" });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 902 });
  });
});
