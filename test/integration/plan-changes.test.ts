/**
 * Plan changes against the real local Stripe server (money rule 9): monthly credits follow
 * money that was paid, never a subscription change alone, and only the account's current
 * subscription changes its plan. The Stripe side is built with the `stripe` SDK; the events
 * the server emitted are delivered signed, as Stripe would.
 */
import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import type Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { dbFor } from "../../src/db/client";
import { transactions } from "../../src/db/schema";
import { stripeFor } from "../../src/stripe/client";
import {
  admin,
  audit,
  balanceOf,
  createAccount,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import {
  attachCard,
  chargesOf,
  deliverSigned,
  type EmittedEvent,
  eventsFor,
  invoicesOf,
  submitPage,
} from "../helpers/stripe";

const db = dbFor(env.DB);
const stripe = stripeFor(env);
const STARTER = env.STRIPE_PRICE_STARTER as string;
const PRO = env.STRIPE_PRICE_PRO as string;

/** Event ids already delivered, per customer. */
const delivered = new Map<string, Set<string>>();

async function deliver(events: EmittedEvent[]) {
  for (const e of events) {
    const res = await deliverSigned(e);
    expect(res.status, e.type).toBe(200);
    await res.arrayBuffer();
  }
}

/** Delivers, oldest first, the events the server emitted for this customer since the last call. */
async function deliverNew(customer: string): Promise<EmittedEvent[]> {
  const seen = delivered.get(customer) ?? new Set<string>();
  delivered.set(customer, seen);
  const fresh = (await eventsFor(customer)).filter((e) => !seen.has(e.id));
  for (const e of fresh) seen.add(e.id);
  await deliver(fresh);
  return fresh;
}

/** The events emitted since the last call, not delivered (the caller picks the order). */
async function collectNew(customer: string): Promise<EmittedEvent[]> {
  const seen = delivered.get(customer) ?? new Set<string>();
  delivered.set(customer, seen);
  const fresh = (await eventsFor(customer)).filter((e) => !seen.has(e.id));
  for (const e of fresh) seen.add(e.id);
  return fresh;
}

interface Subscribed {
  account: TestAccount;
  customer: string;
  sub: Stripe.Subscription;
}

/** A free account that subscribes to Starter with a working card, every event delivered. */
async function subscribed(price = STARTER, deliverEvents = true): Promise<Subscribed> {
  const account = await createAccount("free");
  const customer = account.stripe_customer_id as string;
  await attachCard(account);
  const sub = await stripe.subscriptions.create({ customer, items: [{ price }] });
  expect(sub.status).toBe("active");
  if (deliverEvents) await deliverNew(customer);
  return { account, customer, sub };
}

function changePrice(
  sub: Stripe.Subscription,
  price: string,
  proration: "create_prorations" | "always_invoice",
  extra: Stripe.SubscriptionUpdateParams = {},
) {
  return stripe.subscriptions.update(sub.id, {
    items: [{ id: sub.items.data[0]?.id as string, price }],
    proration_behavior: proration,
    ...extra,
  });
}

/** The local server's renewal: the next period's invoice, charged off-session. */
async function renew(sub: Stripe.Subscription) {
  const res = await fetch(`${env.STRIPE_API_URL}/_local/subscriptions/${sub.id}/renew`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  expect(res.status).toBe(200);
  return json<{ invoice: { id: string; status: string; amount_paid: number } | null }>(res);
}

async function history(account: TestAccount) {
  return db.select().from(transactions).where(eq(transactions.accountId, account.id)).all();
}

async function adminView(account: TestAccount) {
  const res = await admin(`/accounts/${account.id}`);
  expect(res.status).toBe(200);
  return json<{
    plan: string;
    current_subscription_id: string | null;
    other_subscriptions: Array<{ id: string; status: string | null; actions: string[] }>;
  }>(res);
}

describe("upgrades grant credits when their invoice is paid (money rule 9)", () => {
  it("the first subscription: its creation alone grants nothing, its paid first invoice does", async () => {
    const { account, customer } = await subscribed(STARTER, false);
    const events = await collectNew(customer);
    const created = events.filter((e) => e.type.startsWith("customer.subscription."));
    expect(created.length).toBeGreaterThan(0);
    await deliver(created);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 500 });
    await deliver(events.filter((e) => e.type === "invoice.paid"));
    expect((await balanceOf(account)).monthly).toBe(3_000);
  });

  it("(a) a change with create_prorations, no invoice paid: the plan shows Pro, no extra credits", async () => {
    const { account, customer, sub } = await subscribed();
    await changePrice(sub, PRO, "create_prorations");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 3_000 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("(b) an upgrade's invoice paid: +5,000, with a history row linking the invoice", async () => {
    const { account, customer, sub } = await subscribed();
    await changePrice(sub, PRO, "always_invoice");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
    const upgrade = (await invoicesOf(customer)).find(
      (i) => i.billing_reason === "subscription_update",
    );
    expect(upgrade?.status).toBe("paid");
    const [row] = (await history(account)).filter((t) => t.invoiceId === upgrade?.id);
    expect(row).toMatchObject({
      type: "monthly_grant",
      status: "succeeded",
      credits: 5_000,
      amountCents: upgrade?.amount_paid,
      invoiceUrl: upgrade?.hosted_invoice_url,
      description: "Upgrade to Pro",
    });
    expect(row?.amountCents).toBeGreaterThan(0);
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("(c) up and back (the second change a downgrade): never more than was paid, and the renewal grants Starter", async () => {
    const { account, customer, sub } = await subscribed();
    await changePrice(sub, PRO, "create_prorations");
    await deliverNew(customer);
    await changePrice(sub, STARTER, "create_prorations");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    // The two proration items ride on the renewal and net about nothing: Starter is billed.
    const { invoice } = await renew(sub);
    expect(invoice?.status).toBe("paid");
    expect(Math.abs((invoice?.amount_paid ?? 0) - 1_900)).toBeLessThanOrEqual(5);
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    // And again the next cycle: the same change nets nothing, the renewal grants Starter.
    await changePrice(sub, PRO, "create_prorations");
    await changePrice(sub, STARTER, "create_prorations");
    await deliverNew(customer);
    expect((await balanceOf(account)).monthly).toBe(3_000);
    expect((await renew(sub)).invoice?.status).toBe("paid");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("(c) up paid, then back down: the Pro allowance that was paid, never more, and no second grant", async () => {
    const { account, customer, sub } = await subscribed();
    await changePrice(sub, PRO, "always_invoice");
    await deliverNew(customer);
    await changePrice(sub, STARTER, "always_invoice");
    await deliverNew(customer);
    await changePrice(sub, PRO, "create_prorations");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
  });

  it("(d) an upgrade while past_due, its invoice unpaid: no credits", async () => {
    const { account, customer, sub } = await subscribed();
    // The card on file now fails: the renewal is not paid and the subscription is past_due.
    await attachCard(account, "pm_card_chargeCustomerFail");
    const { invoice } = await renew(sub);
    expect(invoice?.status).toBe("open");
    await deliverNew(customer);
    const past = await stripe.subscriptions.retrieve(sub.id);
    expect(past.status).toBe("past_due");
    const before = (await balanceOf(account)).monthly;
    await changePrice(past, PRO, "always_invoice").catch(() => null);
    await deliverNew(customer);
    const upgrade = (await invoicesOf(customer)).find(
      (i) => i.billing_reason === "subscription_update",
    );
    expect(upgrade?.status).not.toBe("paid");
    expect((await balanceOf(account)).monthly).toBe(before);
    expect(before).toBeLessThanOrEqual(3_000);
  });

  it("(e) an upgrade and a cancellation at period end: no credits, and Free after the period", async () => {
    const { account, customer, sub } = await subscribed();
    await changePrice(sub, PRO, "create_prorations", { cancel_at_period_end: true });
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 3_000 });
    await renew(sub);
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "free", monthly: 3_000 });
  });

  it("(f) the events of a paid upgrade in any order end the same way", async () => {
    const orders: Array<(events: EmittedEvent[]) => EmittedEvent[]> = [
      (e) => e,
      (e) => [...e].reverse(),
      // Invoices first, then the subscription events.
      (e) => [
        ...e.filter((x) => x.type.startsWith("invoice.")),
        ...e.filter((x) => !x.type.startsWith("invoice.")),
      ],
      // A fixed shuffle, then every event again.
      (e) => {
        const shuffled = e.map((x, i) => ({ x, k: (i * 7919) % 13 })).sort((a, b) => a.k - b.k);
        return [...shuffled.map((s) => s.x), ...e];
      },
    ];
    for (const order of orders) {
      const { account, customer, sub } = await subscribed(STARTER, false);
      await changePrice(sub, PRO, "always_invoice");
      await deliver(order(await collectNew(customer)));
      expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
      const invoices = new Set((await invoicesOf(customer)).map((i) => i.id));
      const granted = (await history(account))
        .filter((t) => t.invoiceId && invoices.has(t.invoiceId))
        .reduce((sum, t) => sum + t.credits, 0);
      expect(granted).toBe(8_000);
      expect((await audit(account.id)).consistent).toBe(true);
    }
  });
});

describe("only the current subscription changes the plan", () => {
  it("a second live subscription's events are recorded, not applied; deleting it keeps the plan", async () => {
    const { account, customer, sub } = await subscribed();
    const second = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    expect(second.status).toBe("active");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    await stripe.subscriptions.cancel(second.id);
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    const view = await adminView(account);
    expect(view).toMatchObject({ plan: "starter", current_subscription_id: sub.id });
    expect(view.other_subscriptions).toEqual([
      expect.objectContaining({ id: second.id, status: "canceled", actions: ["recorded"] }),
    ]);
  });

  it("two live subscriptions made before any event arrives: the first seen stays current, its invoice grants", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    await attachCard(account);
    const first = await stripe.subscriptions.create({ customer, items: [{ price: STARTER }] });
    const second = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    // The first one's creation event says `incomplete` (it was, for a moment): not an end.
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    const view = await adminView(account);
    expect(view.current_subscription_id).toBe(first.id);
    expect(view.other_subscriptions.map((s) => s.id)).toEqual([second.id]);
  });

  it("an account from before the current subscription was stored follows the one D1 mirrored", async () => {
    const { account, customer, sub } = await subscribed();
    // As migrated: the mirror names the subscription, the new column is empty.
    await env.DB.prepare("UPDATE accounts SET current_subscription_id = NULL WHERE id = ?")
      .bind(account.id)
      .run();
    const second = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    await stripe.subscriptions.cancel(second.id);
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
    await stripe.subscriptions.update(sub.id, { metadata: { touched: "yes" } });
    await deliverNew(customer);
    expect((await adminView(account)).current_subscription_id).toBe(sub.id);
  });

  it("an old subscription that is not live, deleted after a re-subscription, keeps the plan", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    await attachCard(account);
    // Never paid (as an `unpaid` one: not live), and the first the account saw.
    const old = await stripe.subscriptions.create({
      customer,
      items: [{ price: STARTER }],
      payment_behavior: "default_incomplete",
    });
    expect(old.status).toBe("incomplete");
    await deliverNew(customer);
    await deliverSigned({
      id: `evt_unpaid_${old.id}`,
      object: "event",
      type: "customer.subscription.updated",
      // Before the re-subscription below (a subscription turns `unpaid` weeks before).
      created: Math.floor(Date.now() / 1000) - 60,
      data: { object: { ...old, status: "unpaid" }, previous_attributes: { status: "past_due" } },
    }).then((r) => r.arrayBuffer());
    // The customer subscribes again.
    const fresh = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    expect(fresh.status).toBe("active");
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
    // The old one is cleaned up.
    await stripe.subscriptions.cancel(old.id);
    await deliverNew(customer);
    expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
    const view = await adminView(account);
    expect(view.current_subscription_id).toBe(fresh.id);
    expect(view.other_subscriptions.map((s) => s.id)).toEqual([old.id]);
  });

  it("the current subscription deleted while another live one exists: that one is followed", async () => {
    const { account, customer, sub } = await subscribed();
    const second = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    await deliverNew(customer);
    await stripe.subscriptions.cancel(sub.id);
    await deliverNew(customer);
    expect(await adminView(account)).toMatchObject({
      plan: "pro",
      current_subscription_id: second.id,
    });
  });
});

describe("a live subscription that takes over through a late invoice", () => {
  it("its invoice, older than the ended one's last change, arrives first: the plan follows it", async () => {
    const { account, customer, sub } = await subscribed();
    // A second subscription, its events recorded as another's while the first one is live,
    // except its paid first invoice, delivered late (Stripe retries for days).
    const second = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
    const events = await collectNew(customer);
    const paid = events.filter((e) => e.type === "invoice.paid");
    await deliver(events.filter((e) => e.type !== "invoice.paid"));
    expect(await adminView(account)).toMatchObject({ plan: "starter" });
    await stripe.subscriptions.cancel(sub.id);
    const ended = await collectNew(customer);
    // The invoice makes the second one current (the first has ended); then the first one's end.
    await deliver(paid.map((e) => ({ ...e, created: e.created - 60 })));
    await deliver(ended);
    expect(await adminView(account)).toMatchObject({
      plan: "pro",
      current_subscription_id: second.id,
    });
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("a re-subscription in the second the old subscription ended", () => {
  // `created` has one-second resolution: an operator's script that cancels a subscription and
  // creates the next one, or a customer who subscribes again at once, gives the old one's
  // deletion and the new one's events the same second. A deletion outranks a creation, an
  // invoice and an update of its own subscription in that second, but says nothing about
  // another subscription's: the new current one's plan and paid invoice must still apply.
  it.each([
    ["in the order they were emitted", (e: EmittedEvent[]) => e],
    [
      "its paid invoice first",
      (e: EmittedEvent[]) => [
        ...e.filter((x) => x.type === "invoice.paid"),
        ...e.filter((x) => x.type !== "invoice.paid"),
      ],
    ],
  ])(
    "the new subscription's events, %s, after the old one's deletion: Pro and its paid allowance",
    async (_, order) => {
      const { account, customer, sub } = await subscribed();
      // One second for the old subscription's end and the new one's events (a little ahead, so
      // every event below can be in it).
      const second = Math.floor(Date.now() / 1000) + 5;
      await stripe.subscriptions.cancel(sub.id);
      await deliver((await collectNew(customer)).map((e) => ({ ...e, created: second })));
      expect(await balanceOf(account)).toMatchObject({ plan: "free" });
      const fresh = await stripe.subscriptions.create({ customer, items: [{ price: PRO }] });
      expect(fresh.status).toBe("active");
      const events = (await collectNew(customer)).map((e) => ({ ...e, created: second }));
      await deliver(order(events));
      expect(await balanceOf(account)).toMatchObject({ plan: "pro", monthly: 8_000 });
      expect(await adminView(account)).toMatchObject({
        plan: "pro",
        current_subscription_id: fresh.id,
      });
      expect((await audit(account.id)).consistent).toBe(true);
    },
  );
});

/** Whether the local Stripe server has `/v1/refunds` (another change adds it). */
async function refundsAvailable(): Promise<boolean> {
  const res = await fetch(`${env.STRIPE_API_URL}/v1/refunds?limit=1`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  await res.arrayBuffer();
  return res.status === 200;
}
const REFUNDS = await refundsAvailable();

describe("a duplicate subscription from a Checkout race", () => {
  // TODO(refunds): runs once the local Stripe server has POST/GET /v1/refunds (added on the
  // branch that changes local/stripe-server); without it the refund step answers 404 and the
  // completion's webhook 500, which is what a failed refund must do (Stripe redelivers).
  it.skipIf(!REFUNDS)(
    "is cancelled and its payment refunded at once; the account keeps the current one",
    async () => {
      const account = await createAccount("free");
      const customer = account.stripe_customer_id as string;
      const res = await gateway("/v1/account/checkout", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ plan: "pro" }),
      });
      const { url } = await json<{ url: string }>(res);
      // The race keepOnePlanSession cannot close: a subscription made while the session is open.
      await attachCard(account);
      const current = await stripe.subscriptions.create({ customer, items: [{ price: STARTER }] });
      await deliverNew(customer);
      const done = await submitPage(url, { payment_method: "pm_card_visa" });
      await done.arrayBuffer();
      expect(done.headers.get("Location")).toContain("checkout=subscribed");
      const logs = expectLogs([/^duplicate subscription cancelled and refunded/]);
      await deliverNew(customer);
      // Its cancellation's own events are recorded too.
      await deliverNew(customer);
      expect(logs.lines.length).toBeGreaterThan(0);
      const subs = await stripe.subscriptions.list({ customer, status: "all" });
      const duplicate = subs.data.find((s) => s.id !== current.id);
      expect(duplicate?.status).toBe("canceled");
      expect(subs.data.find((s) => s.id === current.id)?.status).toBe("active");
      const refunds = await stripe.refunds.list({ limit: 100 });
      const charges = await chargesOf(customer);
      expect(charges).toHaveLength(2);
      const refunded = refunds.data.filter((r) =>
        charges.some((c) => c.id === (r.payment_intent as string)),
      );
      expect(refunded).toHaveLength(1);
      expect(await balanceOf(account)).toMatchObject({ plan: "starter", monthly: 3_000 });
      const view = await adminView(account);
      expect(view.current_subscription_id).toBe(current.id);
      expect(view.other_subscriptions).toEqual([
        expect.objectContaining({ id: duplicate?.id, status: "canceled" }),
      ]);
      const rows = await db
        .select()
        .from(transactions)
        .where(and(eq(transactions.accountId, account.id), eq(transactions.type, "monthly_grant")))
        .all();
      expect(rows.reduce((s, r) => s + r.credits, 0)).toBe(500 + 3_000);
    },
  );
});
