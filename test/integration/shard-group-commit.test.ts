/**
 * Group commit in the escrow shards (src/ledger/shards/ledger-shard.ts, src/ledger/debit-batch.ts):
 * the debits a shard decides together on its lease share one write (one row per minute, each
 * key's sums inside it), each answered only once it committed. A write that fails, or a shard
 * that dies between decision and write, answers none of its debits as charged, and what the
 * bank settles from the lease is exactly what was answered. A lease spent by a shard of the
 * version before (one row per minute and key) still settles whole.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ledgerFor } from "../../src/ledger/client";
import { shardFor } from "../../src/ledger/shards/client";
import type { LedgerShard, ShardDebitResult } from "../../src/ledger/shards/ledger-shard";
import { durableObjectFailure } from "../../src/platform/errors";
import { shardedAccount } from "../helpers/shards";
import { failNextWrite, meter } from "../helpers/storage-faults";

const KEYS = Array.from({ length: 16 }, (_, i) => `key_${i}`);

/** A 2-shard account, seen from its shard 0. */
async function account(monthly: number, purchased: number) {
  const a = await shardedAccount(monthly, purchased, 2);
  return { ...a, shard: a.shard(0), at: a.at(0) };
}

const SPEND_WRITE = /^\s*INSERT INTO spend_minutes/;

async function usageOf(bank: ReturnType<typeof ledgerFor>) {
  const now = Math.floor(Date.now() / 1000);
  const rows = await bank.usage(now - 3600, now + 60, { minutes: true, byKey: true });
  const byKey = new Map<string, number>();
  for (const r of rows) {
    const key = (r as { key_id?: string | null }).key_id ?? "";
    byKey.set(key, (byKey.get(key) ?? 0) + r.requests);
  }
  return { requests: rows.reduce((s, r) => s + r.requests, 0), byKey };
}

const ok = (r: ShardDebitResult) => r.ok;

describe("group commit in the escrow shards", () => {
  it("debits a shard decides together are one row written, answered once stored; the lease settles exact, per key", async () => {
    const a = await account(10_000, 0);
    expect((await a.shard.debit(a.at, 1, "dbt_first", KEYS[0])).ok).toBe(true);
    const written = await runInDurableObject(a.shard, async (raw, state) => {
      const instance = raw as LedgerShard;
      const m = meter(state);
      const results = await Promise.all(
        Array.from({ length: 48 }, (_, i) => instance.debit(a.at, 1, `dbt_${i}`, KEYS[i % 16])),
      );
      m.stop();
      expect(results.every(ok)).toBe(true);
      return m.written();
    });
    // 48 debits of 16 keys in one minute: one row (two if the minute turned meanwhile).
    expect(written).toBeGreaterThanOrEqual(1);
    expect(written).toBeLessThanOrEqual(2);
    await a.bank.leaseRecall();
    expect((await a.bank.balance()).total).toBe(10_000 - 49);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 10_000 - 49 });
    const usage = await usageOf(a.bank);
    expect(usage.requests).toBe(49);
    expect(usage.byKey.get(`key_0`)).toBe(4);
    expect(usage.byKey.get(`key_15`)).toBe(3);
  });

  it("a keyless debit and keyed ones in one row settle as they were taken", async () => {
    const a = await account(1_000, 0);
    expect((await a.shard.debit(a.at, 1, "dbt_first", KEYS[0])).ok).toBe(true);
    await runInDurableObject(a.shard, async (raw) => {
      const instance = raw as LedgerShard;
      const results = await Promise.all([
        instance.debit(a.at, 2, "dbt_keyless_1"),
        instance.debit(a.at, 3, "dbt_k1", KEYS[1]),
        instance.debit(a.at, 4, "dbt_keyless_2"),
      ]);
      expect(results.every(ok)).toBe(true);
    });
    await a.bank.leaseRecall();
    expect((await a.bank.balance()).total).toBe(1_000 - 10);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 990 });
    const usage = await usageOf(a.bank);
    expect(usage.requests).toBe(4);
    expect(usage.byKey.get(`key_1`)).toBe(1);
  });

  it("a write that fails answers none of its debits as charged; the lease's memory returns to what is stored, and reversing them gives nothing back", async () => {
    const a = await account(1_000, 0);
    // Committed spend on the lease that would cover a refund of any one of the lost debits.
    const first = await a.shard.debit(a.at, 100, "dbt_first", KEYS[0]);
    if (!first.ok) throw new Error("the first debit was refused");
    const sentAt = Date.now();
    await runInDurableObject(a.shard, async (raw, state) => {
      const instance = raw as LedgerShard;
      failNextWrite(state, SPEND_WRITE, () => {
        throw new Error("SQLITE_FULL: database or disk is full");
      });
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => instance.debit(a.at, 10, `dbt_lost_${i}`, KEYS[i])),
      );
      // None answered as charged; each failure is retryable (503 at the gateway).
      for (const s of settled) {
        expect(s.status).toBe("rejected");
        if (s.status === "rejected") expect(durableObjectFailure(s.reason)).not.toBeNull();
      }
      // The gateway reverses each by its ref: never committed, so nothing comes back (a debit
      // remembered at its decision rather than its write would be refunded into the lease here).
      for (let i = 0; i < 10; i++)
        expect(
          await instance.refund(a.accountId, `dbt_lost_${i}`, null, null, sentAt + 1),
        ).toMatchObject({ ok: false });
      // The next debits are decided on the lease as stored: what the account holds, as the
      // shard answers it, lacks only them and the first (memory read back, not 100 credits short).
      const after = await Promise.all(
        Array.from({ length: 3 }, (_, i) => instance.debit(a.at, 2, `dbt_after_${i}`, KEYS[0])),
      );
      const totals = after.map((r) => (r.ok ? r.balance.total : Number.NaN)).sort((x, y) => y - x);
      expect(totals).toEqual([
        first.balance.total - 2,
        first.balance.total - 4,
        first.balance.total - 6,
      ]);
    });
    await a.bank.leaseRecall();
    expect((await a.bank.balance()).total).toBe(1_000 - 100 - 6);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 894 });
    expect((await usageOf(a.bank)).requests).toBe(4);
  });

  it("a debit reversed while it waits for the lease exchange is refused when the exchange is over, never charged", async () => {
    const a = await account(1_000, 0);
    await runInDurableObject(a.shard, async (raw) => {
      const instance = raw as LedgerShard;
      // No lease yet: this debit waits for the bank's grant.
      const sentAt = Date.now() - 1;
      const pending = instance.debit(a.at, 5, "dbt_slow", KEYS[0]);
      // Meanwhile the gateway gave up on the call (a lane waits 10 s at most) and reverses it.
      expect(await instance.refund(a.accountId, "dbt_slow", null, null, sentAt + 1)).toMatchObject({
        ok: false,
      });
      expect(await pending).toMatchObject({ ok: false, reason: "not_found" });
    });
    await a.bank.leaseRecall();
    expect((await a.bank.balance()).total).toBe(1_000);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 1_000 });
  });

  it("a shard that dies between decision and write (state.abort) charged no one it did not answer", async () => {
    const a = await account(1_000, 0);
    expect((await a.shard.debit(a.at, 1, "dbt_first", KEYS[0])).ok).toBe(true);
    await runInDurableObject(a.shard, (_i, state) =>
      failNextWrite(state, SPEND_WRITE, () => {
        state.abort("died between decision and write");
        throw new Error("unreachable");
      }),
    );
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => a.shard.debit(a.at, 5, `dbt_${i}`, KEYS[i])),
    );
    // Memory and storage agree again in the restarted shard: a debit there is exact.
    const restarted = shardFor(env, a.accountId, 0);
    expect((await restarted.debit(a.at, 5, "dbt_after", KEYS[0])).ok).toBe(true);
    const answered = settled.filter((s) => s.status === "fulfilled" && s.value.ok).length;
    const failed = settled.filter((s) => s.status === "rejected");
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) expect(durableObjectFailure(f.reason)).not.toBeNull();
    await a.bank.leaseRecall();
    // Whatever was answered as charged is charged, and nothing else.
    expect((await a.bank.balance()).total).toBe(1_000 - 1 - 5 * answered - 5);
    expect(await a.bank.audit()).toMatchObject({
      consistent: true,
      ledger_total: 1_000 - 1 - 5 * answered - 5,
    });
  });

  it("a lease spent partly by a shard of the version before (a row per minute and key) settles whole", async () => {
    const a = await account(1_000, 0);
    expect((await a.shard.debit(a.at, 1, "dbt_first", KEYS[0])).ok).toBe(true);
    const minute = Math.floor(Date.now() / 60_000) * 60;
    await runInDurableObject(a.shard, (_i, state) => {
      // What the earlier version wrote for 3 debits of 2 credits by key_9 in this minute.
      state.storage.sql.exec(
        "INSERT INTO spend (minute, key_id, requests, monthly, purchased) VALUES (?, ?, 3, 6, 0)",
        minute,
        KEYS[9],
      );
    });
    // A restart reads the lease's spend from both tables.
    await runInDurableObject(a.shard, (_i, state) => state.abort("upgrade")).catch(() => {});
    // A fresh stub: one whose object was reset stays broken.
    const restarted = shardFor(env, a.accountId, 0);
    expect((await restarted.debit(a.at, 2, "dbt_new", KEYS[9])).ok).toBe(true);
    await a.bank.leaseRecall();
    expect((await a.bank.balance()).total).toBe(1_000 - 1 - 6 - 2);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 991 });
    const usage = await usageOf(a.bank);
    expect(usage.byKey.get(`key_9`)).toBe(4);
  });
});
