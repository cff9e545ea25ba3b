import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import type { Bindings } from "../../src/platform/env";

function freshLedger(plan: "free" | "starter" | "pro" = "free") {
  const accountId = `acct_${crypto.randomUUID()}`;
  const ledger = ledgerFor(env, accountId);
  return { accountId, ledger, init: () => ledger.init({ accountId, plan }) };
}

async function fill(ledger: ReturnType<typeof ledgerFor>, monthly: number, purchased: number) {
  const b = await ledger.balance();
  const r = await ledger.adjust({
    ref: `adj_${crypto.randomUUID()}`,
    monthly: monthly - b.monthly,
    purchased: purchased - b.purchased,
    reason: "test",
  });
  expect(r.ok).toBe(true);
}

describe("AccountLedger", () => {
  it("init grants the plan's monthly credits once", async () => {
    const { ledger, init } = freshLedger("starter");
    const first = await init();
    const second = await init();
    expect(first.balance.monthly).toBe(3000);
    expect(second.balance.monthly).toBe(3000);
    expect((await ledger.audit()).entries).toBe(1);
  });

  it("spends monthly credits first, then purchased (money rule 3)", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await fill(ledger, 2, 5);
    const r = await ledger.debit(3, "d1");
    expect(r).toMatchObject({
      ok: true,
      charged: { monthly: 2, purchased: 1 },
      balance: { monthly: 0, purchased: 4, total: 4 },
    });
  });

  it("is all or nothing: a debit larger than the total changes nothing", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await fill(ledger, 1, 1);
    const r = await ledger.debit(3, "d1");
    expect(r).toEqual({
      ok: false,
      reason: "insufficient_credits",
      balance: { monthly: 1, purchased: 1, total: 2 },
      rate: null,
    });
    expect(await ledger.balance()).toEqual({ monthly: 1, purchased: 1, total: 2 });
  });

  it("refund returns the exact credits to the buckets they came from (money rule 8)", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await fill(ledger, 2, 5);
    const d = await ledger.debit(3, "d1");
    if (!d.ok) throw new Error("debit refused");
    // What the gateway passes back: the debit's minute and what it took from each bucket.
    const charge = { minute: d.minute, ...d.charged };
    await fill(ledger, 10, 4); // monthly topped up in between: the refund must still go to purchased too
    const r = await ledger.refund("d1", charge);
    expect(r).toMatchObject({ ok: true, refunded: true, balance: { monthly: 12, purchased: 5 } });
    const again = await ledger.refund("d1", charge);
    expect(again).toMatchObject({
      ok: true,
      refunded: false,
      balance: { monthly: 12, purchased: 5 },
    });
    expect(await ledger.refund("nope", null)).toEqual({ ok: false, reason: "not_found" });
    expect((await ledger.audit()).consistent).toBe(true);
  });

  it("refuses an adjustment below zero in either bucket and changes nothing", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await fill(ledger, 5, 5);
    const r = await ledger.adjust({ ref: "a1", monthly: -6, purchased: 100, reason: "x" });
    expect(r).toMatchObject({ ok: false, reason: "insufficient_credits" });
    expect(await ledger.balance()).toEqual({ monthly: 5, purchased: 5, total: 10 });
    const ok = await ledger.adjust({ ref: "a2", monthly: -5, purchased: 0, reason: "x" });
    expect(ok).toMatchObject({ ok: true, balance: { monthly: 0, purchased: 5 } });
    const replay = await ledger.adjust({ ref: "a2", monthly: -5, purchased: 0, reason: "x" });
    expect(replay).toMatchObject({
      ok: true,
      replayed: true,
      balance: { monthly: 0, purchased: 5 },
    });
  });

  it("serves exactly min(N, B) of N concurrent debits (money rules 1, 2)", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await fill(ledger, 3, 4);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => ledger.debit(1, `c${i}`)),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(7);
    expect(results.filter((r) => !r.ok)).toHaveLength(43);
    expect(await ledger.balance()).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await ledger.audit()).toMatchObject({
      consistent: true,
      ledger_total: 0,
      balance_total: 0,
    });
  });

  it("the database itself refuses a negative bucket, whatever the code above it does", async () => {
    const { ledger, init } = freshLedger();
    await init();
    await runInDurableObject(ledger, (_instance, state) => {
      expect(() => state.storage.sql.exec("UPDATE state SET monthly = -1 WHERE id = 1")).toThrow(
        /CHECK constraint/,
      );
    });
  });

  it("a randomized run of debits, refunds and adjustments replays to the balance (money rule 4)", async () => {
    const { ledger, init } = freshLedger();
    await init();
    let seed = 20261125;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const debits: Array<{
      ref: string;
      charge: { minute: number; monthly: number; purchased: number };
    }> = [];
    const model = { ...(await ledger.balance()) };
    for (let step = 0; step < 300; step++) {
      const roll = rand();
      if (roll < 0.55) {
        const cost = Math.floor(rand() * 5);
        const ref = `d${step}`;
        const r = await ledger.debit(cost, ref);
        const canPay = model.monthly + model.purchased >= cost;
        expect(r.ok).toBe(canPay);
        if (r.ok) {
          const m = Math.min(model.monthly, cost);
          model.monthly -= m;
          model.purchased -= cost - m;
          if (cost > 0) debits.push({ ref, charge: { minute: r.minute, ...r.charged } });
        }
      } else if (roll < 0.75 && debits.length > 0) {
        const d = debits.splice(
          Math.floor(rand() * debits.length),
          1,
        )[0] as (typeof debits)[number];
        const r = await ledger.refund(d.ref, d.charge);
        expect(r.ok).toBe(true);
        model.monthly += d.charge.monthly;
        model.purchased += d.charge.purchased;
      } else {
        const monthly = Math.floor(rand() * 40) - 15;
        const purchased = Math.floor(rand() * 40) - 15;
        const r = await ledger.adjust({ ref: `a${step}`, monthly, purchased, reason: "random" });
        const fits = model.monthly + monthly >= 0 && model.purchased + purchased >= 0;
        expect(r.ok).toBe(fits);
        if (fits) {
          model.monthly += monthly;
          model.purchased += purchased;
        }
      }
      const b = await ledger.balance();
      expect(b.monthly).toBeGreaterThanOrEqual(0);
      expect(b.purchased).toBeGreaterThanOrEqual(0);
      expect({ monthly: b.monthly, purchased: b.purchased }).toEqual({
        monthly: model.monthly,
        purchased: model.purchased,
      });
    }
    const a = await ledger.audit();
    expect(a.consistent).toBe(true);
    expect(a.ledger_total).toBe(a.balance_total);
  });

  it("an uninitialized ledger serves nothing", async () => {
    const { ledger } = freshLedger();
    expect(await ledger.debit(1, "x")).toMatchObject({ ok: false, reason: "insufficient_credits" });
    expect(await ledger.snapshot()).toBeNull();
  });
});

describe("the ledger's one test seam: testSetClock", () => {
  it("moves the object's clock where LEDGER_TEST_CLOCK is set, and is refused where not", async () => {
    const { accountId, ledger, init } = freshLedger();
    await init();
    // Here (vitest.config.ts sets the binding) it moves every decision's "now".
    await ledger.testSetClock(Date.UTC(2030, 0, 15));
    expect(await ledger.limits()).toMatchObject({ periodEndsAt: Date.UTC(2030, 1, 1) });
    await ledger.testSetClock(null);
    expect((await ledger.limits())?.periodEndsAt).not.toBe(Date.UTC(2030, 1, 1));
    // The same object built with production's bindings (no LEDGER_TEST_CLOCK) refuses it.
    const refused = await runInDurableObject(ledgerFor(env, accountId), (_i, state) => {
      const { LEDGER_TEST_CLOCK: _, ...production } = env as Bindings;
      const object = new AccountLedger(state, production);
      try {
        object.testSetClock(0);
        return null;
      } catch (err) {
        return String(err);
      }
    });
    expect(refused).toContain("tests only");
  });
});
