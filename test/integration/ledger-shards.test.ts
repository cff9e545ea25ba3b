/**
 * Escrow shards (docs/ledger-shards.md) through the objects' RPC: the bank (AccountLedger) and
 * an account's LedgerShard objects, real, in workerd.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { ledgerFor } from "../../src/ledger/client";
import { LEASE_MARGIN_MS, LEASE_TTL_MS } from "../../src/ledger/domain/leases";
import type { ShardDebitResult } from "../../src/ledger/shards/ledger-shard";
import { shardedAccount } from "../helpers/shards";

const account = shardedAccount;

/** Every lease back at the bank: the account's whole balance is the bank's again. */
async function settleAll(bank: ReturnType<typeof ledgerFor>) {
  await bank.leaseRecall();
}

describe("escrow shards", () => {
  it("N concurrent requests on B credits across 4 shards: exactly min(N, B), refused only at zero (money rules 1, 2, 3)", async () => {
    const a = await account(120, 80);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => a.debit(i % a.shards)));
    const ok = results.filter((r) => r.ok) as Extract<ShardDebitResult, { ok: true }>[];
    expect(ok).toHaveLength(200);
    expect(results.filter((r) => !r.ok && r.reason === "insufficient_credits")).toHaveLength(100);
    // Leases did the work: most debits were answered by a shard, not forwarded to the bank.
    expect(ok.filter((r) => r.lease !== null).length).toBeGreaterThan(50);
    const charged = ok.reduce(
      (s, r) => ({ m: s.m + r.charged.monthly, p: s.p + r.charged.purchased }),
      { m: 0, p: 0 },
    );
    expect(charged).toEqual({ m: 120, p: 80 });
    await settleAll(a.bank);
    expect(await a.bank.balance()).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await a.bank.audit()).toMatchObject({
      consistent: true,
      ledger_total: 0,
      balance_total: 0,
    });
    // Usage is exact across shards: 200 requests of one key.
    const now = Math.floor(Date.now() / 1000);
    const rows = await a.bank.usage(now - 3600, now + 60, { minutes: true, byKey: true });
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(200);
    expect(rows.reduce((s, r) => s + r.credits, 0)).toBe(200);
  });

  it("far from zero, a shard answers from its lease and calls the bank about once per lease", async () => {
    const a = await account(50_000, 0);
    const results = await Promise.all(Array.from({ length: 400 }, (_, i) => a.debit(i % 4)));
    expect(results.every((r) => r.ok && r.lease !== null)).toBe(true);
    // Four leases, one per shard: the bank's balance is what they did not take.
    const leased = (await runInDurableObject(a.bank, (_i, state) =>
      state.storage.sql.exec("SELECT COUNT(*) AS n FROM leases").one(),
    )) as { n: number };
    expect(leased.n).toBe(4);
    // The ledger's own credits are what the leases left; its people see the whole account.
    expect((await a.bank.audit()).balance_total).toBe(50_000 - 4_000);
    expect((await a.bank.balance()).total).toBe(50_000);
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(50_000 - 400);
    expect((await a.bank.audit()).consistent).toBe(true);
  });

  it("a restarted shard neither spends twice nor forgets what it spent", async () => {
    const a = await account(1_000, 0);
    for (let i = 0; i < 5; i++) expect((await a.debit(0)).ok).toBe(true);
    await runInDurableObject(a.shard(0), (_i, state) => state.abort("restart")).catch(() => {});
    for (let i = 0; i < 5; i++) expect((await a.debit(0)).ok).toBe(true);
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(990);
    expect((await a.bank.audit()).consistent).toBe(true);
  });

  it("a dead shard's lease returns to the bank when it expires (the bank's alarm), nothing lost", async () => {
    const a = await account(1_000, 0);
    for (let i = 0; i < 3; i++) expect((await a.debit(1)).ok).toBe(true);
    await runInDurableObject(a.shard(1), (_i, state) => state.abort("dies")).catch(() => {});
    expect((await a.bank.audit()).balance_total).toBeLessThan(1_000 - 3);
    await a.bank.testSetClock(Date.now() + LEASE_TTL_MS + 1);
    await runDurableObjectAlarm(a.bank);
    await a.bank.testSetClock(null);
    expect((await a.bank.balance()).total).toBe(997);
    expect((await a.bank.audit()).consistent).toBe(true);
    // The shard, back, does not spend the lease it no longer holds: it takes a new one.
    const dd = await a.debit(1);
    expect(dd.ok).toBe(true);
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(996);
  });

  it("a shard returns its lease before it expires, idle (its alarm)", async () => {
    const a = await account(1_000, 0);
    expect((await a.debit(2)).ok).toBe(true);
    expect((await a.bank.audit()).balance_total).toBeLessThan(999);
    const ran = await runDurableObjectAlarm(a.shard(2));
    expect(ran).toBe(true);
    expect((await a.bank.balance()).total).toBe(999);
    expect(LEASE_MARGIN_MS).toBeLessThan(LEASE_TTL_MS);
  });

  it("refunds return to the shard that took the debit, once; after the lease closed, at the bank, once (money rule 8)", async () => {
    const a = await account(100, 100);
    const ref = `dbt_${crypto.randomUUID()}`;
    const d = await a.shard(3).debit(a.at(3), 5, ref, "key_r");
    if (!d.ok || d.lease === null) throw new Error("expected a shard debit");
    const charge = { minute: d.minute, ...d.charged, key_id: "key_r" };
    const first = await a.shard(3).refund(a.accountId, ref, charge, d.lease);
    const again = await a.shard(3).refund(a.accountId, ref, charge, d.lease);
    expect(first).toMatchObject({ ok: true, refunded: true });
    expect(again).toMatchObject({ ok: true, refunded: false });
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(200);
    // The bank now holds the refund as `refund:<debit>`: a late copy from the queue adds nothing.
    expect(await a.bank.refund(ref, charge)).toMatchObject({ ok: true, refunded: false });
    // A debit whose lease was closed is refunded at the bank, through the shard.
    const ref2 = `dbt_${crypto.randomUUID()}`;
    const d2 = await a.shard(3).debit(a.at(3), 4, ref2, "key_r");
    if (!d2.ok || d2.lease === null) throw new Error("expected a shard debit");
    await settleAll(a.bank);
    const charge2 = { minute: d2.minute, ...d2.charged, key_id: "key_r" };
    expect(await a.shard(3).refund(a.accountId, ref2, charge2, d2.lease)).toMatchObject({
      ok: true,
      refunded: true,
    });
    expect(await a.shard(3).refund(a.accountId, ref2, charge2, d2.lease)).toMatchObject({
      ok: true,
      refunded: false,
    });
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(200);
    const audit = await a.bank.audit();
    expect(audit).toMatchObject({ consistent: true, ledger_total: 200, balance_total: 200 });
    const now = Math.floor(Date.now() / 1000);
    const rows = await a.bank.usage(now - 3600, now + 60, { minutes: true, byKey: true });
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(0);
  });

  it("auto-recharge triggers once, on the account-wide total", async () => {
    const a = await account(0, 150);
    await a.bank.setPaymentMethod("pm_card_visa");
    await a.bank.updateAutoRecharge({ enabled: true, package: "credits_1000" });
    const recharges = async () =>
      (await runInDurableObject(a.bank, (_i, state) =>
        state.storage.sql.exec("SELECT COUNT(*) AS n FROM recharges").one(),
      )) as { n: number };
    // Every shard holds a lease: the bank itself is below the threshold (100), the account not.
    for (let i = 0; i < 4; i++) expect((await a.debit(i)).ok).toBe(true);
    expect((await a.bank.audit()).balance_total).toBeLessThanOrEqual(100);
    expect((await recharges()).n).toBe(0);
    // Down to the threshold across every shard: one recharge, whatever the shards do next.
    const more = await Promise.all(Array.from({ length: 80 }, (_, i) => a.debit(i % 4)));
    expect(more.every((r) => r.ok)).toBe(true);
    await settleAll(a.bank);
    expect((await recharges()).n).toBe(1);
    expect((await a.bank.audit()).consistent).toBe(true);
  });

  it("a refund owed through the queue for a shard's debit is applied once, at the ledger, after a recall", async () => {
    const a = await account(50, 50);
    const ref = `dbt_${crypto.randomUUID()}`;
    const d = await a.shard(0).debit(a.at(0), 3, ref, "key_q");
    if (!d.ok || d.lease === null) throw new Error("expected a shard debit");
    const charge = { minute: d.minute, ...d.charged, key_id: "key_q" };
    const message = { account_id: a.accountId, debit_ref: ref, charge };
    const batch = createMessageBatch("tollgate-refund", [
      { id: "r1", timestamp: new Date(), attempts: 1, body: message },
      { id: "r2", timestamp: new Date(), attempts: 1, body: message },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(["r1", "r2"]);
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(100);
    expect(await a.bank.audit()).toMatchObject({ consistent: true, ledger_total: 100 });
  });

  it("a shard debit whose reply was lost is reversed exactly where it was taken, once (money rule 8)", async () => {
    const a = await account(100, 0);
    // Committed on the shard's lease; the gateway never saw the answer.
    const ref = `dbt_${crypto.randomUUID()}`;
    const sentAt = Date.now();
    expect((await a.shard(1).debit(a.at(1), 2, ref, "key_l")).ok).toBe(true);
    expect(await a.shard(1).refund(a.accountId, ref, null, null, sentAt)).toMatchObject({
      ok: true,
      refunded: true,
    });
    expect(await a.shard(1).refund(a.accountId, ref, null, null, sentAt)).toMatchObject({
      ok: true,
      refunded: false,
    });
    // Never arrived: declared so, and a late arrival is refused.
    const lost = `dbt_${crypto.randomUUID()}`;
    await new Promise((r) => setTimeout(r, 5));
    expect(await a.shard(1).refund(a.accountId, lost, null, null, Date.now())).toMatchObject({
      ok: false,
      reason: "not_found",
    });
    expect(await a.shard(1).debit(a.at(1), 1, lost, "key_l")).toMatchObject({
      ok: false,
      reason: "not_found",
    });
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBe(100);
    expect((await a.bank.audit()).consistent).toBe(true);
  });

  it("the low-balance alert follows the account-wide total: not while credits are only out on lease", async () => {
    const a = await account(1_000, 0);
    await a.bank.setAlerts({ lowBalanceCredits: 700 });
    const armed = async () =>
      (
        (await runInDurableObject(a.bank, (_i, state) =>
          state.storage.sql.exec("SELECT low_balance_armed AS armed FROM state").one(),
        )) as { armed: number }
      ).armed;
    expect(await armed()).toBe(1);
    // Every shard holds a lease: the ledger's own credits are below the level, the account's not.
    for (let i = 0; i < 4; i++) expect((await a.debit(i)).ok).toBe(true);
    expect((await a.bank.audit()).balance_total).toBeLessThan(700);
    // Any change on the ledger follows the alert: it must see the whole account.
    await a.bank.adjust({
      ref: `adj_${crypto.randomUUID()}`,
      monthly: 1,
      purchased: 0,
      reason: "t",
    });
    expect(await armed()).toBe(1);
    // Down to the level across the shards: the alert fires when the spending comes back.
    await Promise.all(Array.from({ length: 310 }, (_, i) => a.debit(i % 4)));
    await settleAll(a.bank);
    expect((await a.bank.balance()).total).toBeLessThanOrEqual(700);
    expect(await armed()).toBe(0);
  });
});
