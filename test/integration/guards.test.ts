/**
 * Guards that a mutation of the code once survived the whole suite (issue 19): each test here
 * fails when its guard is removed or weakened, and says which guard it holds.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { dbFor } from "../../src/db/client";
import { pendingRefunds } from "../../src/db/schema";
import worker from "../../src/index";
import { ledgerFor } from "../../src/ledger/client";
import { DAY_SECONDS, MINUTE_SECONDS, ringNeedsSettling } from "../../src/ledger/domain/rules";

async function newLedger(funds: { monthly: number; purchased: number }) {
  const accountId = `acct_${crypto.randomUUID()}`;
  const ledger = ledgerFor(env, accountId);
  await ledger.init({ accountId, plan: "free" });
  const now = await ledger.balance();
  const r = await ledger.adjust({
    ref: "fund",
    monthly: funds.monthly - now.monthly,
    purchased: funds.purchased - now.purchased,
    reason: "test",
  });
  expect(r.ok).toBe(true);
  return ledger;
}

describe("a recharge that failed stays failed (ledger/store/recharges.ts)", () => {
  it("a late 'waits for authentication' after the failure changes nothing", async () => {
    const ledger = await newLedger({ monthly: 500, purchased: 0 });
    await ledger.setPaymentMethod("pm_card_visa");
    const id = `rch_${crypto.randomUUID()}`;
    const started = await ledger.requestTopUp({ rechargeId: id, package: "credits_1000" });
    expect(started.ok).toBe(true);
    expect(await ledger.rechargeFailed(id, "card_declined", "Your card was declined.")).toEqual({
      ok: true,
      changed: true,
    });
    // A redelivered invoice.payment_action_required arriving after the decline and void.
    const late = await ledger.rechargeNeedsAction(
      id,
      "authentication_required",
      "Confirm the payment.",
      "https://invoice.example/late",
    );
    expect(late).toEqual({ ok: true, changed: false });
    expect((await ledger.recharge(id))?.status).toBe("failed");
    const settings = await ledger.autoRecharge();
    expect(settings?.lastFailure).toMatchObject({ code: "card_declined", actionUrl: null });
  });
});

describe("a refund's amounts are whole, non-negative credits in a whole minute (validCharge)", () => {
  async function debited() {
    const ledger = await newLedger({ monthly: 5, purchased: 5 });
    const debit = await ledger.debit(2, `req_${crypto.randomUUID()}`);
    if (!debit.ok) throw new Error("debit refused");
    expect(debit.charged).toEqual({ monthly: 2, purchased: 0 });
    return { ledger, minute: debit.minute };
  }

  it.each([
    ["a negative bucket", { monthly: 2, purchased: -1 }, 0],
    ["a fractional amount", { monthly: 1.5, purchased: 0 }, 0],
    ["a minute that is not whole", { monthly: 2, purchased: 0 }, 30],
  ])("refuses %s and changes nothing", async (_what, amounts, offset) => {
    const { ledger, minute } = await debited();
    const before = await ledger.balance();
    const result = await ledger.refund(`req_${crypto.randomUUID()}`, {
      minute: minute + offset,
      ...amounts,
    });
    expect(result).toMatchObject({ ok: false, reason: "not_found" });
    expect(await ledger.balance()).toEqual(before);
    expect((await ledger.audit()).consistent).toBe(true);
  });
});

describe("the refund dead-letter queue keeps what it is owed (gateway/refunds.ts)", () => {
  it("a refund out of retries becomes a D1 row before its message is acked", async () => {
    const accountId = `acct_${crypto.randomUUID()}`;
    const debitRef = `req_${crypto.randomUUID()}`;
    const batch = createMessageBatch("tollgate-refund-dlq", [
      {
        id: "dead-1",
        timestamp: new Date(),
        attempts: 10,
        body: {
          account_id: accountId,
          debit_ref: debitRef,
          charge: { minute: 1_800_000_000 - (1_800_000_000 % 60), monthly: 1, purchased: 0 },
        },
      },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["dead-1"]);
    const rows = await dbFor(env.DB)
      .select()
      .from(pendingRefunds)
      .where(eq(pendingRefunds.debitRef, debitRef));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ accountId });
  });
});

describe("the minute ring is settled before a slot is reused (ledger/domain/rules.ts)", () => {
  it("settles from the minute whose slot is the oldest open one, a day on", () => {
    const settled = 1_800_000_000 - (1_800_000_000 % DAY_SECONDS);
    // The same slot as the oldest open minute: it must be settled first.
    expect(ringNeedsSettling(settled + DAY_SECONDS, settled)).toBe(true);
    // One minute before it: the slot of the minute just settled, kept settled ahead of need.
    expect(ringNeedsSettling(settled + DAY_SECONDS - MINUTE_SECONDS, settled)).toBe(true);
    expect(ringNeedsSettling(settled + DAY_SECONDS - 2 * MINUTE_SECONDS, settled)).toBe(false);
  });

  it("a debit exactly one day after an open minute keeps both in replay and usage", async () => {
    const accountId = `acct_${crypto.randomUUID()}`;
    const ledger = ledgerFor(env, accountId);
    // Minute-aligned, an hour past a whole hour: no checkpoint runs in between.
    const t0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 + 60_000;
    await ledger.testSetClock(t0);
    await ledger.init({ accountId, plan: "free", now: t0 });
    const first = await ledger.debit(3, "req_first");
    expect(first.ok).toBe(true);
    await ledger.testSetClock(t0 + DAY_SECONDS * 1000);
    const second = await ledger.debit(2, "req_second");
    expect(second.ok).toBe(true);
    if (!first.ok || !second.ok) return;
    expect(second.minute - first.minute).toBe(DAY_SECONDS);
    expect((await ledger.audit()).consistent).toBe(true);
    const rows = await ledger.usage(t0 / 1000 - DAY_SECONDS, t0 / 1000 + 2 * DAY_SECONDS);
    expect(rows.reduce((sum, r) => sum + r.credits, 0)).toBe(5);
    expect(rows.reduce((sum, r) => sum + r.requests, 0)).toBe(2);
  });
});
