import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { accounts, emails, transactions } from "../../src/db/schema";
import worker from "../../src/index";
import { ledgerFor } from "../../src/ledger/client";
import type { RechargeJob } from "../../src/purchases/messages";
import {
  admin,
  audit,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import {
  attachCard,
  chargesOf,
  eventually,
  injectFaults,
  invoicePayments,
  invoicesOf,
  payCalls,
  paymentIntentsOf,
  purchaseCalls,
} from "../helpers/stripe";
import { readLedger } from "../simulation/observe";

const db = dbFor(env.DB);

async function enableAutoRecharge(account: TestAccount, pkg = "credits_1000") {
  const res = await gateway("/v1/account/auto-recharge", {
    method: "PUT",
    key: account.api_key,
    body: JSON.stringify({ enabled: true, package: pkg }),
  });
  expect(res.status).toBe(200);
  return json<{ enabled: boolean; package: string; pending: boolean }>(res);
}

async function settings(account: TestAccount) {
  return json<{
    enabled: boolean;
    package: string | null;
    pending: boolean;
    last_failure: null | { code: string };
  }>(await gateway("/v1/account/auto-recharge", { key: account.api_key }));
}

async function payingAccount(card = "pm_card_visa", pkg = "credits_1000") {
  const account = await createAccount();
  await attachCard(account, card);
  await setBalance(account, { monthly: 400, purchased: 0 });
  await enableAutoRecharge(account, pkg);
  return account;
}

async function rechargesOf(accountId: string) {
  return db
    .select()
    .from(transactions)
    .where(eq(transactions.accountId, accountId))
    .all()
    .then((rows) => rows.filter((r) => r.type === "auto_recharge" || r.type === "top_up"));
}

/**
 * No recharge was started: none in the ledger (where the trigger records one, with its outbox
 * row, in the same transaction as the debit or adjustment that fires it), none in D1, and no
 * invoice or charge attempt at Stripe.
 */
async function expectNoRechargeStarted(account: TestAccount) {
  const ledger = await readLedger(account.id);
  expect(ledger.recharges).toEqual([]);
  expect(ledger.outbox).toEqual([]);
  expect(await purchaseCalls(account.stripe_customer_id as string)).toEqual([]);
}

/** One paid invoice for the purchase, paid by one payment: exactly one charge. */
async function expectOnePaidInvoice(customer: string, rechargeId: string, amountCents: number) {
  const invoices = await invoicesOf(customer);
  expect(invoices).toHaveLength(1);
  const [invoice] = invoices;
  expect(invoice).toMatchObject({
    status: "paid",
    total: amountCents,
    amount_paid: amountCents,
    metadata: { recharge_id: rechargeId },
  });
  const payments = await invoicePayments(invoice?.id as string);
  expect(payments.filter((p) => p.status === "paid")).toHaveLength(1);
  expect(await chargesOf(customer)).toHaveLength(1);
  return invoice;
}

async function emailsOf(accountId: string) {
  return db.select().from(emails).where(eq(emails.accountId, accountId)).all();
}

describe("auto-recharge: the product document's scenarios", () => {
  it("scenario 1: monthly 0, purchased 100 (total 100) triggers a recharge", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 0, purchased: 100 });
    await eventually(async () =>
      expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 1100 }),
    );
    const [tx] = await rechargesOf(account.id);
    expect(tx).toMatchObject({
      type: "auto_recharge",
      status: "succeeded",
      credits: 1000,
      amountCents: 700,
    });
    expect(tx?.paymentIntentId).toMatch(/^pi_/);
    expect(tx?.invoiceId).toMatch(/^in_/);
    expect(tx?.invoiceUrl).toMatch(new RegExp(`/i/${tx?.invoiceId}$`));
    await expectOnePaidInvoice(account.stripe_customer_id as string, tx?.id as string, 700);
  });

  it("scenario 2: monthly 50, purchased 40 (total 90) triggers a recharge", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 50, purchased: 40 });
    await eventually(async () =>
      expect(await balanceOf(account)).toMatchObject({ monthly: 50, purchased: 1040 }),
    );
  });

  it("scenario 3: monthly 500, purchased 100 (total 600) does not trigger, even after a request", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 500, purchased: 100 });
    await (await classify(account)).arrayBuffer();
    expect(await settings(account)).toMatchObject({ enabled: true, pending: false });
    // The trigger is decided inside the debit's transaction: had it fired, the recharge and
    // its outbox row would already be in the ledger. No need to wait for a queue.
    await expectNoRechargeStarted(account);
    expect(await balanceOf(account)).toMatchObject({ monthly: 499, purchased: 100 });
    expect(await rechargesOf(account.id)).toHaveLength(0);
  });

  it("a request that takes the total from 101 to 100 triggers; the purchase and its email arrive", async () => {
    const account = await payingAccount("pm_card_visa", "credits_3000");
    await setBalance(account, { monthly: 1, purchased: 100 });
    const res = await classify(account);
    expect(res.headers.get("X-Credits-Remaining")).toBe("100");
    await res.arrayBuffer();
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(3100));
    // The email is claimed and sent after the grant, so it can trail the balance.
    const mail = await eventually(async () => {
      const [first] = await emailsOf(account.id);
      expect(first).toMatchObject({ kind: "recharge_succeeded", status: "sent" });
      return first;
    });
    expect(mail?.textBody).toContain("$17.00");
    const [intent] = await paymentIntentsOf(account.stripe_customer_id as string);
    expect(intent).toMatchObject({ status: "succeeded", amount: 1700 });
    const [tx] = await rechargesOf(account.id);
    await expectOnePaidInvoice(account.stripe_customer_id as string, tx?.id as string, 1700);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("auto-recharge settings", () => {
  it("enabling without a payment method is 409 payment_method_required", async () => {
    const account = await createAccount();
    const res = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    await expectError(res, 409, "payment_method_required");
    expect(await settings(account)).toMatchObject({
      enabled: false,
      package: null,
      pending: false,
    });
  });

  it("an unknown package is 400 invalid_request naming the field", async () => {
    const account = await createAccount();
    await attachCard(account);
    const res = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true, package: "credits_5" }),
    });
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.[0]?.field).toBe("package");
  });

  it("enabling at or below the threshold starts a recharge at once", async () => {
    const account = await createAccount();
    await attachCard(account);
    await setBalance(account, { monthly: 20, purchased: 0 });
    const enabled = await enableAutoRecharge(account);
    expect(enabled).toMatchObject({ enabled: true, package: "credits_1000", pending: true });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1000));
    expect(await settings(account)).toMatchObject({ pending: false });
  });

  it("a package change while a recharge is pending applies to the next trigger only", async () => {
    const account = await payingAccount("pm_card_visa", "credits_1000");
    // Hold Stripe's answer so the first recharge is still in flight when the package changes.
    await injectFaults([
      {
        method: "POST",
        path: "/v1/invoices",
        kind: "delay",
        ms: 1500,
        times: 1,
        match: { customer: account.stripe_customer_id as string },
      },
    ]);
    await setBalance(account, { monthly: 0, purchased: 50 });
    expect(await settings(account)).toMatchObject({ pending: true });
    const changed = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_9000" }),
    });
    expect(await changed.json()).toMatchObject({ package: "credits_9000", pending: true });
    await eventually(async () => expect(await settings(account)).toMatchObject({ pending: false }));
    expect((await balanceOf(account)).purchased).toBe(1050);
    // The next trigger buys the new package.
    await setBalance(account, { monthly: 0, purchased: 10 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(9010));
    const amounts = (await rechargesOf(account.id)).map((r) => r.amountCents).sort((a, b) => a - b);
    expect(amounts).toEqual([700, 3700]);
  });

  it("disabling stops future recharges and keeps purchased credits", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 0, purchased: 150 });
    await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: false }),
    }).then((r) => r.arrayBuffer());
    await setBalance(account, { monthly: 0, purchased: 60 });
    // Checked at once: the trigger is decided inside the adjustment's transaction.
    await expectNoRechargeStarted(account);
    expect(await settings(account)).toMatchObject({ enabled: false, pending: false });
    expect(await balanceOf(account)).toMatchObject({ purchased: 60 });
    expect(await rechargesOf(account.id)).toHaveLength(0);
  });
});

describe("failed payments (money rule 6)", () => {
  // pm_card_chargeCustomerFail is Stripe's card that is saved fine and then declined at every
  // charge (the other decline cards are declined already when saved, below). Stripe has no such
  // card for insufficient funds or expiry: the codes of those declines are unit-tested
  // (test/unit/stripe-errors.test.ts, declinedOutcome).
  for (const [card, code, status, mailKind] of [
    ["pm_card_chargeCustomerFail", "card_declined", "failed", "recharge_failed"],
    // Needs the customer: nothing granted either, and it waits on the invoice page (see
    // invoices.test.ts for paying it there); the same money rule holds meanwhile.
    [
      "pm_card_authenticationRequired",
      "authentication_required",
      "requires_action",
      "recharge_requires_action",
    ],
  ] as const) {
    it(`${card}: no credits, auto-recharge disabled, ${status} recorded and emailed, never retried`, async () => {
      const account = await payingAccount(card);
      await setBalance(account, { monthly: 0, purchased: 3 });
      await eventually(async () =>
        // One waiting for the customer is still in flight (its invoice is payable).
        expect(await settings(account)).toMatchObject({
          enabled: false,
          pending: status === "requires_action",
        }),
      );
      const s = await settings(account);
      expect(s.last_failure?.code).toBe(code);
      expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 3 });
      const [tx] = await rechargesOf(account.id);
      expect(tx).toMatchObject({ status, failureCode: code });
      await eventually(async () =>
        expect(await emailsOf(account.id)).toMatchObject([{ kind: mailKind, status: "sent" }]),
      );
      const customer = account.stripe_customer_id as string;
      // One invoice, one attempt to pay it, nothing charged; a decline's invoice is voided (no
      // one can pay it later), one waiting for the customer stays open for them.
      expect(await payCalls(customer)).toHaveLength(1);
      const invoices = await invoicesOf(customer);
      expect(invoices).toHaveLength(1);
      expect(invoices[0]?.status).toBe(status === "failed" ? "void" : "open");
      expect(await chargesOf(customer)).toEqual([]);

      // Service stops when credits reach zero.
      for (let i = 0; i < 3; i++) expect((await classify(account)).status).toBe(200);
      const refused = await classify(account);
      await expectError(refused, 403, "insufficient_credits");
      expect((await audit(account.id)).consistent).toBe(true);

      // Re-enabling after the failure is the customer's choice.
      const again = await enableAutoRecharge(account);
      expect(again.enabled).toBe(true);
    });
  }
});

describe("a card the issuer declines when it is saved", () => {
  async function stripeCustomer(customerId: string) {
    const headers = { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` };
    const customer = await fetch(`${env.STRIPE_API_URL}/v1/customers/${customerId}`, {
      headers,
    }).then((r) => r.json<{ invoice_settings: { default_payment_method: string | null } }>());
    const cards = await fetch(`${env.STRIPE_API_URL}/v1/customers/${customerId}/payment_methods`, {
      headers,
    }).then((r) => r.json<{ data: Array<{ id: string }> }>());
    return {
      default: customer.invoice_settings.default_payment_method,
      cards: cards.data.map((c) => c.id),
    };
  }

  async function cardRow(accountId: string) {
    const row = await db.select().from(accounts).where(eq(accounts.id, accountId)).get();
    return { id: row?.paymentMethodId ?? null, last4: row?.cardLast4 ?? null };
  }

  it("is a 400 invalid_request naming payment_method, and the card on file stays", async () => {
    const account = await payingAccount("pm_card_visa");
    const customer = account.stripe_customer_id as string;
    const before = {
      row: await cardRow(account.id),
      stripe: await stripeCustomer(customer),
      settings: await settings(account),
    };
    expect(before.row.last4).toBe("4242");
    for (const [card, code, message] of [
      ["pm_card_chargeDeclined", "generic_decline", "Your card was declined."],
      [
        "pm_card_chargeDeclinedInsufficientFunds",
        "insufficient_funds",
        "Your card has insufficient funds.",
      ],
      ["pm_card_chargeDeclinedExpiredCard", "expired_card", "Your card has expired."],
    ] as const) {
      const res = await admin(`/accounts/${account.id}/payment-method`, {
        method: "POST",
        body: JSON.stringify({ payment_method: card }),
      });
      const body = await expectError(res, 400, "invalid_request");
      expect(body.error.message).toBe(message);
      expect(body.error.fields).toEqual([{ field: "payment_method", message: code }]);
    }
    expect(await cardRow(account.id)).toEqual(before.row);
    expect(await stripeCustomer(customer)).toEqual(before.stripe);
    expect(await settings(account)).toEqual(before.settings);
    expect((await readLedger(account.id)).hasPaymentMethod).toBe(true);
    expect(await rechargesOf(account.id)).toHaveLength(0);
  });

  it("leaves an account without a card without one", async () => {
    const account = await createAccount();
    const res = await admin(`/accounts/${account.id}/payment-method`, {
      method: "POST",
      body: JSON.stringify({ payment_method: "pm_card_chargeDeclined" }),
    });
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.map((f) => f.field)).toEqual(["payment_method"]);
    expect((await cardRow(account.id)).id).toBeNull();
    expect((await readLedger(account.id)).hasPaymentMethod).toBe(false);
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    await expectError(on, 409, "payment_method_required");
  });
});

describe("exactly once (money rule 5)", () => {
  it("Stripe failing twice then succeeding: one invoice, one charge, one idempotency key per step", async () => {
    const logs = expectLogs([/^recharge attempt failed; will retry/]);
    const account = await payingAccount();
    const customer = account.stripe_customer_id as string;
    await injectFaults([
      { method: "POST", path: "/v1/invoices", kind: "500", times: 2, match: { customer } },
    ]);
    await setBalance(account, { monthly: 0, purchased: 100 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1100));
    const [tx] = await rechargesOf(account.id);
    const id = tx?.id as string;
    const calls = await purchaseCalls(customer);
    const creates = calls.filter((c) => c.path === "/v1/invoices");
    expect(creates.map((c) => c.status)).toEqual([500, 500, 200]);
    for (const call of creates) {
      expect(call.idempotency_key).toBe(`${id}:invoice`);
      expect(call.params).toMatchObject({
        customer,
        collection_method: "charge_automatically",
        auto_advance: "false",
        pending_invoice_items_behavior: "exclude",
        default_payment_method: tx?.paymentMethodId,
        metadata: { recharge_id: id, account_id: account.id, package: "credits_1000" },
      });
    }
    const invoice = await expectOnePaidInvoice(customer, id, 700);
    // Each later step once, under its own key derived from the recharge id.
    const rest = calls.filter((c) => c.path !== "/v1/invoices");
    expect(rest.map((c) => [c.path, c.idempotency_key, c.status])).toEqual([
      ["/v1/invoiceitems", `${id}:item`, 200],
      [`/v1/invoices/${invoice?.id}/finalize`, `${id}:finalize`, 200],
      [`/v1/invoices/${invoice?.id}/pay`, `${id}:pay`, 200],
    ]);
    // The package's Stripe Price (made by stripe:setup's code in the tests' global setup).
    expect(rest[0]?.params).toMatchObject({
      pricing: { price: env.STRIPE_PRICE_CREDITS_1000 },
      invoice: invoice?.id,
    });
    expect(rest[2]?.params).toMatchObject({
      payment_method: tx?.paymentMethodId,
      off_session: "true",
    });
    expect(logs.matching(new RegExp(`will retry ${id}`))).toHaveLength(2);
  });

  it("a lost Stripe response to the payment: the retry finds the invoice paid; charged and credited once", async () => {
    const logs = expectLogs([/^recharge attempt failed; will retry/]);
    const account = await payingAccount();
    const customer = account.stripe_customer_id as string;
    const card = (await db.select().from(accounts).where(eq(accounts.id, account.id)).get())
      ?.paymentMethodId as string;
    await injectFaults([
      {
        method: "POST",
        path: "/v1/invoices/*",
        kind: "drop_after",
        times: 1,
        match: { payment_method: card },
      },
    ]);
    await setBalance(account, { monthly: 0, purchased: 100 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1100));
    const [tx] = await rechargesOf(account.id);
    await expectOnePaidInvoice(customer, tx?.id as string, 700);
    // The one payment went through (its answer was lost); nothing paid it a second time.
    const pays = await payCalls(customer);
    expect(pays.map((c) => [c.status, c.fault])).toEqual([[200, "drop_after"]]);
    expect(tx).toMatchObject({ status: "succeeded", invoiceId: expect.stringMatching(/^in_/) });
    expect((await audit(account.id)).consistent).toBe(true);
    expect(logs.lines.length).toBeGreaterThanOrEqual(1);
  });

  it("the same queue message delivered twice: one charge, one credit, one row, one email", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 0, purchased: 100 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1100));
    const [tx] = await rechargesOf(account.id);
    const job: RechargeJob = {
      kind: "auto_recharge",
      recharge_id: tx?.id as string,
      account_id: account.id,
      package: "credits_1000",
      credits: 1000,
      amount_cents: 700,
      currency: "usd",
      created_at: tx?.createdAt as string,
    };
    // Redeliver it twice more, concurrently, through the worker's own queue handler.
    const batch = createMessageBatch("tollgate-recharge", [
      { id: "m1", timestamp: new Date(), attempts: 2, body: job },
      { id: "m2", timestamp: new Date(), attempts: 2, body: job },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["m1", "m2"]);
    expect((await balanceOf(account)).purchased).toBe(1100);
    await expectOnePaidInvoice(account.stripe_customer_id as string, tx?.id as string, 700);
    expect(await payCalls(account.stripe_customer_id as string)).toHaveLength(1);
    expect(await rechargesOf(account.id)).toHaveLength(1);
    expect(await emailsOf(account.id)).toHaveLength(1);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("60 concurrent requests crossing the threshold: one recharge, one charge", async () => {
    const account = await payingAccount();
    await setBalance(account, { monthly: 30, purchased: 100 });
    const responses = await Promise.all(Array.from({ length: 60 }, () => classify(account)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    await eventually(async () =>
      expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 1070 }),
    );
    const [tx] = await rechargesOf(account.id);
    expect(await rechargesOf(account.id)).toHaveLength(1);
    await expectOnePaidInvoice(account.stripe_customer_id as string, tx?.id as string, 700);
  });

  it("the queue send failing once: the outbox keeps the job and the alarm re-sends it", async () => {
    const logs = expectLogs([
      /^recharge job not queued yet; the alarm will retry .* queue unavailable/,
    ]);
    const account = await payingAccount();
    const ledger = ledgerFor(env, account.id);
    // The test's queue binding is the very object the ledger sends through (one isolate).
    vi.spyOn(env.RECHARGE_QUEUE, "send").mockRejectedValueOnce(new Error("queue unavailable"));
    await setBalance(account, { monthly: 0, purchased: 100 });
    const outbox = await runInDurableObject(ledger, (_i, state) =>
      state.storage.sql.exec("SELECT id FROM outbox").toArray(),
    );
    expect(outbox).toHaveLength(1);
    expect(await settings(account)).toMatchObject({ pending: true });
    // The alarm fires after OUTBOX_RETRY_MS on its own; nothing is lost in between.
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1100), 20_000);
    // Drained: the job, and the balance projection of the grant (which the alarm delivers).
    await eventually(async () => {
      const after = await runInDurableObject(ledger, (_i, state) =>
        state.storage.sql.exec("SELECT id FROM outbox").toArray(),
      );
      expect(after).toHaveLength(0);
    }, 20_000);
    const [tx] = await rechargesOf(account.id);
    await expectOnePaidInvoice(account.stripe_customer_id as string, tx?.id as string, 700);
    expect(logs.lines).toHaveLength(1);
  });

  it("Stripe down past max_retries: the job lands on the dead-letter queue and stays visible", async () => {
    const logs = expectLogs([
      /^recharge attempt failed; will retry/,
      /^recharge needs attention after exhausting retries/,
    ]);
    const account = await payingAccount();
    const customer = account.stripe_customer_id as string;
    await injectFaults([
      { method: "POST", path: "/v1/invoices", kind: "500", times: 50, match: { customer } },
    ]);
    await setBalance(account, { monthly: 0, purchased: 100 });
    await eventually(async () => {
      const [tx] = await rechargesOf(account.id);
      expect(tx).toMatchObject({ status: "pending", needsAttention: true });
    }, 25_000);
    expect(await settings(account)).toMatchObject({ pending: true });
    expect((await balanceOf(account)).purchased).toBe(100);
    expect(await invoicesOf(customer)).toHaveLength(0);
    expect(await paymentIntentsOf(customer)).toHaveLength(0);
    expect(logs.matching(/^recharge needs attention/)).toHaveLength(1);
    await fetch(`${env.STRIPE_API_URL}/_test/faults`, { method: "DELETE" });
  });
});

describe("manual top-ups", () => {
  it("without a payment method: 409 payment_method_required", async () => {
    const account = await createAccount();
    const res = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    await expectError(res, 409, "payment_method_required");
  });

  it("buys a package through the same pipeline; an Idempotency-Key makes a retry safe", async () => {
    const account = await createAccount();
    await attachCard(account);
    const send = () =>
      gateway("/v1/account/top-ups", {
        method: "POST",
        key: account.api_key,
        headers: { "Idempotency-Key": "topup-1" },
        body: JSON.stringify({ package: "credits_3000" }),
      });
    const first = await send();
    expect(first.status).toBe(202);
    const body = await json<{ id: string; status: string }>(first);
    expect(body).toMatchObject({ status: "pending" });
    const second = await send();
    expect(second.status).toBe(202);
    expect(await second.json()).toMatchObject({ id: body.id });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(3000));
    const invoice = await expectOnePaidInvoice(account.stripe_customer_id as string, body.id, 1700);

    const conflict = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      headers: { "Idempotency-Key": "topup-1" },
      body: JSON.stringify({ package: "credits_1000" }),
    });
    await expectError(conflict, 409, "idempotency_conflict");

    const list = await json<{
      data: Array<{ id: string; type: string; status: string; amount_cents: number }>;
    }>(await gateway("/v1/account/transactions", { key: account.api_key }));
    expect(list.data[0]).toMatchObject({
      id: body.id,
      type: "top_up",
      status: "succeeded",
      amount_cents: 1700,
      currency: "usd",
      invoice_url: invoice?.hosted_invoice_url,
      action_url: null,
    });
    // Every row carries both fields (null where there is none).
    for (const row of list.data) {
      expect(row).toHaveProperty("invoice_url");
      expect(row).toHaveProperty("action_url");
    }
  });
});

describe("transaction history", () => {
  it("is newest first with cursor pagination", async () => {
    const account = await createAccount();
    for (let i = 1; i <= 5; i++) await setBalance(account, { monthly: 500, purchased: i });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: {
        data: Array<{ id: string; type: string; created_at: string }>;
        next_cursor: string | null;
      } = await json(
        await gateway(`/v1/account/transactions?limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
          key: account.api_key,
        }),
      );
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((t) => t.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(6); // five adjustments and the initial monthly grant
    expect(new Set(seen).size).toBe(6);
    const all = await json<{ data: Array<{ created_at: string; type: string }> }>(
      await gateway("/v1/account/transactions?limit=100", { key: account.api_key }),
    );
    const times = all.data.map((t) => t.created_at);
    expect([...times].sort().reverse()).toEqual(times);
    expect(all.data.at(-1)?.type).toBe("monthly_grant");
    await expectError(
      await gateway("/v1/account/transactions?cursor=%%%", { key: account.api_key }),
      400,
      "invalid_request",
    );
    await expectError(
      await gateway("/v1/account/transactions?limit=0", { key: account.api_key }),
      400,
      "invalid_request",
    );
  });
});
