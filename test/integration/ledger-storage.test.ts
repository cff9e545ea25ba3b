/**
 * What a debit costs in storage, measured inside workerd with the SQL cursors' own counters
 * (`rowsRead`, `rowsWritten`: what Cloudflare bills) and `databaseSize`: one row written and
 * at most one read per debit, and storage that grows with time, not with requests (money
 * rule 4, docs/money-rules.md).
 *
 * The object's clock is its `now()` method, replaced on the instance, so a day of traffic
 * runs in seconds; its checkpoints run by calling `alarm()` as the runtime would.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const MB = 1024 * 1024;

interface Meter {
  cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[];
  alarms: number;
  totals(): { read: number; written: number };
  reset(): void;
}

type Internals = {
  sql: SqlStorage;
  now: () => number;
  alarm: () => Promise<void>;
};

/** Counts every statement the object runs (its `sql` is looked up at each call). */
function meter(instance: AccountLedger, state: DurableObjectState): Meter {
  const inner = instance as unknown as Internals;
  const real = inner.sql;
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
  };
  inner.sql = {
    exec: (query: string, ...bindings: SqlStorageValue[]) => {
      const cursor = real.exec(query, ...bindings);
      m.cursors.push(cursor);
      return cursor;
    },
    get databaseSize() {
      return real.databaseSize;
    },
  } as SqlStorage;
  const setAlarm = state.storage.setAlarm.bind(state.storage);
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

describe("a debit at the write floor", () => {
  it("writes one row and reads at most one, sets no alarm, and settles exactly", async () => {
    const ledger = await funded(1_000_000);
    const n = 10_000;
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as unknown as AccountLedger;
      const inner = instance as unknown as Internals;
      const m = meter(instance, state);
      let t = Date.now();
      inner.now = () => t;
      m.reset();
      // 40 requests a second for 250 s: five minutes, so minute rows roll over too.
      for (let i = 0; i < n; i++) {
        t += 25;
        const r = await instance.debit(1 + (i % 3), `dbt_${i}`, undefined);
        if (!r.ok) throw new Error(`debit ${i} refused: ${r.reason}`);
      }
      const debits = m.totals();
      const alarmsSet = m.alarms;
      // The checkpoint settles the closed minutes into their hour and the state row.
      t += MINUTE;
      await inner.alarm();
      return { debits, alarmsSet, audit: instance.audit(), balance: instance.balance() };
    });
    console.log(
      `per debit: ${result.debits.written / n} rows written, ${result.debits.read / n} read, ${result.alarmsSet} alarms set in ${n} debits`,
    );
    expect(result.debits.written / n).toBeLessThanOrEqual(1);
    expect(result.debits.read / n).toBeLessThanOrEqual(1);
    expect(result.alarmsSet).toBe(0);
    // 10,000 debits of 1, 2, 3, ... credits: 3,334 + 2 × 3,333 + 3 × 3,333 = 19,999.
    expect(result.balance.total).toBe(1_000_500 - 19_999);
    expect(result.audit).toMatchObject({ consistent: true, ledger_total: 1_000_500 - 19_999 });
    // Five or six minute rows, not ten thousand debit rows.
    expect(result.audit.debit_aggregates).toBeLessThanOrEqual(8);
  });

  it("a low-balance alert costs nothing per debit until the one debit that crosses its level", async () => {
    const ledger = await funded(1_000);
    expect(await ledger.setAlerts({ lowBalanceCredits: 600 })).toMatchObject({ ok: true });
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as unknown as AccountLedger;
      const m = meter(instance, state);
      const per = async (n: number) => {
        m.reset();
        for (let i = 0; i < n; i++) {
          const r = await instance.debit(1, `dbt_${i}`, undefined);
          if (!r.ok) throw new Error(`debit ${i} refused: ${r.reason}`);
        }
        return m.totals();
      };
      // 1,500 → 601: armed, above the level.
      const above = await per(899);
      // 601 → 600 (the crossing), then 99 more below it (disarmed).
      const crossing = await per(1);
      const below = await per(99);
      return { above, crossing, below, total: instance.balance().total };
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

  it("storage grows with time, not with requests", async () => {
    const ledger = await funded(10_000_000);
    const sizes = await runInDurableObject(ledger, async (raw) => {
      const instance = raw as unknown as AccountLedger;
      const inner = instance as unknown as Internals;
      const sql = inner.sql;
      let t = Math.floor(Date.now() / MINUTE) * MINUTE + 1_000;
      inner.now = () => t;
      const debit = async (i: number) => {
        const r = await instance.debit(1, `dbt_${i}`, undefined);
        if (!r.ok) throw new Error(`debit ${i} refused`);
      };
      // Within one minute: the first debit creates its row, the next 10,000 only update it.
      await debit(0);
      const oneRow = sql.databaseSize;
      for (let i = 1; i <= 10_000; i++) await debit(i);
      const sameMinute = sql.databaseSize;
      // Then 26 hours at one debit every 4 s (23,400 debits), checkpoints hourly: the ring of
      // minute rows fills (a day of minutes) and hour rows start to accrue.
      const day = async (from: number) => {
        let i = from;
        const end = t + 26 * HOUR;
        let nextAlarm = t + HOUR;
        while (t < end) {
          t += 4_000;
          await debit(i++);
          if (t >= nextAlarm) {
            await inner.alarm();
            nextAlarm += HOUR;
          }
        }
        return i;
      };
      const afterFirstDay = await day(20_000);
      const firstDay = sql.databaseSize;
      // Another 26 hours, as many requests again: only the hour rows are new.
      const afterSecondDay = await day(afterFirstDay);
      const secondDay = sql.databaseSize;
      return {
        oneRow,
        sameMinute,
        firstDay,
        secondDay,
        requests: 10_001 + (afterSecondDay - 20_000),
        audit: instance.audit(),
      };
    });
    console.log("databaseSize", sizes);
    // Not one byte per request once the minute's row exists.
    expect(sizes.sameMinute).toBe(sizes.oneRow);
    // A full day of minute rows (1,440) and the hours: well under 2 MB, whatever the traffic.
    expect(sizes.firstDay).toBeLessThan(2 * MB);
    // The second day adds 26 hour rows (~70 bytes each), at most a few pages, for 23,400 more
    // requests: extrapolated to a million requests that is far below 2 MB.
    const perMillion = ((sizes.secondDay - sizes.firstDay) / 23_400) * 1_000_000;
    expect(perMillion).toBeLessThan(2 * MB);
    expect(sizes.secondDay - sizes.firstDay).toBeLessThanOrEqual(4 * 4096);
    expect(sizes.audit.consistent).toBe(true);
    expect(sizes.audit.storage_bytes).toBe(sizes.secondDay);
    expect(sizes.audit.ledger_total).toBe(10_000_500 - sizes.requests);
  });

  it("a restarted object rebuilds the balance from the checkpoint and the open minutes", async () => {
    const ledger = await funded(1_000);
    const charge = await runInDurableObject(ledger, async (raw) => {
      const instance = raw as unknown as AccountLedger;
      const inner = instance as unknown as Internals;
      let t = Date.now();
      inner.now = () => t;
      let last = null;
      for (let i = 0; i < 300; i++) {
        t += 1_000;
        const r = await instance.debit(2, `dbt_${i}`, undefined);
        if (!r.ok) throw new Error("refused");
        last = { minute: r.minute, ...r.charged };
        if (i === 150) await inner.alarm(); // a checkpoint halfway: some minutes settled, some open
      }
      // A repeated init changes nothing, the open minutes included.
      instance.init({ accountId: ledger.accountId, plan: "free" });
      expect(instance.balance()).toMatchObject({ monthly: 0, purchased: 900 });
      return last;
    });
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
      minute: charge?.minute ?? 0,
      monthly: 0,
      purchased: 10_000,
    });
    expect(greedy).toEqual({ ok: false, reason: "not_found" });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 902 });
  });
});
