/**
 * Group commit in the account ledger (issue 23; src/ledger/debit-batch.ts): debits decided
 * together share one write of one row per account-minute, each answered only after it
 * committed; money rules 1–3 hold exactly as with one write per debit; a write that fails (or
 * an object that dies between decision and write) answers none of its debits as charged, and
 * memory, storage and replay agree afterwards. Counted with the SQL cursors' own counters,
 * as test/integration/ledger-storage.test.ts does.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AccountLedger, DebitResult } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import { durableObjectFailure } from "../../src/platform/errors";
import { classify, createAccount, expectError, setBalance } from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import { failNextWrite, meter } from "../helpers/storage-faults";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

const KEYS = Array.from({ length: 16 }, (_, i) => `key_${i}`);

async function funded(monthly: number, purchased: number) {
  const accountId = `acct_${crypto.randomUUID()}`;
  const ledger = ledgerFor(env, accountId);
  await ledger.init({ accountId, plan: "free" });
  const b = await ledger.balance();
  const fund = { ref: "fund", monthly: monthly - b.monthly, purchased, reason: "test" };
  expect(await ledger.adjust(fund)).toMatchObject({ ok: true });
  expect(await ledger.setLimits({ rateLimitPerMinute: 1_000_000 })).toMatchObject({ ok: true });
  return Object.assign(ledger, { accountId });
}

/**
 * The ledger's write of a minute row: a batch of one minute is written by that statement
 * alone, a batch across minutes inside a transaction (debit-batch.ts); either way its write.
 */
const MINUTE_ROW_WRITE = /^\s*INSERT INTO debit_minutes/;

/**
 * The object's next write of a minute row runs, then rolls back (a commit that fails): the
 * statement really changes the row, in a transaction that then throws, so nothing of it stays.
 */
function rollBackNextWrite(state: DurableObjectState) {
  const storage = state.storage;
  const sql = storage.sql;
  const real = sql.exec.bind(sql);
  sql.exec = ((query: string, ...bindings: SqlStorageValue[]) => {
    if (!MINUTE_ROW_WRITE.test(query)) return real(query, ...bindings);
    Reflect.deleteProperty(sql, "exec");
    return storage.transactionSync(() => {
      real(query, ...bindings);
      throw new Error("SQLITE_IOERR: commit failed");
    });
  }) as SqlStorage["exec"];
}

const charged = (results: DebitResult[]) => results.filter((r) => r.ok).length;

describe("group commit", () => {
  it("N concurrent debits on B credits: exactly min(N, B) charged, monthly first, per-key usage exact", async () => {
    // 250 credits: the first 150 debits share a write; from the recharge threshold (100) on,
    // each debit writes alone after the pending ones (the trigger's path), as before.
    const ledger = await funded(10, 240);
    const results = await runInDurableObject(ledger, (raw) => {
      const instance = raw as AccountLedger;
      // 300 debits decided in one turn, over 16 keys.
      return Promise.all(
        Array.from({ length: 300 }, (_, i) => instance.debit(1, `dbt_${i}`, KEYS[i % 16])),
      );
    });
    expect(charged(results)).toBe(250);
    // In arrival order: the first 10 from monthly, the next 240 from purchased, then refusals.
    expect(results.slice(0, 10).every((r) => r.ok && r.charged.monthly === 1)).toBe(true);
    expect(results.slice(10, 250).every((r) => r.ok && r.charged.purchased === 1)).toBe(true);
    expect(results.slice(250).every((r) => !r.ok && r.reason === "insufficient_credits")).toBe(
      true,
    );
    expect(await ledger.balance()).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 0 });
    // After a restart too, and usage by key is exact.
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    const fresh = ledgerFor(env, ledger.accountId);
    expect(await fresh.balance()).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 0 });
    const now = Math.floor(Date.now() / 1000);
    const rows = await fresh.usage(now - 3600, now + 60, { byKey: true, minutes: true });
    const perKey: Record<string, number> = {};
    for (const r of rows) perKey[r.key_id ?? "?"] = (perKey[r.key_id ?? "?"] ?? 0) + r.requests;
    // 250 = 15 × 16 + 10: keys 0–9 made 16 debits, keys 10–15 made 15.
    expect(perKey).toEqual(Object.fromEntries(KEYS.map((k, i) => [k, i < 10 ? 16 : 15])));
  });

  it("debits decided together are one row written, answered only once it is stored", async () => {
    const ledger = await funded(0, 10_000);
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const m = meter(state);
      const sql = state.storage.sql;
      let storedWhenAnswered = -1;
      try {
        const calls = Array.from({ length: 100 }, (_, i) =>
          instance.debit(1, `dbt_${i}`, KEYS[i % 16]),
        );
        void calls[0]?.then(() => {
          storedWhenAnswered = sql
            .exec<{ n: number }>("SELECT SUM(requests) AS n FROM debit_minutes")
            .one().n;
        });
        const results = await Promise.all(calls);
        return { results, written: m.written(), storedWhenAnswered };
      } finally {
        m.stop();
      }
    });
    expect(charged(result.results)).toBe(100);
    // The first caller learns of its debit only once all 100 of its batch are in storage.
    expect(result.storedWhenAnswered).toBe(100);
    // One row for the batch, whatever its 16 keys: not 100, not 16.
    expect(result.written).toBe(1);
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 9_900 });
  });

  it("a batch of many keys is one row written; merged in SQL, more keys than one statement binds take a statement more; every key exact", async () => {
    const ledger = await funded(0, 10_000);
    const keys = Array.from({ length: 30 }, (_, i) => `key_many_${i}`);
    const written = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const wave = async (tag: string) => {
        const m = meter(state);
        try {
          const calls = Array.from({ length: 90 }, (_, i) =>
            instance.debit(2, `${tag}${i}`, keys[i % 30]),
          );
          const results = await Promise.all(calls);
          expect(charged(results)).toBe(90);
          return { written: m.written(), first: results[0] };
        } finally {
          m.stop();
        }
      };
      // The object knows the minute's row it wrote: the whole row in one statement.
      const known = await wave("d");
      // A refund rewrites the row behind the object's back: the next batch is merged in SQL,
      // 23 keys a statement at most (100 bound parameters).
      const f = known.first;
      if (!f?.ok) throw new Error("refused");
      await instance.refund("d0", { minute: f.minute, ...f.charged, key_id: keys[0] ?? "" });
      const merged = await wave("e");
      return [known.written, merged.written];
    });
    expect(written).toEqual([1, 2]);
    const now = Math.floor(Date.now() / 1000);
    const rows = await ledger.usage(now - 3600, now + 60, { byKey: true, minutes: true });
    expect(rows.map((r) => [r.key_id, r.requests, r.credits]).sort()).toEqual(
      keys.map((k, i) => (i === 0 ? [k, 5, 10] : [k, 6, 12])).sort(),
    );
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 10_000 - 358 });
  });

  it("under concurrency a debit writes well under one row (one per batch), with refunds exact", async () => {
    const ledger = await funded(0, 1_000_000);
    const waves = 20;
    const perWave = 50;
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const m = meter(state);
      try {
        const all: DebitResult[] = [];
        for (let w = 0; w < waves; w++) {
          const wave = Array.from({ length: perWave }, (_, i) =>
            instance.debit(1 + (i % 3), `dbt_${w}_${i}`, KEYS[i % KEYS.length]),
          );
          all.push(...(await Promise.all(wave)));
        }
        return { all, written: m.written() };
      } finally {
        m.stop();
      }
    });
    const n = waves * perWave;
    console.log(`group commit: ${result.written / n} rows written per debit (${n} debits)`);
    expect(charged(result.all)).toBe(n);
    expect(result.written / n).toBeLessThan(1);
    expect(result.written).toBeLessThanOrEqual(waves);
    // A refund of a batched debit comes out of its own key's share of the minute, once.
    const first = result.all[1];
    if (!first?.ok) throw new Error("refused");
    const charge = { minute: first.minute, ...first.charged, key_id: KEYS[1] };
    expect(await ledger.refund("dbt_0_1", charge)).toMatchObject({ ok: true, refunded: true });
    expect(await ledger.refund("dbt_0_1", charge)).toMatchObject({ ok: true, refunded: false });
    const spent = result.all.reduce((s, r) => s + (r.ok ? r.charged.purchased : 0), 0);
    expect(await ledger.audit()).toMatchObject({
      consistent: true,
      ledger_total: 1_000_000 - spent + 2,
    });
  });

  it("adaptive flush: a lone caller waits for a timer only on the probes; a probe that gathers other calls' debits brings timers back", async () => {
    const ledger = await funded(0, 10_000);
    const result = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      const real = globalThis.setTimeout;
      let timers = 0;
      globalThis.setTimeout = ((fn: () => void, ms?: number) => {
        timers++;
        return real(fn, ms);
      }) as typeof setTimeout;
      try {
        // Sixteen calls one after another: a timer probe for the first and the ninth only.
        for (let i = 0; i < 16; i++) await instance.debit(1, `dbt_lone_${i}`, KEYS[i % 16]);
        const lone = timers;
        // Five calls from other tasks arrive while the next probe waits: they share its write.
        const m = meter(state);
        const others = Array.from(
          { length: 5 },
          (_, i) =>
            new Promise<DebitResult>((resolve, reject) => {
              real(() => instance.debit(1, `dbt_other_${i}`, KEYS[i]).then(resolve, reject), 0);
            }),
        );
        const probe = instance.debit(1, "dbt_probe", KEYS[0]);
        const gathered = await Promise.all([probe, ...others]);
        const written = m.written();
        m.stop();
        // Concurrency seen: the next lone call waits for a timer again.
        const before = timers;
        await instance.debit(1, "dbt_after", KEYS[0]);
        return { lone, gathered, written, timerAfter: timers - before };
      } finally {
        globalThis.setTimeout = real;
      }
    });
    expect(result.lone).toBe(2);
    expect(charged(result.gathered)).toBe(6);
    expect(result.written).toBe(1);
    expect(result.timerAfter).toBe(1);
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 10_000 - 23 });
  });

  it("a write that fails answers none of its debits as charged, and memory returns to what is committed", async () => {
    const ledger = await funded(0, 1_000);
    const outcome = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      // Decided now, written later: eight takes of 100 (1,000 → 200), and a debit of 500
      // refused on the pending takes (it would fit in what is committed).
      const calls = [
        ...Array.from({ length: 8 }, (_, i) => instance.debit(100, `dbt_${i}`, "key_a")),
        instance.debit(500, "dbt_big", "key_b"),
      ];
      failNextWrite(state, MINUTE_ROW_WRITE, () => {
        throw new Error("SQLITE_FULL: database or disk is full");
      });
      const settled = await Promise.allSettled(calls);
      return {
        settled: settled.map((s) =>
          s.status === "rejected"
            ? { rejected: durableObjectFailure(s.reason), message: String(s.reason) }
            : { value: s.value },
        ),
        balance: instance.balance(),
        audit: instance.audit(),
        // Storage well again: every committed credit is there to take.
        again: await Promise.all(
          Array.from({ length: 10 }, (_, i) => instance.debit(100, `dbt_again_${i}`, "key_a")),
        ),
      };
    });
    // None answered as charged, and none refused for want of credits it was never charged:
    // every caller gets the error the gateway answers 503 for (an unreachable ledger).
    expect(outcome.settled).toEqual(
      Array.from({ length: 9 }, () => ({
        rejected: "unreachable",
        message: expect.stringContaining("nothing was charged"),
      })),
    );
    expect(outcome.balance).toEqual({ monthly: 0, purchased: 1_000, total: 1_000 });
    expect(outcome.audit).toMatchObject({ consistent: true, ledger_total: 1_000 });
    expect(charged(outcome.again)).toBe(10);
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    const fresh = ledgerFor(env, ledger.accountId);
    expect(await fresh.balance()).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 0 });
    const now = Math.floor(Date.now() / 1000);
    const usage = await fresh.usage(now - 3600, now + 60, { byKey: true, minutes: true });
    expect(usage.reduce((n, r) => n + r.requests, 0)).toBe(10);
  });

  it("the minute row written from what the object knows stays exact through a rolled-back write, a refund and a restart", async () => {
    const ledger = await funded(0, 10_000);
    const usageNow = async (l: ReturnType<typeof ledgerFor>) => {
      const now = Math.floor(Date.now() / 1000);
      const rows = await l.usage(now - 3600, now + 60, { byKey: true, minutes: true });
      const per = (k: string) => rows.filter((r) => r.key_id === k);
      return {
        a: per("key_a").reduce((n, r) => n + r.requests, 0),
        b: per("key_b").reduce((n, r) => n + r.requests, 0),
        credits: rows.reduce((n, r) => n + r.credits, 0),
      };
    };
    const out = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      // The minute's first write runs, then its transaction rolls back (a commit that fails):
      // what it wrote must not become what the object thinks the row holds.
      rollBackNextWrite(state);
      const lost = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => instance.debit(10, `dbt_lost_${i}`, "key_a")),
      );
      // Then debits of the same minute: three waves, a refund of one of the first between them.
      const first = await Promise.all(
        Array.from({ length: 4 }, (_, i) => instance.debit(3, `dbt_1_${i}`, "key_a")),
      );
      const f = first[0];
      if (!f?.ok) throw new Error("refused");
      await instance.refund("dbt_1_0", { minute: f.minute, ...f.charged, key_id: "key_a" });
      await Promise.all(
        Array.from({ length: 6 }, (_, i) => instance.debit(2, `dbt_2_${i}`, "key_b")),
      );
      return { lost: lost.map((l) => l.status) };
    });
    expect(out.lost).toEqual(Array.from({ length: 5 }, () => "rejected"));
    // 3 of key_a (4 less the refund) and 6 of key_b: 3 × 3 + 6 × 2 credits.
    expect(await usageNow(ledger)).toEqual({ a: 3, b: 6, credits: 21 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 10_000 - 21 });
    // A restarted object starts from the stored row (read once), and keeps it exact.
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    const fresh = ledgerFor(env, ledger.accountId);
    await Promise.all(Array.from({ length: 2 }, (_, i) => fresh.debit(1, `dbt_3_${i}`, "key_b")));
    expect(await usageNow(fresh)).toEqual({ a: 3, b: 8, credits: 23 });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 10_000 - 23 });
  });

  it("near the threshold a debit writes alone: its rolled-back write leaves the minute's next writes exact", async () => {
    // 60 credits: at or below the recharge threshold every debit writes alone (`writeAlone`).
    const ledger = await funded(0, 60);
    const out = await runInDurableObject(ledger, async (raw, state) => {
      const instance = raw as AccountLedger;
      rollBackNextWrite(state);
      const lost = await instance
        .debit(7, "dbt_lost", "key_a")
        .catch((e) => durableObjectFailure(e));
      const after = [];
      for (let i = 0; i < 3; i++) after.push(await instance.debit(2, `dbt_${i}`, "key_a"));
      return { lost, charged: charged(after) };
    });
    expect(out).toEqual({ lost: "unreachable", charged: 3 });
    const now = Math.floor(Date.now() / 1000);
    const rows = await ledger.usage(now - 3600, now + 60, { byKey: true, minutes: true });
    expect(rows.map((r) => [r.key_id, r.requests, r.credits])).toEqual([["key_a", 3, 6]]);
    expect(await ledger.balance()).toMatchObject({ total: 54 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 54 });
  });

  it("an object that dies between decision and write (state.abort) charged no one it answered", async () => {
    const ledger = await funded(0, 100);
    await runInDurableObject(ledger, (_raw, state) =>
      failNextWrite(state, MINUTE_ROW_WRITE, () => {
        state.abort("died between decision and write");
        throw new Error("unreachable");
      }),
    );
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => ledger.debit(1, `dbt_${i}`, KEYS[i])),
    );
    const answered = settled.filter((s) => s.status === "fulfilled" && s.value.ok).length;
    // The batch that died is answered with the runtime's error (503 at the gateway), never ok.
    const failed = settled.filter((s) => s.status === "rejected");
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) expect(durableObjectFailure(f.reason)).not.toBeNull();
    const fresh = ledgerFor(env, ledger.accountId);
    // Whatever was answered as charged is charged, and nothing else.
    expect(await fresh.balance()).toEqual({
      monthly: 0,
      purchased: 100 - answered,
      total: 100 - answered,
    });
    expect(await fresh.audit()).toMatchObject({ consistent: true, ledger_total: 100 - answered });
  });

  it("through the gateway: a failed batch write is 503 service_unavailable, nothing forwarded, nothing charged", async () => {
    expectLogs([/^durable object unavailable \S+ /, /LedgerWriteFailed/]);
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 300 });
    await runInDurableObject(ledgerFor(env, account.id), (_raw, state) =>
      failNextWrite(state, MINUTE_ROW_WRITE, () => {
        throw new Error("SQLITE_IOERR: disk I/O error");
      }),
    );
    const requestId = uniqueRequestId();
    const res = await classify(account, "/v1/classify", {
      headers: { "X-Request-Id": requestId },
    });
    await expectError(res, 503, "service_unavailable");
    expect(await upstreamRequests(requestId)).toEqual([]);
    const ledger = ledgerFor(env, account.id);
    expect(await ledger.balance()).toMatchObject({ purchased: 300 });
    expect(await ledger.audit()).toMatchObject({ consistent: true, ledger_total: 300 });
  });
});
