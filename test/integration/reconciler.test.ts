import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { transactions } from "../../src/db/schema";
import { getTransaction } from "../../src/db/transactions";
import { ledgerFor } from "../../src/ledger/client";
import { jobFromTransaction } from "../../src/purchases/messages";
import { chargeRecharge } from "../../src/purchases/payments";
import { type ReconcileReport, reconcile } from "../../src/purchases/reconciler";
import { stripeFor } from "../../src/stripe/client";
import { admin, audit, balanceOf, createAccount, gateway, json, setBalance } from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import { attachCard, chargesOf, eventually, invoicesOf } from "../helpers/stripe";

const db = dbFor(env.DB);
const LATER = () => Date.now() + 60 * 60_000;

/** Stripe holds one invoice for the recharge, paid, and the card was charged once. */
async function expectOnePaidInvoice(customer: string, rechargeId: string) {
  const invoices = await invoicesOf(customer);
  expect(invoices.map((i) => [i.status, i.metadata.recharge_id])).toEqual([["paid", rechargeId]]);
  expect(await chargesOf(customer)).toHaveLength(1);
}

/** An account whose recharge jobs never reach the queue (its sends fail), so we can stage crashes. */
async function accountWithStuckQueue() {
  // The ledger says so, and keeps the job in its outbox for the alarm (or this reconciler).
  const logs = expectLogs([
    /^recharge job not queued yet; the alarm will retry .* queue unavailable/,
  ]);
  const account = await createAccount();
  const pm = await attachCard(account);
  await setBalance(account, { monthly: 400, purchased: 0 });
  const ledger = ledgerFor(env, account.id);
  // The test's queue binding is the very object the ledger sends through (one isolate).
  vi.spyOn(env.RECHARGE_QUEUE, "send").mockRejectedValue(new Error("queue unavailable"));
  const res = await gateway("/v1/account/auto-recharge", {
    method: "PUT",
    key: account.api_key,
    body: JSON.stringify({ enabled: true }),
  });
  await res.arrayBuffer();
  await setBalance(account, { monthly: 0, purchased: 100 });
  const [row] = await db
    .select()
    .from(transactions)
    .where(eq(transactions.type, "auto_recharge"))
    .all()
    .then((rows) => rows.filter((r) => r.accountId === account.id));
  expect(row).toMatchObject({ status: "pending" });
  expect(logs.matching(new RegExp(row?.id as string))).toHaveLength(1);
  return { account, pm, ledger, rechargeId: row?.id as string };
}

/** A top-up that succeeded in Stripe and D1 whose ledger grant was then lost. */
async function purchaseWithLostGrant() {
  const account = await createAccount();
  await attachCard(account);
  const res = await gateway("/v1/account/top-ups", {
    method: "POST",
    key: account.api_key,
    body: JSON.stringify({ package: "credits_1000" }),
  });
  const { id } = await json<{ id: string }>(res);
  await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1000));
  // Simulate a lost grant: remove it from the ledger (and its effect) behind the code's back.
  await runInDurableObject(ledgerFor(env, account.id), (_i, state) => {
    state.storage.sql.exec("DELETE FROM ledger WHERE ref = ?", id);
    state.storage.sql.exec("UPDATE state SET purchased = purchased - 1000 WHERE id = 1");
  });
  expect((await balanceOf(account)).purchased).toBe(0);
  return { account, id };
}

describe("the reconciler", () => {
  // The queue binding is shared by every ledger in this file: un-break it after each test.
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("credits a recharge that Stripe charged but the pipeline never finished", async () => {
    const { account, pm, rechargeId } = await accountWithStuckQueue();
    // Stage the crash: the consumer's charge went through (the same invoice, keys and card the
    // consumer would use) …
    const pendingRow = await getTransaction(db, rechargeId);
    expect(pendingRow).toBeDefined();
    const job = jobFromTransaction(pendingRow as NonNullable<typeof pendingRow>);
    const charged = await chargeRecharge(stripeFor(env), job, {
      customerId: account.stripe_customer_id as string,
      paymentMethodId: pm,
    });
    expect(charged.status).toBe("succeeded");
    expect((await getTransaction(db, rechargeId))?.status).toBe("pending");
    // … and nothing else happened. The reconciler finds it and finishes it.
    const report = await reconcile(env, { now: LATER() });
    expect(report.credited).toContain(rechargeId);
    expect((await balanceOf(account)).purchased).toBe(1100);
    const [row] = await db.select().from(transactions).where(eq(transactions.id, rechargeId)).all();
    expect(row?.status).toBe("succeeded");
    expect(row?.invoiceId).toMatch(/^in_/);
    // Running it again changes nothing; Stripe still holds one invoice, paid once.
    const again = await reconcile(env, { now: LATER() });
    expect(again.credited).not.toContain(rechargeId);
    expect((await balanceOf(account)).purchased).toBe(1100);
    await expectOnePaidInvoice(account.stripe_customer_id as string, rechargeId);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("carries on a recharge that never reached Stripe, charging once", async () => {
    const { account, rechargeId } = await accountWithStuckQueue();
    const report = await reconcile(env, { now: LATER() });
    expect(report.redriven).toContain(rechargeId);
    expect((await balanceOf(account)).purchased).toBe(1100);
    await expectOnePaidInvoice(account.stripe_customer_id as string, rechargeId);
    // A second run finds it settled and creates nothing.
    await reconcile(env, { now: LATER() });
    await expectOnePaidInvoice(account.stripe_customer_id as string, rechargeId);
  });

  it("leaves young pending recharges to the queue", async () => {
    const { rechargeId } = await accountWithStuckQueue();
    const report = await reconcile(env);
    expect(report.redriven).not.toContain(rechargeId);
    expect(report.credited).not.toContain(rechargeId);
  });

  it("repairs a succeeded purchase whose ledger grant is missing", async () => {
    const { account, id } = await purchaseWithLostGrant();
    const report = await reconcile(env);
    expect(report.grantsRepaired).toContain(id);
    expect((await balanceOf(account)).purchased).toBe(1000);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("POST /admin/reconcile runs it on demand and reports what it repaired", async () => {
    const { account, id } = await purchaseWithLostGrant();
    const res = await admin("/reconcile", { method: "POST" });
    expect(res.status).toBe(200);
    const report = await json<ReconcileReport>(res);
    expect(report).toMatchObject({
      attention: expect.any(Array),
      credited: expect.any(Array),
    });
    expect(report).toMatchObject({
      checked: expect.any(Number),
      failed: expect.any(Array),
      redriven: expect.any(Array),
      grantsRepaired: expect.any(Array),
      emailsRetried: expect.any(Number),
    });
    expect(report.checked).toBeGreaterThan(0);
    expect(report.grantsRepaired).toContain(id);
    expect(report.attention.map((a) => a.id)).not.toContain(id);
    expect((await balanceOf(account)).purchased).toBe(1000);
    expect((await audit(account.id)).consistent).toBe(true);
    // Run again: the grant is there now, so nothing is repaired twice.
    const again = await json<ReconcileReport>(await admin("/reconcile", { method: "POST" }));
    expect(again.grantsRepaired).not.toContain(id);
    expect((await balanceOf(account)).purchased).toBe(1000);
  });
});
