import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { emails } from "../../src/db/schema";
import { getTransaction } from "../../src/db/transactions";
import { sendEmailOnce } from "../../src/delivery/mailer";
import { ledgerFor } from "../../src/ledger/client";
import { processRecharge } from "../../src/purchases/consumer";
import type { RechargeJob } from "../../src/purchases/messages";
import { chargeRecharge, outcomeOfInvoice } from "../../src/purchases/payments";
import { reconcile } from "../../src/purchases/reconciler";
import { stripeFor } from "../../src/stripe/client";
import { failPurchaseUpdates } from "../helpers/d1-faults";
import { audit, balanceOf, createAccount, gateway, json, setBalance } from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import { autoRechargingAccount, loseQueueSends } from "../helpers/recharge";
import {
  attachCard,
  chargesOf,
  eventually,
  injectFaults,
  invoicesOf,
  payCalls,
  purchaseCalls,
} from "../helpers/stripe";

const db = dbFor(env.DB);

afterEach(() => vi.restoreAllMocks());

describe("a charge whose outcome is unknown", () => {
  it("is settled by the reconciler about a minute later, never charged twice", async () => {
    const { account, pm, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const [job] = jobs;
    expect(job).toBeDefined();
    // The consumer charged the card, then the worker died before recording anything.
    const outcome = await chargeRecharge(stripeFor(env), job as RechargeJob, {
      customerId: customer,
      paymentMethodId: pm,
    });
    expect(outcome.status).toBe("succeeded");
    expect((await balanceOf(account)).purchased).toBe(100);
    const report = await reconcile(env, { now: Date.now() + 61_000 });
    expect(report.credited).toContain(job?.recharge_id);
    expect((await balanceOf(account)).purchased).toBe(1_100);
    expect((await invoicesOf(customer)).map((i) => i.status)).toEqual(["paid"]);
    expect(await chargesOf(customer)).toHaveLength(1);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a recharge younger than the settle delay is left to the queue", async () => {
    const { account } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const report = await reconcile(env, { now: Date.now() + 5_000 });
    expect(report.redriven).not.toContain(jobs[0]?.recharge_id);
    expect(report.credited).not.toContain(jobs[0]?.recharge_id);
  });
});

describe("a retry after the card was replaced", () => {
  it("pays with what the recharge was created with, so Stripe replays instead of refusing the key", async () => {
    const { account, pm, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const job = jobs[0] as RechargeJob;
    // The first attempt creates the invoice, but its answer is lost on the way back.
    await injectFaults([
      { method: "POST", path: "/v1/invoices", kind: "drop_after", times: 1, match: { customer } },
    ]);
    await expect(processRecharge(job, env)).rejects.toThrow();
    // Meanwhile the customer puts another card on file.
    await attachCard(account, "pm_card_mastercard");
    expect(await processRecharge(job, env)).toBe("succeeded");
    expect((await balanceOf(account)).purchased).toBe(1_100);
    const invoices = await invoicesOf(customer);
    expect(invoices.map((i) => [i.status, i.default_payment_method])).toEqual([["paid", pm]]);
    const pays = await payCalls(customer);
    expect(pays.map((c) => c.params.payment_method)).toEqual([pm]);
    const charges = await chargesOf(customer);
    expect(charges).toHaveLength(1);
  });

  it("an idempotency error is resolved by looking up what the first attempt did", async () => {
    const { account, pm, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const job = jobs[0] as RechargeJob;
    await injectFaults([
      { method: "POST", path: "/v1/invoices", kind: "drop_after", times: 1, match: { customer } },
    ]);
    const stripe = stripeFor(env);
    await expect(
      chargeRecharge(stripe, job, { customerId: customer, paymentMethodId: pm }),
    ).rejects.toThrow();
    const other = await attachCard(account, "pm_card_mastercard");
    // Stripe's search index lags writes (up to a minute): the retry does not see the invoice
    // and sends the creation again, with other parameters under the same key. Stripe refuses
    // them; the first attempt's invoice decides, and is paid with its own card.
    vi.spyOn(stripe.invoices, "search").mockResolvedValueOnce({
      object: "search_result",
      data: [],
      has_more: false,
      next_page: null,
      url: "/v1/invoices/search",
    } as never);
    const outcome = await chargeRecharge(stripe, job, {
      customerId: customer,
      paymentMethodId: other,
    });
    expect(outcome.status).toBe("succeeded");
    const creates = (await purchaseCalls(customer)).filter((c) => c.path === "/v1/invoices");
    expect(creates.map((c) => c.status)).toEqual([200, 400]);
    const invoices = await invoicesOf(customer);
    expect(invoices.map((i) => [i.status, i.default_payment_method])).toEqual([["paid", pm]]);
    expect(await chargesOf(customer)).toHaveLength(1);
  });
});

describe("a declined recharge seen by someone else first", () => {
  it("records the decline, not the void: a redelivery, the reconciler and the invoice.voided webhook read it on the void invoice", async () => {
    const { account, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    const declining = await attachCard(account, "pm_card_chargeCustomerFail");
    await setBalance(account, { monthly: 0, purchased: 100 });
    const job = jobs[0] as RechargeJob;
    const stripe = stripeFor(env);
    const payer = { customerId: customer, paymentMethodId: declining };
    const first = await chargeRecharge(stripe, job, payer);
    expect(first).toMatchObject({ status: "failed", code: "card_declined" });
    // The same job again, as a redelivery racing the first one would run it after the first
    // voided the invoice and before it told the ledger: the void invoice says why it failed
    // (before, this answered "invoice_voided", and won the race to the ledger).
    const again = await chargeRecharge(stripe, job, payer);
    expect(again).toMatchObject({
      status: "failed",
      code: "card_declined",
      message: first.status === "failed" ? first.message : "",
    });
    const invoices = await invoicesOf(customer);
    expect(invoices.map((i) => i.status)).toEqual(["void"]);
    expect(invoices[0]?.metadata).toMatchObject({ failure_code: "card_declined" });
    // What the reconciler and the `invoice.voided` webhook make of that invoice.
    const voided = await stripe.invoices.retrieve(invoices[0]?.id ?? "");
    expect(outcomeOfInvoice(voided)).toMatchObject({ status: "failed", code: "card_declined" });
  });
});

describe("top-up replays", () => {
  it("answer the purchase's current status, not pending forever", async () => {
    const account = await createAccount();
    await attachCard(account);
    const send = () =>
      gateway("/v1/account/top-ups", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ package: "credits_1000" }),
        headers: { "Idempotency-Key": "buy-once" },
      });
    const first = await json<{ id: string; status: string }>(await send());
    expect(first.status).toBe("pending");
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_000));
    const replay = await send();
    expect(replay.status).toBe(202);
    expect(replay.headers.get("Idempotent-Replayed")).toBe("true");
    expect(await json(replay)).toMatchObject({ id: first.id, status: "succeeded" });
  });

  it("a declined top-up replays as failed", async () => {
    const account = await createAccount();
    await attachCard(account, "pm_card_chargeCustomerFail");
    const send = () =>
      gateway("/v1/account/top-ups", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ package: "credits_1000" }),
        headers: { "Idempotency-Key": "declined-once" },
      });
    const first = await json<{ id: string }>(await send());
    await eventually(async () =>
      expect((await getTransaction(db, first.id))?.status).toBe("failed"),
    );
    expect(await json(await send())).toMatchObject({ id: first.id, status: "failed" });
  });
});

describe("emails", () => {
  it("two racing deliveries of the same email send it once", async () => {
    const account = await createAccount();
    let sends = 0;
    vi.spyOn(env.EMAIL, "send").mockImplementation(async () => {
      sends++;
      await new Promise((r) => setTimeout(r, 50));
      return { messageId: "m" } as never;
    });
    const email = {
      ref: `race:${crypto.randomUUID()}`,
      accountId: account.id,
      kind: "test",
      to: "someone@example.com",
      subject: "Once",
      text: "Only once.",
    };
    const results = await Promise.all([
      sendEmailOnce(env, db, email),
      sendEmailOnce(env, db, email),
      sendEmailOnce(env, db, email),
    ]);
    expect(sends).toBe(1);
    expect(results.filter((r) => r === "sent")).toHaveLength(1);
  });
});

describe("a purchase's D1 row is the ledger's projection", () => {
  it("a paid recharge whose row cannot be updated is credited at once; the row and its email follow from the outbox", async () => {
    expectLogs([/purchase row or its email not written yet/]);
    const { account, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const job = jobs[0] as RechargeJob;
    const failing = failPurchaseUpdates();
    // The consumer charges Stripe and tells the ledger; D1 failing loses nothing of it.
    expect(await processRecharge(job, env)).toBe("succeeded");
    expect((await balanceOf(account)).purchased).toBe(1_100);
    expect((await getTransaction(db, job.recharge_id))?.status).toBe("pending");
    failing.mockRestore();
    expect(await runDurableObjectAlarm(ledgerFor(env, account.id))).toBe(true);
    expect(await getTransaction(db, job.recharge_id)).toMatchObject({
      status: "succeeded",
      invoiceId: expect.stringMatching(/^in_/),
    });
    const sent = await db.select().from(emails).where(eq(emails.accountId, account.id)).all();
    expect(sent.filter((e) => e.ref === `recharge_succeeded:${job.recharge_id}`)).toHaveLength(1);
    // A redelivery charges nothing and writes nothing twice.
    expect(await processRecharge(job, env)).toBe("succeeded");
    expect(await chargesOf(customer)).toHaveLength(1);
    expect((await balanceOf(account)).purchased).toBe(1_100);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});
