import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { dbFor } from "../../src/db/client";
import { accounts, transactions } from "../../src/db/schema";
import { ledgerFor } from "../../src/ledger/client";
import { stripeFor } from "../../src/stripe/client";
import { failHistoryWrites } from "../helpers/d1-faults";
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
import { expectLogs } from "../helpers/logs";
import { attachCard, eventually } from "../helpers/stripe";

const db = dbFor(env.DB);
/** The plans' Stripe Prices, made in the local Stripe server by the global setup. */
const STARTER = env.STRIPE_PRICE_STARTER as string;
const PRO = env.STRIPE_PRICE_PRO as string;
const SECRET = "whsec_test_tollgate";
const cryptoProvider = Stripe.createSubtleCryptoProvider();
const DAY = 86_400;

function event(
  type: string,
  object: Record<string, unknown>,
  opts: { id?: string; created?: number; previous?: Record<string, unknown> } = {},
) {
  return {
    id: opts.id ?? `evt_${crypto.randomUUID().replaceAll("-", "")}`,
    object: "event",
    type,
    created: opts.created ?? Math.floor(Date.now() / 1000),
    api_version: "2025-01-27.acacia",
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object, ...(opts.previous ? { previous_attributes: opts.previous } : {}) },
  };
}

async function deliver(
  evt: unknown,
  opts: { secret?: string; timestamp?: number; signature?: string } = {},
) {
  const payload = JSON.stringify(evt);
  const signature =
    opts.signature ??
    (await Stripe.webhooks.generateTestHeaderStringAsync({
      payload,
      secret: opts.secret ?? SECRET,
      timestamp: opts.timestamp,
      cryptoProvider,
    }));
  return gateway("/webhooks/stripe", {
    method: "POST",
    body: payload,
    headers: { "Stripe-Signature": signature },
  });
}

function invoice(
  account: TestAccount,
  opts: { id?: string; price?: string; start: number; end: number; reason?: string },
) {
  return {
    id: opts.id ?? `in_${crypto.randomUUID().replaceAll("-", "")}`,
    object: "invoice",
    customer: account.stripe_customer_id,
    status: "paid",
    billing_reason: opts.reason ?? "subscription_cycle",
    parent: { type: "subscription_details", subscription_details: { subscription: "sub_123" } },
    lines: {
      object: "list",
      data: [
        {
          id: "il_1",
          object: "line_item",
          period: { start: opts.start, end: opts.end },
          pricing: {
            type: "price_details",
            price_details: { price: opts.price ?? STARTER, product: "prod_x" },
          },
        },
      ],
    },
  };
}

/**
 * An upgrade's invoice (`subscription_update`, prorations billed at once): a credit for the
 * unused time on the old price and a charge for the rest of the period on the new one.
 */
function upgradeInvoice(
  account: TestAccount,
  opts: { from: string; to: string; start: number; end: number; id?: string },
) {
  const proration = (price: string, amount: number) => ({
    id: `il_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    object: "line_item",
    amount,
    period: { start: opts.start, end: opts.end },
    parent: {
      type: "invoice_item_details",
      invoice_item_details: { invoice_item: "ii_x", proration: true, subscription: "sub_123" },
    },
    pricing: { type: "price_details", price_details: { price, product: "prod_x" } },
  });
  return {
    ...invoice(account, { ...opts, reason: "subscription_update" }),
    total: 1_000,
    amount_paid: 1_000,
    hosted_invoice_url: "https://invoice.stripe.test/i/upgrade",
    lines: { object: "list", data: [proration(opts.from, -950), proration(opts.to, 1_950)] },
  };
}

function subscription(account: TestAccount, price: string, status = "active") {
  return {
    id: "sub_123",
    object: "subscription",
    customer: account.stripe_customer_id,
    status,
    items: { object: "list", data: [{ id: "si_1", price: { id: price } }] },
  };
}

async function ok(res: Response) {
  expect(res.status).toBe(200);
  return json<{ received: boolean; duplicate?: boolean; handled?: boolean }>(res);
}

async function planOf(account: TestAccount) {
  return (
    await db.select({ plan: accounts.plan }).from(accounts).where(eq(accounts.id, account.id)).get()
  )?.plan;
}

const now = () => Math.floor(Date.now() / 1000);

describe("webhook signatures", () => {
  it("a bad signature is 400 and changes nothing", async () => {
    const account = await createAccount("starter");
    await setBalance(account, { monthly: 10, purchased: 0 });
    const evt = event("invoice.paid", invoice(account, { start: now(), end: now() + 30 * DAY }));
    await expectError(await deliver(evt, { secret: "whsec_wrong" }), 400, "invalid_request");
    await expectError(await deliver(evt, { signature: "t=1,v1=deadbeef" }), 400, "invalid_request");
    const missing = await gateway("/webhooks/stripe", {
      method: "POST",
      body: JSON.stringify(evt),
    });
    await expectError(missing, 400, "invalid_request");
    expect((await balanceOf(account)).monthly).toBe(10);
  });

  it("a stale signature (older than the tolerance) is 400", async () => {
    const account = await createAccount("starter");
    await setBalance(account, { monthly: 10, purchased: 0 });
    const evt = event("invoice.paid", invoice(account, { start: now(), end: now() + 30 * DAY }));
    await expectError(await deliver(evt, { timestamp: now() - 600 }), 400, "invalid_request");
    expect((await balanceOf(account)).monthly).toBe(10);
  });

  it("a tampered body fails even with a once-valid signature", async () => {
    const account = await createAccount("starter");
    const evt = event("invoice.paid", invoice(account, { start: now(), end: now() + 30 * DAY }));
    const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
      payload: JSON.stringify(evt),
      secret: SECRET,
      cryptoProvider,
    });
    const tampered = JSON.stringify({ ...evt, type: "customer.subscription.deleted" });
    const res = await gateway("/webhooks/stripe", {
      method: "POST",
      body: tampered,
      headers: { "Stripe-Signature": signature },
    });
    await expectError(res, 400, "invalid_request");
  });
});

describe("billing cycles from invoices", () => {
  it("invoice.paid starts a cycle: monthly reset to the allowance, purchased untouched, no carry-over", async () => {
    const account = await createAccount("starter");
    await setBalance(account, { monthly: 2000, purchased: 1234 });
    const start = now();
    const res = await deliver(
      event("invoice.paid", invoice(account, { start, end: start + 30 * DAY })),
    );
    expect(await ok(res)).toMatchObject({ handled: true });
    const balance = await json<{ monthly: number; purchased: number; cycle_ends_at: string }>(
      await gateway("/v1/account/balance", { key: account.api_key }),
    );
    expect(balance).toMatchObject({ monthly: 3000, purchased: 1234 });
    expect(balance.cycle_ends_at).toBe(new Date((start + 30 * DAY) * 1000).toISOString());
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("the same invoice paid twice (or redelivered) grants once", async () => {
    const account = await createAccount("starter");
    const inv = invoice(account, { start: now(), end: now() + 30 * DAY });
    const evt = event("invoice.paid", inv);
    await ok(await deliver(evt));
    await setBalance(account, { monthly: 5, purchased: 0 });
    expect(await ok(await deliver(evt))).toMatchObject({ duplicate: true });
    await ok(await deliver(event("invoice.paid", inv))); // a second event for the same invoice
    expect((await balanceOf(account)).monthly).toBe(5);
    const grants = (
      await db.select().from(transactions).where(eq(transactions.accountId, account.id)).all()
    ).filter((t) => t.id === inv.id);
    expect(grants).toHaveLength(1);
  });

  it("an older invoice arriving after a newer one does not move the cycle back", async () => {
    const account = await createAccount("starter");
    const t = now();
    await ok(
      await deliver(event("invoice.paid", invoice(account, { start: t, end: t + 30 * DAY }))),
    );
    await setBalance(account, { monthly: 100, purchased: 0 });
    await ok(
      await deliver(event("invoice.paid", invoice(account, { start: t - 30 * DAY, end: t }))),
    );
    const balance = await json<{ monthly: number; cycle_ends_at: string }>(
      await gateway("/v1/account/balance", { key: account.api_key }),
    );
    expect(balance.monthly).toBe(100);
    expect(balance.cycle_ends_at).toBe(new Date((t + 30 * DAY) * 1000).toISOString());
  });

  it("a proration invoice (mid-cycle change) starts no cycle", async () => {
    const account = await createAccount("starter");
    await setBalance(account, { monthly: 10, purchased: 0 });
    await ok(
      await deliver(
        event(
          "invoice.paid",
          invoice(account, { start: now(), end: now() + 30 * DAY, reason: "subscription_update" }),
        ),
      ),
    );
    expect((await balanceOf(account)).monthly).toBe(10);
  });
});

describe("plan changes from subscription events", () => {
  it("out-of-order subscription events: the latest one decides the plan", async () => {
    const account = await createAccount("free");
    const t = now();
    await ok(
      await deliver(
        event("customer.subscription.updated", subscription(account, PRO), {
          created: t + 20,
        }),
      ),
    );
    await ok(
      await deliver(
        event("customer.subscription.created", subscription(account, STARTER), {
          created: t + 10,
        }),
      ),
    );
    expect(await planOf(account)).toBe("pro");
    const balance = await json<{ plan: string }>(
      await gateway("/v1/account/balance", { key: account.api_key }),
    );
    expect(balance.plan).toBe("pro");
    // A deletion later than both wins.
    await ok(
      await deliver(
        event("customer.subscription.deleted", subscription(account, PRO, "canceled"), {
          created: t + 30,
        }),
      ),
    );
    expect(await planOf(account)).toBe("free");
  });

  it("two updates of one second, the stale one first: Stripe's current subscription decides, in the ledger too", async () => {
    // `created` cannot order them (one-second resolution) and Stripe delivers in no order.
    const account = await createAccount("free");
    const stripe = stripeFor(env);
    const card = await attachCard(account);
    const sub = await stripe.subscriptions.create({
      customer: account.stripe_customer_id as string,
      items: [{ price: PRO }],
      default_payment_method: card,
    });
    // Later than anything the local server emitted for the creation itself.
    const t = now() + 100;
    const snapshot = (price: string) => ({ ...subscription(account, price), id: sub.id });
    await ok(
      await deliver(event("customer.subscription.updated", snapshot(STARTER), { created: t })),
    );
    await ok(await deliver(event("customer.subscription.updated", snapshot(PRO), { created: t })));
    expect(await planOf(account)).toBe("pro");
    const balance = await json<{ plan: string; monthly_allowance: number }>(
      await gateway("/v1/account/balance", { key: account.api_key }),
    );
    expect(balance).toMatchObject({ plan: "pro", monthly_allowance: 8000 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a complimentary account that subscribes is complimentary no more, nor after it cancels", async () => {
    const account = await createAccount("starter");
    const view = async () =>
      json<{ plan: string; complimentary: boolean }>(
        await gateway("/v1/account", { key: account.api_key }),
      );
    expect(await view()).toMatchObject({ plan: "starter", complimentary: true });
    const t = now();
    await ok(
      await deliver(
        event("customer.subscription.created", subscription(account, PRO), { created: t }),
      ),
    );
    expect(await view()).toMatchObject({ plan: "pro", complimentary: false });
    await ok(
      await deliver(
        event("customer.subscription.deleted", subscription(account, PRO, "canceled"), {
          created: t + 1,
        }),
      ),
    );
    expect(await view()).toMatchObject({ plan: "free", complimentary: false });
  });

  it("upgrade mid-cycle: the subscription change alone adds nothing; its paid invoice adds the difference once", async () => {
    const account = await createAccount("starter");
    const t = now();
    const end = t + 30 * DAY;
    await ok(await deliver(event("invoice.paid", invoice(account, { start: t, end }))));
    await setBalance(account, { monthly: 1000, purchased: 50 });
    await ok(
      await deliver(
        event("customer.subscription.updated", subscription(account, PRO), { created: t + 1 }),
      ),
    );
    // The plan shows the change; the credits wait for the money (money rule 9).
    expect(await balanceOf(account)).toMatchObject({ monthly: 1000, purchased: 50, plan: "pro" });
    const paid = upgradeInvoice(account, { from: STARTER, to: PRO, start: t + 1, end });
    await ok(await deliver(event("invoice.paid", paid, { created: t + 2 })));
    expect(await balanceOf(account)).toMatchObject({
      monthly: 1000 + (8000 - 3000),
      purchased: 50,
    });
    await ok(await deliver(event("invoice.paid", paid, { created: t + 3 })));
    expect((await balanceOf(account)).monthly).toBe(6000);
    const row = await db.select().from(transactions).where(eq(transactions.id, paid.id)).get();
    expect(row).toMatchObject({
      type: "monthly_grant",
      credits: 5000,
      amountCents: 1000,
      invoiceId: paid.id,
      invoiceUrl: "https://invoice.stripe.test/i/upgrade",
      description: "Upgrade to Pro",
    });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("downgrade mid-cycle keeps this cycle's monthly credits; the next cycle grants the smaller allowance", async () => {
    const account = await createAccount("pro");
    await setBalance(account, { monthly: 6000, purchased: 0 });
    const t = now();
    await ok(
      await deliver(
        event("customer.subscription.updated", subscription(account, STARTER), {
          created: t,
        }),
      ),
    );
    expect(await balanceOf(account)).toMatchObject({ monthly: 6000, plan: "starter" });
    await ok(
      await deliver(
        event("invoice.paid", invoice(account, { start: t + 1, end: t + 30 * DAY }), {
          created: t + 1,
        }),
      ),
    );
    expect((await balanceOf(account)).monthly).toBe(3000);
  });
});

describe("plan flip-flops (money rule 9)", () => {
  /** A Starter cycle paid through Stripe, then six alternating changes, each upgrade paid. */
  function flips(account: TestAccount, t: number) {
    const end = t + 30 * DAY;
    const events = [event("invoice.paid", invoice(account, { start: t, end }), { created: t })];
    for (let i = 0; i < 6; i++) {
      const up = i % 2 === 0;
      events.push(
        event("customer.subscription.updated", subscription(account, up ? PRO : STARTER), {
          created: t + 1 + 2 * i,
        }),
      );
      if (up) {
        const paid = upgradeInvoice(account, { from: STARTER, to: PRO, start: t + 1 + 2 * i, end });
        events.push(event("invoice.paid", paid, { created: t + 2 + 2 * i }));
      }
    }
    return events;
  }

  it("six alternating Pro/Starter updates, every upgrade paid, never take a cycle past the largest allowance paid for", async () => {
    const account = await createAccount("starter");
    const [cycle, ...changes] = flips(account, now());
    await ok(await deliver(cycle));
    await setBalance(account, { monthly: 2_500, purchased: 0 });
    for (const evt of changes) {
      await ok(await deliver(evt));
      expect((await balanceOf(account)).monthly).toBeLessThanOrEqual(8_000);
    }
    // One upgrade's worth was added (Starter → Pro: +5,000), and only once.
    expect(await balanceOf(account)).toMatchObject({ monthly: 7_500, plan: "starter" });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("the same flips delivered out of order and twice end the same way", async () => {
    const account = await createAccount("starter");
    const events = flips(account, now());
    for (const evt of [...events].reverse()) {
      await ok(await deliver(evt));
      expect((await balanceOf(account)).monthly).toBeLessThanOrEqual(8_000);
    }
    for (const evt of events) await ok(await deliver(evt));
    expect(await balanceOf(account)).toMatchObject({ monthly: 8_000, plan: "starter" });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a new cycle resets the bound: the next paid upgrade adds the difference again", async () => {
    const account = await createAccount("starter");
    const t = now();
    const first = t + 30 * DAY;
    await ok(await deliver(event("invoice.paid", invoice(account, { start: t, end: first }))));
    const up = (at: number, end: number) => [
      event("customer.subscription.updated", subscription(account, PRO), { created: at }),
      event("invoice.paid", upgradeInvoice(account, { from: STARTER, to: PRO, start: at, end }), {
        created: at + 1,
      }),
    ];
    for (const evt of up(t + 1, first)) await ok(await deliver(evt));
    expect((await balanceOf(account)).monthly).toBe(8_000);
    await ok(
      await deliver(
        event("customer.subscription.updated", subscription(account, STARTER), {
          created: t + 3,
        }),
      ),
    );
    await ok(
      await deliver(
        event("invoice.paid", invoice(account, { start: first, end: first + 30 * DAY }), {
          created: t + 4,
        }),
      ),
    );
    expect((await balanceOf(account)).monthly).toBe(3_000);
    for (const evt of up(t + 5, first + 30 * DAY)) await ok(await deliver(evt));
    expect((await balanceOf(account)).monthly).toBe(8_000);
  });

  it("an upgrade paid for a cycle whose own invoice comes later starts that cycle at the larger allowance", async () => {
    const account = await createAccount("free");
    const t = now();
    const end = t + 30 * DAY;
    await ok(
      await deliver(
        event(
          "invoice.paid",
          upgradeInvoice(account, { from: STARTER, to: PRO, start: t + 5, end }),
          {
            created: t + 6,
          },
        ),
      ),
    );
    expect((await balanceOf(account)).monthly).toBe(500);
    await ok(
      await deliver(
        event("invoice.paid", invoice(account, { start: t, end, reason: "subscription_create" }), {
          created: t + 1,
        }),
      ),
    );
    expect((await balanceOf(account)).monthly).toBe(8_000);
  });

  it("an upgrade invoice for a cycle that has ended grants nothing", async () => {
    const account = await createAccount("starter");
    const t = now();
    await ok(
      await deliver(event("invoice.paid", invoice(account, { start: t, end: t + 30 * DAY }))),
    );
    await setBalance(account, { monthly: 100, purchased: 0 });
    const late = upgradeInvoice(account, { from: STARTER, to: PRO, start: t - 10 * DAY, end: t });
    await ok(await deliver(event("invoice.paid", late)));
    expect((await balanceOf(account)).monthly).toBe(100);
  });
});

describe("free accounts without a subscription", () => {
  it("get their next cycle from the ledger's alarm, recorded in the history", async () => {
    const account = await createAccount("free");
    await setBalance(account, { monthly: 3, purchased: 40 });
    const ledger = ledgerFor(env, account.id);
    await runInDurableObject(ledger, (_i, state) => {
      state.storage.sql.exec("UPDATE state SET cycle_ends_at = ? WHERE id = 1", Date.now() - 1000);
    });
    await runDurableObjectAlarm(ledger);
    const balance = await json<{ monthly: number; purchased: number; cycle_ends_at: string }>(
      await gateway("/v1/account/balance", { key: account.api_key }),
    );
    expect(balance).toMatchObject({ monthly: 500, purchased: 40 });
    expect(Date.parse(balance.cycle_ends_at)).toBeGreaterThan(Date.now());
    const grants = (
      await db.select().from(transactions).where(eq(transactions.accountId, account.id)).all()
    ).filter((t) => t.type === "monthly_grant");
    expect(grants).toHaveLength(2);
  });
});

describe("history rows of grants are projections from the ledger's outbox", () => {
  const grantsOf = async (account: TestAccount) =>
    (await db.select().from(transactions).where(eq(transactions.accountId, account.id)).all())
      .filter((t) => t.type === "monthly_grant")
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const outboxSize = (account: TestAccount) =>
    runInDurableObject(
      ledgerFor(env, account.id),
      (_i, state) =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n,
    );

  it("a cycle grant whose D1 write fails after the commit is written once by the outbox retry", async () => {
    const logs = expectLogs([/history row not written to D1 yet/]);
    const account = await createAccount("starter");
    const t = now();
    const paid = {
      ...invoice(account, { start: t, end: t + 30 * DAY }),
      amount_paid: 2_900,
      hosted_invoice_url: "https://invoice.stripe.test/i/cycle",
    };
    const failing = failHistoryWrites();
    await ok(await deliver(event("invoice.paid", paid)));
    expect((await balanceOf(account)).monthly).toBe(3_000);
    expect(await grantsOf(account)).toHaveLength(1);
    expect(logs.lines.length).toBeGreaterThan(0);
    failing.mockRestore();
    expect(await runDurableObjectAlarm(ledgerFor(env, account.id))).toBe(true);
    const grants = await grantsOf(account);
    expect(grants).toHaveLength(2);
    expect(grants[1]).toMatchObject({
      id: paid.id,
      type: "monthly_grant",
      status: "succeeded",
      credits: 3_000,
      amountCents: 2_900,
      invoiceId: paid.id,
      invoiceUrl: "https://invoice.stripe.test/i/cycle",
    });
    expect(await outboxSize(account)).toBe(0);
    await runDurableObjectAlarm(ledgerFor(env, account.id));
    expect(await grantsOf(account)).toHaveLength(2);
  });

  it("a free plan's alarm cycle whose D1 write fails is written once by the next alarm", async () => {
    expectLogs([/history row not written to D1 yet/]);
    const account = await createAccount("free");
    await setBalance(account, { monthly: 3, purchased: 40 });
    const ledger = ledgerFor(env, account.id);
    await runInDurableObject(ledger, (_i, state) => {
      state.storage.sql.exec("UPDATE state SET cycle_ends_at = ? WHERE id = 1", Date.now() - 1000);
    });
    const failing = failHistoryWrites();
    await runDurableObjectAlarm(ledger);
    expect(await balanceOf(account)).toMatchObject({ monthly: 500, purchased: 40 });
    expect(await grantsOf(account)).toHaveLength(1);
    failing.mockRestore();
    expect(await runDurableObjectAlarm(ledger)).toBe(true);
    const grants = await grantsOf(account);
    expect(grants).toHaveLength(2);
    const cycle = grants.find((g) => g.id !== `cycle:${account.id}:initial`);
    expect(cycle).toMatchObject({ credits: 500, amountCents: 0, invoiceId: null });
    expect(cycle?.id).toMatch(new RegExp(`^cycle:${account.id}:\\d+$`));
    expect(await outboxSize(account)).toBe(0);
    await runDurableObjectAlarm(ledger);
    expect(await grantsOf(account)).toHaveLength(2);
  });

  it("an invoice redelivered after a failed history write leaves one row, and one grant", async () => {
    expectLogs([/history row not written to D1 yet/]);
    const account = await createAccount("starter");
    const t = now();
    const paid = invoice(account, { start: t, end: t + 30 * DAY });
    const first = event("invoice.paid", paid);
    const failing = failHistoryWrites();
    await ok(await deliver(first));
    failing.mockRestore();
    // Stripe retries the event, and may send a second event for the same invoice.
    await ok(await deliver(first));
    await ok(await deliver(event("invoice.paid", paid)));
    await runDurableObjectAlarm(ledgerFor(env, account.id));
    await ok(await deliver(event("invoice.paid", paid)));
    const rows = (await grantsOf(account)).filter((g) => g.id === paid.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.credits).toBe(3_000);
    expect((await balanceOf(account)).monthly).toBe(3_000);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("payment method on file follows Stripe", () => {
  it("a detached card turns the flag off; the next recharge fails cleanly", async () => {
    const account = await createAccount("free");
    const pm = await attachCard(account);
    await setBalance(account, { monthly: 400, purchased: 0 });
    const enable = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    expect(enable.status).toBe(200);
    await enable.arrayBuffer();

    const detach = await fetch(`${env.STRIPE_API_URL}/v1/payment_methods/${pm}/detach`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    });
    const detached = await detach.json<Record<string, unknown>>();
    await ok(
      await deliver(
        event("payment_method.detached", detached, {
          previous: { customer: account.stripe_customer_id },
        }),
      ),
    );
    const row = await db.select().from(accounts).where(eq(accounts.id, account.id)).get();
    expect(row?.paymentMethodId).toBeNull();

    await setBalance(account, { monthly: 0, purchased: 50 });
    await eventually(async () => {
      const s = await json<{
        enabled: boolean;
        pending: boolean;
        last_failure: { code: string } | null;
      }>(await gateway("/v1/account/auto-recharge", { key: account.api_key }));
      expect(s).toMatchObject({
        enabled: false,
        pending: false,
        last_failure: { code: "payment_method_required" },
      });
    });
    expect((await balanceOf(account)).purchased).toBe(50);
    // Re-enabling now needs a card again.
    const again = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    await expectError(again, 409, "payment_method_required");
    // A card attached in the portal arrives as events; the flag follows Stripe's state.
    const attach = await fetch(`${env.STRIPE_API_URL}/v1/payment_methods/pm_card_visa/attach`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${env.STRIPE_SECRET_KEY}`,
        "Content-Type": "application/x-www-form-urlencoded",
      },
      body: `customer=${account.stripe_customer_id}`,
    });
    const attached = await attach.json<Record<string, unknown>>();
    await ok(await deliver(event("payment_method.attached", attached)));
    const enabled = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    expect(enabled.status).toBe(200);
    await enabled.arrayBuffer();
  });
});

describe("billing portal", () => {
  it("returns a customer-portal session URL", async () => {
    const account = await createAccount();
    const res = await gateway("/v1/account/billing-portal", {
      method: "POST",
      key: account.api_key,
    });
    expect(res.status).toBe(200);
    const { url } = await json<{ url: string }>(res);
    expect(url).toMatch(/\/p\/session\/bps_/);
  });
});
