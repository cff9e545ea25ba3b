/**
 * Purchases as one-off Stripe invoices: crashes between the steps, an invoice the customer's
 * balance pays at finalization, payments that need authentication (paid later on the hosted
 * invoice page, or voided by the reconciler), and purchase invoice events in any order.
 */
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import Stripe from "stripe";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { emails } from "../../src/db/schema";
import { getTransaction, markPurchaseFailed } from "../../src/db/transactions";
import { processRecharge } from "../../src/purchases/consumer";
import type { RechargeJob } from "../../src/purchases/messages";
import { reconcile } from "../../src/purchases/reconciler";
import { stripeFor } from "../../src/stripe/client";
import {
  audit,
  balanceOf,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { autoRechargingAccount, loseQueueSends } from "../helpers/recharge";
import {
  chargesOf,
  eventually,
  injectFaults,
  invoiceById,
  invoicePayments,
  invoicesOf,
  payCalls,
  purchaseCalls,
} from "../helpers/stripe";
import { readLedger } from "../simulation/observe";

const db = dbFor(env.DB);
const SECRET = "whsec_test_tollgate";
const cryptoProvider = Stripe.createSubtleCryptoProvider();
const DAY_MS = 86_400_000;

afterEach(() => vi.restoreAllMocks());

/** An auto-recharge whose job the test holds (not yet processed). */
async function heldRecharge(card = "pm_card_visa") {
  const staged = await autoRechargingAccount(card);
  const jobs = await loseQueueSends(staged.account);
  await setBalance(staged.account, { monthly: 0, purchased: 100 });
  const job = jobs[0];
  expect(job).toBeDefined();
  return { ...staged, job: job as RechargeJob };
}

async function settings(account: TestAccount) {
  return json<{
    enabled: boolean;
    pending: boolean;
    last_failure: null | { code: string; action_url: string | null };
  }>(await gateway("/v1/account/auto-recharge", { key: account.api_key }));
}

async function history(account: TestAccount) {
  return (
    await json<{
      data: Array<{
        id: string;
        type: string;
        status: string;
        amount_cents: number;
        invoice_url: string | null;
        action_url: string | null;
      }>;
    }>(await gateway("/v1/account/transactions?limit=100", { key: account.api_key }))
  ).data;
}

async function emailsOf(accountId: string) {
  return db.select().from(emails).where(eq(emails.accountId, accountId)).all();
}

/** What a recharge left in the ledger: its purchase entries (each is one grant). */
async function grantsOf(accountId: string, rechargeId: string) {
  const ledger = await readLedger(accountId);
  return ledger.ledger.filter((e) => e.kind === "purchase" && e.ref === rechargeId);
}

/** One invoice for the recharge, paid by one payment, one charge, one grant. */
async function expectPaidOnce(account: TestAccount, rechargeId: string, purchased: number) {
  const customer = account.stripe_customer_id as string;
  const invoices = await invoicesOf(customer);
  expect(invoices.map((i) => [i.status, i.metadata.recharge_id])).toEqual([["paid", rechargeId]]);
  const payments = await invoicePayments(invoices[0]?.id as string);
  expect(payments.filter((p) => p.status === "paid")).toHaveLength(1);
  expect(await chargesOf(customer)).toHaveLength(1);
  expect(await grantsOf(account.id, rechargeId)).toHaveLength(1);
  expect((await balanceOf(account)).purchased).toBe(purchased);
  expect((await getTransaction(db, rechargeId))?.status).toBe("succeeded");
  expect((await audit(account.id)).consistent).toBe(true);
  return invoices[0];
}

async function deliver(evt: unknown) {
  const payload = JSON.stringify(evt);
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: SECRET,
    cryptoProvider,
  });
  const res = await gateway("/webhooks/stripe", {
    method: "POST",
    body: payload,
    headers: { "Stripe-Signature": signature },
  });
  expect(res.status).toBe(200);
  return json<{ received: boolean; duplicate?: boolean; handled?: boolean }>(res);
}

/** The events the local Stripe server emitted for an invoice, oldest first. */
async function eventsFor(invoiceId: string, type: string) {
  const res = await fetch(`${env.STRIPE_API_URL}/v1/events?type=${type}&limit=100`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  const page = await json<{ data: Array<{ id: string; data: { object: { id: string } } }> }>(res);
  return page.data.filter((e) => e.data.object.id === invoiceId).reverse();
}

/** A signed-looking event around an invoice snapshot (the webhook route checks the signature). */
function invoiceEvent(type: string, invoice: Record<string, unknown>) {
  return {
    id: `evt_${crypto.randomUUID().replaceAll("-", "")}`,
    object: "event",
    type,
    created: Math.floor(Date.now() / 1000),
    api_version: "2025-01-27.acacia",
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object: invoice },
  };
}

describe("a crash between invoice steps (money rule 5)", () => {
  it("losing each step's answer in turn still makes one invoice, one charge, one grant", async () => {
    const { account, pm, customer, job } = await heldRecharge();
    const id = job.recharge_id;
    // 1. The invoice is created, its answer lost.
    await injectFaults([
      { method: "POST", path: "/v1/invoices", kind: "drop_after", times: 1, match: { customer } },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    const [invoice] = await invoicesOf(customer);
    expect(invoice?.status).toBe("draft");
    const invoiceId = invoice?.id as string;
    // 2. Its item is added, the answer lost.
    await injectFaults([
      {
        method: "POST",
        path: "/v1/invoiceitems",
        kind: "drop_after",
        times: 1,
        match: { invoice: invoiceId },
      },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    // 3. It is finalized, the answer lost.
    await injectFaults([
      { method: "POST", path: `/v1/invoices/${invoiceId}/finalize`, kind: "drop_after", times: 1 },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    expect((await invoiceById(invoiceId)).status).toBe("open");
    // 4. It is paid, the answer lost.
    await injectFaults([
      { method: "POST", path: `/v1/invoices/${invoiceId}/pay`, kind: "drop_after", times: 1 },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    expect((await balanceOf(account)).purchased).toBe(100);
    // 5. The next delivery finds the invoice paid and only completes what is missing; a
    //    redelivery after that changes nothing.
    expect(await processRecharge(job, env)).toBe("succeeded");
    expect(await processRecharge(job, env)).toBe("succeeded");
    await expectPaidOnce(account, id, 1100);

    // Every step ran exactly once, under its key; nothing was created a second time (the
    // invoice was found by the recharge id in its metadata, not by an idempotency replay).
    const calls = await purchaseCalls(customer);
    expect(calls.map((c) => [c.path, c.idempotency_key, c.fault])).toEqual([
      ["/v1/invoices", `${id}:invoice`, "drop_after"],
      ["/v1/invoiceitems", `${id}:item`, "drop_after"],
      [`/v1/invoices/${invoiceId}/finalize`, `${id}:finalize`, "drop_after"],
      [`/v1/invoices/${invoiceId}/pay`, `${id}:pay`, "drop_after"],
    ]);
    expect(calls[3]?.params).toMatchObject({ payment_method: pm, off_session: "true" });
    const row = await getTransaction(db, id);
    expect(row).toMatchObject({
      invoiceId,
      invoiceUrl: expect.stringMatching(new RegExp(`/i/${invoiceId}$`)),
    });
    expect(await emailsOf(account.id)).toHaveLength(1);
  });

  it("a Stripe 5xx at any step is retried with the same keys: still one of each", async () => {
    const { account, customer, job } = await heldRecharge();
    await injectFaults([
      { method: "POST", path: "/v1/invoiceitems", kind: "500", times: 1, match: { customer } },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow(/unknown error/i);
    expect(await processRecharge(job, env)).toBe("succeeded");
    await expectPaidOnce(account, job.recharge_id, 1100);
    const items = (await purchaseCalls(customer)).filter((c) => c.path === "/v1/invoiceitems");
    expect(items.map((c) => [c.status, c.idempotency_key])).toEqual([
      [500, `${job.recharge_id}:item`],
      [200, `${job.recharge_id}:item`],
    ]);
  });
});

describe("an invoice the customer's balance pays at finalization", () => {
  it("succeeds without a card payment", async () => {
    const { account, customer, job } = await heldRecharge();
    // A Stripe customer credit balance (negative is credit) covering the whole package.
    await stripeFor(env).customers.update(customer, { balance: -700 });
    expect(await processRecharge(job, env)).toBe("succeeded");
    // No card payment: the balance paid it at finalization.
    const [paid] = await invoicesOf(customer);
    expect(paid).toMatchObject({ status: "paid", amount_paid: 0, total: 700 });
    expect(await payCalls(customer)).toEqual([]);
    expect(await chargesOf(customer)).toEqual([]);
    expect(await grantsOf(account.id, job.recharge_id)).toHaveLength(1);
    expect((await balanceOf(account)).purchased).toBe(1100);
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "succeeded",
      invoiceId: paid?.id,
      invoiceUrl: paid?.hosted_invoice_url,
      paymentIntentId: null,
    });
    expect((await stripeFor(env).customers.retrieve(customer)) as Stripe.Customer).toMatchObject({
      balance: 0,
    });
  });
});

describe("a payment that needs authentication", () => {
  async function needingAction() {
    const staged = await heldRecharge("pm_card_authenticationRequired");
    expect(await processRecharge(staged.job, env)).toBe("requires_action");
    const [invoice] = await invoicesOf(staged.customer);
    expect(invoice?.status).toBe("open");
    return { ...staged, invoice: invoice as NonNullable<typeof invoice> };
  }

  it("waits on the hosted invoice page: requires_action with its link, auto-recharge off, emailed", async () => {
    const { account, job, invoice } = await needingAction();
    const actionUrl = invoice.hosted_invoice_url as string;
    expect(actionUrl).toMatch(new RegExp(`/i/${invoice.id}$`));
    const row = await getTransaction(db, job.recharge_id);
    expect(row).toMatchObject({
      status: "requires_action",
      actionUrl,
      invoiceId: invoice.id,
      failureCode: "authentication_required",
    });
    const [tx] = (await history(account)).filter((t) => t.id === job.recharge_id);
    expect(tx).toMatchObject({ status: "requires_action", action_url: actionUrl });
    expect(await settings(account)).toMatchObject({
      enabled: false,
      last_failure: { code: "authentication_required", action_url: actionUrl },
    });
    expect((await balanceOf(account)).purchased).toBe(100);
    const mails = await emailsOf(account.id);
    expect(mails.map((m) => m.kind)).toEqual(["recharge_requires_action"]);
    expect(mails[0]?.textBody).toContain(`Complete the payment here: ${actionUrl}`);
    // A redelivered job charges nothing more and sends nothing more.
    expect(await processRecharge(job, env)).toBe("requires_action");
    expect(await payCalls(account.stripe_customer_id as string)).toHaveLength(1);
    expect(await emailsOf(account.id)).toHaveLength(1);
  });

  it("paid later on the hosted page: granted once by invoice.paid, also when redelivered", async () => {
    const { account, job, invoice } = await needingAction();
    // The customer authenticates on Stripe's page.
    const page = await fetch(`${env.STRIPE_API_URL}/i/${invoice.id}/pay`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ authenticate: "true" }),
      redirect: "manual",
    });
    expect(page.status).toBe(303);
    await page.arrayBuffer();
    expect((await invoiceById(invoice.id)).status).toBe("paid");
    // Stripe's invoice.paid reaches the gateway (delivered here, signed, as Stripe would).
    const [paidEvent] = await eventsFor(invoice.id, "invoice.paid");
    expect(paidEvent).toBeDefined();
    expect(await deliver(paidEvent)).toMatchObject({ handled: true });
    await expectPaidOnce(account, job.recharge_id, 1100);
    // Redelivered twice (the same event id): still once.
    expect(await deliver(paidEvent)).toMatchObject({ duplicate: true });
    expect(await deliver(paidEvent)).toMatchObject({ duplicate: true });
    // And as a different event about the same invoice: still once.
    expect(await deliver({ ...paidEvent, id: `${paidEvent?.id}_copy` })).toMatchObject({
      handled: true,
    });
    await expectPaidOnce(account, job.recharge_id, 1100);
    const row = await getTransaction(db, job.recharge_id);
    expect(row).toMatchObject({ status: "succeeded", actionUrl: null });
    expect(row?.invoiceUrl).toBe(invoice.hosted_invoice_url);
    // The settings' last failure is cleared by the grant; the customer turns auto-recharge on.
    expect((await settings(account)).last_failure).toBeNull();
    const kinds = (await emailsOf(account.id)).map((m) => m.kind).sort();
    expect(kinds).toEqual(["recharge_requires_action", "recharge_succeeded"]);
  });

  it("not completed within 3 days: the reconciler voids the invoice and fails it, nothing granted", async () => {
    const { account, customer, job, invoice } = await needingAction();
    // Younger than 3 days: left waiting.
    const early = await reconcile(env, { now: Date.now() + 2 * DAY_MS });
    expect(early.voided).not.toContain(job.recharge_id);
    expect((await invoiceById(invoice.id)).status).toBe("open");

    const report = await reconcile(env, { now: Date.now() + 4 * DAY_MS });
    expect(report.voided).toContain(job.recharge_id);
    expect(report.failed).toContain(job.recharge_id);
    expect((await invoiceById(invoice.id)).status).toBe("void");
    const voids = (await purchaseCalls(customer)).filter((c) => c.path.endsWith("/void"));
    expect(voids.map((c) => c.idempotency_key)).toEqual([`${job.recharge_id}:void`]);
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "failed",
      failureCode: "authentication_not_completed",
      actionUrl: null,
    });
    expect(await grantsOf(account.id, job.recharge_id)).toEqual([]);
    expect(await chargesOf(customer)).toEqual([]);
    expect((await balanceOf(account)).purchased).toBe(100);
    expect(await settings(account)).toMatchObject({
      enabled: false,
      last_failure: { code: "authentication_not_completed", action_url: null },
    });
    const failed = (await emailsOf(account.id)).find((m) => m.kind === "recharge_failed");
    expect(failed?.textBody).toContain("No credits were added");
    expect(failed?.textBody).toContain(`Invoice: ${invoice.hosted_invoice_url}`);
    // Again: nothing more happens.
    const again = await reconcile(env, { now: Date.now() + 5 * DAY_MS });
    expect(again.voided).not.toContain(job.recharge_id);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("purchase invoice events in any order, duplicated", () => {
  const ORDERS: Array<[string, string[]]> = [
    ["paid first", ["invoice.paid", "invoice.voided", "invoice.payment_action_required"]],
    ["voided first", ["invoice.voided", "invoice.paid", "invoice.payment_action_required"]],
    ["action, void, paid", ["invoice.payment_action_required", "invoice.voided", "invoice.paid"]],
    ["uncollectible, paid", ["invoice.marked_uncollectible", "invoice.paid"]],
  ];
  for (const [name, order] of ORDERS) {
    it(`${name}: the paid invoice grants exactly once; nothing else undoes it`, async () => {
      const { account, job } = await heldRecharge();
      // The D1 row exists (pending) before its invoice: the ledger writes it with the job.
      await processRecharge(job, env, {
        settled: {
          status: "requires_action",
          code: "authentication_required",
          message: "staged",
          actionUrl: null,
          invoiceId: null,
          invoiceUrl: null,
          paymentIntentId: null,
        },
      });
      const snapshot = {
        id: `in_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`,
        object: "invoice",
        customer: account.stripe_customer_id,
        billing_reason: "manual",
        parent: null,
        collection_method: "charge_automatically",
        amount_paid: 700,
        total: 700,
        hosted_invoice_url: "https://invoice.stripe.test/i/staged",
        metadata: { recharge_id: job.recharge_id, account_id: account.id },
        lines: { object: "list", data: [] },
      };
      const statusOf: Record<string, string> = {
        "invoice.paid": "paid",
        "invoice.voided": "void",
        "invoice.marked_uncollectible": "uncollectible",
        "invoice.payment_action_required": "open",
      };
      for (const type of order) {
        const evt = invoiceEvent(type, { ...snapshot, status: statusOf[type] });
        await deliver(evt);
        await deliver(evt); // a redelivery
      }
      expect(await grantsOf(account.id, job.recharge_id)).toHaveLength(1);
      expect((await balanceOf(account)).purchased).toBe(1100);
      expect(await getTransaction(db, job.recharge_id)).toMatchObject({
        status: "succeeded",
        invoiceId: snapshot.id,
        invoiceUrl: snapshot.hosted_invoice_url,
      });
      const mails = (await emailsOf(account.id)).filter((m) => m.kind === "recharge_succeeded");
      expect(mails).toHaveLength(1);
      expect((await audit(account.id)).consistent).toBe(true);
    });
  }

  it("voided or uncollectible alone: failed, nothing granted, auto-recharge off", async () => {
    for (const type of ["invoice.voided", "invoice.marked_uncollectible"]) {
      const { account, job } = await heldRecharge();
      await processRecharge(job, env, {
        settled: {
          status: "requires_action",
          code: "authentication_required",
          message: "staged",
          actionUrl: "https://invoice.stripe.test/i/x",
          invoiceId: null,
          invoiceUrl: null,
          paymentIntentId: null,
        },
      });
      const evt = invoiceEvent(type, {
        id: `in_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`,
        object: "invoice",
        customer: account.stripe_customer_id,
        billing_reason: "manual",
        parent: null,
        status: type === "invoice.voided" ? "void" : "uncollectible",
        metadata: { recharge_id: job.recharge_id },
        lines: { object: "list", data: [] },
      });
      expect(await deliver(evt)).toMatchObject({ handled: true });
      expect(await getTransaction(db, job.recharge_id)).toMatchObject({
        status: "failed",
        failureCode: type === "invoice.voided" ? "invoice_voided" : "invoice_uncollectible",
      });
      expect(await grantsOf(account.id, job.recharge_id)).toEqual([]);
      expect((await balanceOf(account)).purchased).toBe(100);
      expect((await settings(account)).enabled).toBe(false);
    }
  });

  it("a declined purchase keeps its reason when a settlement that read it pending writes late", async () => {
    // The consumer voids a declined purchase's invoice before it records the decline, so an
    // invoice.voided delivery can read the row while it is still pending and write after the
    // consumer. Failed is final, in D1 as in the ledger: the first reason stands.
    const { account, job } = await heldRecharge();
    await processRecharge(job, env, {
      settled: {
        status: "failed",
        code: "card_declined",
        message: "Your card was declined.",
        invoiceId: null,
        invoiceUrl: null,
        paymentIntentId: null,
      },
    });
    await markPurchaseFailed(db, job.recharge_id, {
      code: "invoice_voided",
      message: "The invoice was voided.",
      invoiceId: null,
      invoiceUrl: null,
      paymentIntentId: null,
    });
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "failed",
      failureCode: "card_declined",
      failureMessage: "Your card was declined.",
    });
    expect((await settings(account)).last_failure).toMatchObject({ code: "card_declined" });
  });

  it("an invoice of another customer, or with no recharge id, changes nothing", async () => {
    const { account, job } = await heldRecharge();
    const other = await createAccount();
    const base = {
      id: "in_foreign",
      object: "invoice",
      billing_reason: "manual",
      parent: null,
      status: "paid",
      lines: { object: "list", data: [] },
    };
    expect(
      await deliver(
        invoiceEvent("invoice.paid", {
          ...base,
          customer: other.stripe_customer_id,
          metadata: { recharge_id: job.recharge_id },
        }),
      ),
    ).toMatchObject({ handled: false });
    expect(
      await deliver(
        invoiceEvent("invoice.paid", {
          ...base,
          customer: account.stripe_customer_id,
          metadata: {},
        }),
      ),
    ).toMatchObject({ handled: false });
    expect(await grantsOf(account.id, job.recharge_id)).toEqual([]);
    expect((await getTransaction(db, job.recharge_id))?.status).toBe("pending");
  });
});

describe("monthly grants from paid subscription invoices", () => {
  it("carry the amount paid and the invoice page", async () => {
    const account = await createAccount("starter");
    const now = Math.floor(Date.now() / 1000);
    const invoice = {
      id: `in_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`,
      object: "invoice",
      customer: account.stripe_customer_id,
      status: "paid",
      billing_reason: "subscription_cycle",
      amount_paid: 1900,
      hosted_invoice_url: "https://invoice.stripe.test/i/renewal",
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_r" } },
      metadata: {},
      lines: {
        object: "list",
        data: [
          {
            id: "il_1",
            object: "line_item",
            period: { start: now + 60, end: now + 31 * 86_400 },
            pricing: {
              type: "price_details",
              price_details: { price: env.STRIPE_PRICE_STARTER, product: "prod_x" },
            },
          },
        ],
      },
    };
    expect(await deliver(invoiceEvent("invoice.paid", invoice))).toMatchObject({ handled: true });
    const [grant] = (await history(account)).filter((t) => t.id === invoice.id);
    expect(grant).toMatchObject({
      type: "monthly_grant",
      status: "succeeded",
      amount_cents: 1900,
      invoice_url: "https://invoice.stripe.test/i/renewal",
      action_url: null,
    });
  });
});

describe("a configured package price", () => {
  it("bills the package's Stripe Price on the invoice item", async () => {
    const stripe = stripeFor(env);
    const price = await stripe.prices.create({
      currency: "usd",
      unit_amount: 700,
      product_data: { name: "1,000 credits" },
    });
    const { account, customer, job } = await heldRecharge();
    expect(
      await processRecharge(job, { ...env, STRIPE_PRICE_CREDITS_1000: price.id } as typeof env),
    ).toBe("succeeded");
    const item = (await purchaseCalls(customer)).find((c) => c.path === "/v1/invoiceitems");
    expect(item?.params).toMatchObject({ pricing: { price: price.id } });
    expect(item?.params).not.toHaveProperty("amount");
    await eventually(async () => expectPaidOnce(account, job.recharge_id, 1100));
  });
});

describe("a declined purchase's invoice is voided (money rules 6, 10)", () => {
  it("a decline voids the invoice under `<id>:void`: failed, nothing granted, nothing payable", async () => {
    const { account, customer, job } = await heldRecharge("pm_card_chargeCustomerFail");
    expect(await processRecharge(job, env)).toBe("failed");
    const invoices = await invoicesOf(customer);
    expect(invoices.map((i) => i.status)).toEqual(["void"]);
    const voids = (await purchaseCalls(customer)).filter((c) => c.path.endsWith("/void"));
    expect(voids.map((c) => c.idempotency_key)).toEqual([`${job.recharge_id}:void`]);
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "failed",
      failureCode: "card_declined",
      invoiceId: invoices[0]?.id,
    });
    expect(await grantsOf(account.id, job.recharge_id)).toEqual([]);
    expect(await chargesOf(customer)).toEqual([]);
    expect(await settings(account)).toMatchObject({
      enabled: false,
      pending: false,
      last_failure: { code: "card_declined", action_url: null },
    });
    // A redelivered job voids nothing more and charges nothing.
    expect(await processRecharge(job, env)).toBe("failed");
    expect((await purchaseCalls(customer)).filter((c) => c.path.endsWith("/void"))).toHaveLength(1);
    expect(await payCalls(customer)).toHaveLength(1);
    expect((await emailsOf(account.id)).map((m) => m.kind)).toEqual(["recharge_failed"]);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a void that fails leaves it pending; the reconciler voids it later, charging nothing", async () => {
    const { account, customer, pm, job } = await heldRecharge("pm_card_chargeCustomerFail");
    // First attempt: the invoice is made and finalized, then paying it gets a Stripe 5xx.
    await injectFaults([
      {
        method: "POST",
        path: "/v1/invoices/*",
        kind: "500",
        times: 1,
        match: { payment_method: pm },
      },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    const [invoice] = await invoicesOf(customer);
    expect(invoice?.status).toBe("open");
    // Second attempt: declined, and the void gets a Stripe 5xx.
    await injectFaults([
      { method: "POST", path: `/v1/invoices/${invoice?.id}/void`, kind: "500", times: 1 },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    // Not settled as failed while its invoice is payable: still pending, in flight.
    expect((await getTransaction(db, job.recharge_id))?.status).toBe("pending");
    expect((await invoiceById(invoice?.id as string)).status).toBe("open");
    expect(await settings(account)).toMatchObject({ enabled: true, pending: true });

    const report = await reconcile(env, { now: Date.now() + 60_000 });
    expect(report.failed).toContain(job.recharge_id);
    expect((await invoiceById(invoice?.id as string)).status).toBe("void");
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "failed",
      failureCode: "card_declined",
    });
    expect(await settings(account)).toMatchObject({ enabled: false, pending: false });
    expect(await grantsOf(account.id, job.recharge_id)).toEqual([]);
    expect(await chargesOf(customer)).toEqual([]);
    expect(await invoicesOf(customer)).toHaveLength(1);
    expect((await emailsOf(account.id)).map((m) => m.kind)).toEqual(["recharge_failed"]);
  });

  it("a declined invoice cannot be paid later: a top-up after it keeps the month at the limit", async () => {
    const { account, customer, job } = await heldRecharge("pm_card_chargeCustomerFail");
    const limit = await gateway("/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ monthly_spend_limit_cents: 700 }),
    });
    expect(limit.status).toBe(200);
    await limit.arrayBuffer();
    const jobs = await loseQueueSends(account);
    expect(await processRecharge(job, env)).toBe("failed");
    const [declined] = await invoicesOf(customer);
    expect(declined?.status).toBe("void");

    const { attachCard } = await import("../helpers/stripe");
    await attachCard(account, "pm_card_visa");
    const top = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(top.status).toBe(202);
    await top.arrayBuffer();
    expect(await processRecharge(jobs[0] as RechargeJob, env)).toBe("succeeded");

    // The old invoice's page refuses payment: it is void.
    const page = await fetch(`${env.STRIPE_API_URL}/i/${declined?.id}/pay`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ payment_method: "pm_card_visa" }),
      redirect: "manual",
    });
    await page.arrayBuffer();
    expect((await invoiceById(declined?.id as string)).status).toBe("void");
    expect(await eventsFor(declined?.id as string, "invoice.paid")).toEqual([]);
    const limits = await json<{ spent_this_month_cents: number }>(
      await gateway("/v1/account/limits", { key: account.api_key }),
    );
    expect(limits.spent_this_month_cents).toBe(700);
    expect((await balanceOf(account)).purchased).toBe(1_100);
    expect((await getTransaction(db, job.recharge_id))?.status).toBe("failed");
    expect(await chargesOf(customer)).toHaveLength(1);
  });

  it("a paid invoice for a purchase recorded failed (a void that never happened) is granted and counted", async () => {
    // Cannot happen once the invoice is void; if it does (money was taken), credits are given
    // (money rule 7) and the purchase counts towards the month's spending again.
    const { account, job } = await heldRecharge("pm_card_chargeCustomerFail");
    expect(await processRecharge(job, env)).toBe("failed");
    const row = await getTransaction(db, job.recharge_id);
    expect(
      await processRecharge(job, env, {
        settled: {
          status: "succeeded",
          invoiceId: row?.invoiceId ?? null,
          invoiceUrl: row?.invoiceUrl ?? null,
          paymentIntentId: null,
        },
      }),
    ).toBe("succeeded");
    expect(await grantsOf(account.id, job.recharge_id)).toHaveLength(1);
    expect((await balanceOf(account)).purchased).toBe(1_100);
    const limits = await json<{ spent_this_month_cents: number }>(
      await gateway("/v1/account/limits", { key: account.api_key }),
    );
    expect(limits.spent_this_month_cents).toBe(job.amount_cents);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("an auto-recharge waiting for authentication is in flight (money rule 10)", () => {
  it("re-enabling auto-recharge starts no second purchase: one open invoice", async () => {
    const { account, customer, job } = await heldRecharge("pm_card_authenticationRequired");
    const jobs = await loseQueueSends(account);
    expect(await processRecharge(job, env)).toBe("requires_action");
    const [invoice] = await invoicesOf(customer);
    const res = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({
      enabled: true,
      pending: true,
      last_failure: {
        code: "authentication_required",
        action_url: invoice?.hosted_invoice_url,
        recharge_id: job.recharge_id,
      },
    });
    expect(jobs).toEqual([]);
    // Requests at zero trigger nothing either.
    await setBalance(account, { monthly: 0, purchased: 50 });
    expect(jobs).toEqual([]);
    expect((await invoicesOf(customer)).map((i) => i.status)).toEqual(["open"]);

    // Nor is a top-up started (issue 18): completing the waiting one would pay twice for one
    // shortfall. The refusal names what waits and where to complete it.
    const top = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    const refused = await expectError(top, 409, "payment_pending");
    expect(refused.error).toMatchObject({
      purchase: {
        id: job.recharge_id,
        type: "auto_recharge",
        action_url: invoice?.hosted_invoice_url,
      },
    });
    expect(jobs).toEqual([]);
    const limits = await json<{ spent_this_month_cents: number }>(
      await gateway("/v1/account/limits", { key: account.api_key }),
    );
    expect(limits.spent_this_month_cents).toBe(job.amount_cents);
  });

  it("the 3-day void leaves alone an auto-recharge the customer turned back on", async () => {
    const { account, customer, job } = await heldRecharge("pm_card_authenticationRequired");
    expect(await processRecharge(job, env)).toBe("requires_action");
    const { attachCard } = await import("../helpers/stripe");
    await attachCard(account, "pm_card_visa");
    await setBalance(account, { monthly: 500, purchased: 100 });
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    expect(on.status).toBe(200);
    await on.arrayBuffer();

    const report = await reconcile(env, { now: Date.now() + 4 * DAY_MS });
    expect(report.voided).toContain(job.recharge_id);
    expect((await invoicesOf(customer)).map((i) => i.status)).toEqual(["void"]);
    expect((await getTransaction(db, job.recharge_id))?.status).toBe("failed");
    // Still on; the last failure (still this recharge) no longer links a payable page.
    expect(await settings(account)).toMatchObject({
      enabled: true,
      pending: false,
      last_failure: { code: "authentication_not_completed", action_url: null },
    });
    expect((await audit(account.id)).consistent).toBe(true);
  });
});
