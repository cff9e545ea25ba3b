/**
 * Model-based test of money rule 9 ("credits follow money that was paid"): random sequences of
 * what a customer and Stripe can do to a subscription (Checkout, portal upgrade and downgrade,
 * an API plan change, cancel now or at period end, renewal, a card that starts failing and
 * `past_due`, paying an open invoice, a duplicate subscription, declines) run through the real
 * local Stripe server, and the events it emits reach the gateway's webhook in a shuffled order
 * with redeliveries. After every step:
 * - the account never holds more monthly credits than the largest plan allowance paid for in
 *   its cycle (Stripe's own paid invoices, read back from the server, are the evidence);
 * - the ledger's replay equals its balance (`audit`).
 * At the end of a sequence, once every event is delivered, a paid current subscription has
 * exactly its paid allowance (credits are not withheld either).
 *
 * When the current subscription ends while another live one exists, the model follows the one
 * the gateway made current (rule 9 lets it be any live one).
 *
 * CI runs a fixed budget of seeds (MODEL_SEEDS, default 10 × 20 steps: about 15 s here); the
 * soak, outside CI, is `MODEL_SEEDS=150 MODEL_STEPS=30 npx vitest run
 * test/integration/subscription-model.test.ts`, about 4-8 minutes on this shared machine. Last
 * runs (2026-12-06): 150 × 30, 2,176 steps, 0 failures; after the last fix (takeover by a late
 * invoice) 150 × 30, 2,124 steps, 2 failures not diagnosed yet (seeds 9066 and 9117, the
 * exactness check at the end: likely two subscriptions' periods ending in the same second).
 * Every seed runs and each failure prints its seed and steps;
 * `MODEL_FIRST_SEED=<seed> MODEL_SEEDS=1 MODEL_VERBOSE=1` replays the same choices and lists
 * the events delivered with their `created` second (the outcome can depend on which events
 * share a second, so a replay may need a few tries).
 */
import { env } from "cloudflare:workers";
import type Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { PLANS, type PlanId } from "../../src/pricing";
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
import { deliverSigned, type EmittedEvent, submitPage } from "../helpers/stripe";
import { Prng } from "../simulation/prng";

const SEEDS = Number(env.MODEL_SEEDS ?? 10);
const STEPS = Number(env.MODEL_STEPS ?? 20);
const FIRST_SEED = Number(env.MODEL_FIRST_SEED ?? 9_001);

type PaidPlan = Exclude<PlanId, "free">;

const stripe = () => stripeFor(env);

function priceOf(plan: PaidPlan): string {
  return (plan === "starter" ? env.STRIPE_PRICE_STARTER : env.STRIPE_PRICE_PRO) as string;
}

function planOfPrice(price: string | null | undefined): PaidPlan | null {
  if (!price) return null;
  if (price === env.STRIPE_PRICE_STARTER) return "starter";
  if (price === env.STRIPE_PRICE_PRO) return "pro";
  return null;
}

/** What the test knows of one account's world. */
interface World {
  rng: Prng;
  account: TestAccount;
  customer: string;
  /** The subscription the customer made through Checkout (the account's current one). */
  current: string | null;
  /** Events emitted about this customer and not delivered yet. */
  undelivered: EmittedEvent[];
  /** Every event delivered so far (redelivery picks from these). */
  delivered: EmittedEvent[];
  seen: Set<string>;
  /** The cycle (its end) in which a live subscription took over from an ended current one. */
  tookOverCycle: string | null;
  startedAt: number;
  log: string[];
}

async function stripeGet<T>(path: string): Promise<T> {
  const res = await fetch(`${env.STRIPE_API_URL}${path}`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  expect(res.status, path).toBe(200);
  return json<T>(res);
}

function customerOf(e: EmittedEvent): string | null {
  const o = e.data.object as { customer?: unknown; id?: unknown; object?: unknown };
  if (typeof o.customer === "string") return o.customer;
  if (o.object === "customer" && typeof o.id === "string") return o.id;
  return null;
}

/** For a verbose replay: what was delivered, with the second it was created in. */
function describeEvent(e: EmittedEvent): string {
  const o = e.data.object as {
    id?: string;
    status?: string;
    billing_reason?: string;
    parent?: { subscription_details?: { subscription?: string } };
    items?: { data: Array<{ price: { id: string } }> };
  };
  const sub = o.parent?.subscription_details?.subscription ?? o.id;
  const price = planOfPrice(o.items?.data[0]?.price.id);
  const what = [o.status, o.billing_reason, price].filter(Boolean).join(" ");
  return `${e.type} ${sub} (${what}) @${e.created}`;
}

/** Pages back through the server's events until the ones made before this sequence began. */
async function collectEvents(w: World): Promise<void> {
  let cursor: string | null = null;
  for (;;) {
    const page: { data: EmittedEvent[]; has_more: boolean } = await stripeGet(
      `/v1/events?limit=100${cursor ? `&starting_after=${cursor}` : ""}`,
    );
    let older = false;
    for (const e of page.data) {
      if (e.created < w.startedAt - 1) older = true;
      if (w.seen.has(e.id) || customerOf(e) !== w.customer) continue;
      w.seen.add(e.id);
      w.undelivered.push(e);
    }
    const last = page.data.at(-1);
    if (older || !page.has_more || !last) return;
    cursor = last.id;
  }
}

/** Delivers some or all pending events, shuffled, sometimes with an old one again. */
async function deliver(w: World, all: boolean): Promise<void> {
  await collectEvents(w);
  const batch = all
    ? w.undelivered.splice(0)
    : w.undelivered.splice(0, w.rng.int(0, w.undelivered.length));
  for (let i = batch.length - 1; i > 0; i--) {
    const j = w.rng.int(0, i);
    [batch[i], batch[j]] = [batch[j] as EmittedEvent, batch[i] as EmittedEvent];
  }
  if (w.delivered.length > 0 && w.rng.chance(0.3)) batch.push(w.rng.pick(w.delivered));
  for (const e of batch) {
    const res = await deliverSigned(e);
    const text = await res.text();
    expect(res.status, `${e.type} ${e.id}: ${text}`).toBe(200);
    if (env.MODEL_VERBOSE) w.log.push(`   ↳ ${describeEvent(e)}`);
    w.delivered.push(e);
  }
}

async function subscription(id: string): Promise<Stripe.Subscription> {
  return stripe().subscriptions.retrieve(id);
}

const isLive = (s: Stripe.Subscription) => ["active", "past_due", "trialing"].includes(s.status);

/** The gateway's current subscription (`GET /admin/accounts/:id`). */
async function gatewayCurrent(w: World): Promise<string | null> {
  const res = await admin(`/accounts/${w.account.id}`);
  expect(res.status).toBe(200);
  return (await json<{ current_subscription_id: string | null }>(res)).current_subscription_id;
}

/**
 * The subscription the account follows. Rule 9: "if the current subscription ends while another
 * live one of ours exists, that one becomes current" (which one, when several are live, is the
 * gateway's choice): once `w.current` has ended, the model follows the gateway's current one if
 * it is such a live one. `strict` (once every event is delivered) requires the gateway to have
 * moved to one when one exists.
 */
async function liveSubscription(w: World, strict = false): Promise<Stripe.Subscription | null> {
  if (!w.current) return null;
  const s = await subscription(w.current);
  if (isLive(s)) return s;
  const subs = await stripe().subscriptions.list({ customer: w.customer, status: "all" });
  const candidates = subs.data.filter((c) => isLive(c) && planOfSubscription(c) !== null);
  if (candidates.length === 0) return null;
  const followed = await gatewayCurrent(w);
  const next = candidates.find((c) => c.id === followed);
  if (strict) {
    expect(
      next?.id,
      `a live subscription becomes current when the current one ends\n${w.log.join("\n")}`,
    ).toBeDefined();
  }
  if (!next) return null;
  w.log.push(`   (the current subscription ended; ${next.id} took over)`);
  w.current = next.id;
  // Its invoices paid while it was not the current one granted nothing (only the current
  // subscription's paid invoices add credits): the cycle it took over in is not checked for
  // exactness, only bounded.
  w.tookOverCycle = await cycleEnd(w);
  return next;
}

function planOfSubscription(s: Stripe.Subscription): PaidPlan | null {
  return planOfPrice(s.items.data[0]?.price.id);
}

async function setCard(w: World, card: "pm_card_visa" | "pm_card_chargeCustomerFail") {
  const pm = await stripe().paymentMethods.attach(card, { customer: w.customer });
  await stripe().customers.update(w.customer, {
    invoice_settings: { default_payment_method: pm.id },
  });
}

async function portalUrl(w: World): Promise<string> {
  const session = await stripe().billingPortal.sessions.create({
    customer: w.customer,
    configuration: env.STRIPE_PORTAL_CONFIGURATION,
  });
  return session.url;
}

/** One action a customer, the operator's portal settings or Stripe's clock can take. */
const ACTIONS: Record<string, (w: World) => Promise<string | null>> = {
  async checkout(w) {
    if (await liveSubscription(w)) return null;
    const plan: PaidPlan = w.rng.chance(0.5) ? "starter" : "pro";
    const res = await gateway("/v1/account/checkout", {
      method: "POST",
      key: w.account.api_key,
      body: JSON.stringify({ plan }),
    });
    const body = await res.text();
    if (res.status === 409) return `checkout ${plan}: ${body}`;
    expect(res.status, body).toBe(200);
    const { url } = JSON.parse(body) as { url: string };
    const done = await submitPage(url, { payment_method: "pm_card_visa" });
    await done.arrayBuffer();
    const subs = await stripe().subscriptions.list({ customer: w.customer, status: "all" });
    w.current = subs.data[0]?.id ?? w.current;
    return `checkout ${plan} → ${w.current}`;
  },
  async checkoutDeclined(w) {
    // A card refused at Checkout: no subscription, no credits.
    if (await liveSubscription(w)) return null;
    const res = await gateway("/v1/account/checkout", {
      method: "POST",
      key: w.account.api_key,
      body: JSON.stringify({ plan: "pro" }),
    });
    if (res.status !== 200) return `checkout pro: ${res.status} ${await res.text()}`;
    const { url } = await json<{ url: string }>(res);
    const done = await submitPage(url, { payment_method: "pm_card_chargeDeclined" });
    await done.arrayBuffer();
    return `checkout pro, card declined (${done.status})`;
  },
  async duplicate(w) {
    // What a simultaneous second Checkout leaves behind: another live subscription.
    if (!(await liveSubscription(w))) return null;
    const plan: PaidPlan = w.rng.chance(0.5) ? "starter" : "pro";
    const s = await stripe().subscriptions.create({
      customer: w.customer,
      items: [{ price: priceOf(plan) }],
    });
    return `duplicate ${plan} ${s.id} (${s.status})`;
  },
  async portalUpgrade(w) {
    const s = await liveSubscription(w);
    if (!s || planOfSubscription(s) !== "starter") return null;
    const item = s.items.data[0] as Stripe.SubscriptionItem;
    await stripe().subscriptions.update(s.id, {
      items: [{ id: item.id, price: priceOf("pro") }],
      proration_behavior: "always_invoice",
    });
    return `upgrade (always_invoice) ${s.id}`;
  },
  async portalSwitch(w) {
    // The customer portal as `stripe:setup` configures it: upgrades invoiced at once, downgrades
    // scheduled for the end of the period.
    const s = await liveSubscription(w);
    if (!s) return null;
    const to: PaidPlan = planOfSubscription(s) === "pro" ? "starter" : "pro";
    const res = await submitPage(`${await portalUrl(w)}/subscriptions/${s.id}/update`, {
      price: priceOf(to),
    });
    const where = res.headers.get("Location") ?? "";
    await res.arrayBuffer();
    const error = new URL(where, "http://x").searchParams.get("error");
    return `portal switch to ${to} ${s.id}${error ? ` refused: ${error}` : ""}`;
  },
  async portalCancel(w) {
    const s = await liveSubscription(w);
    if (!s) return null;
    const res = await submitPage(`${await portalUrl(w)}/subscriptions/${s.id}/cancel`, {});
    await res.arrayBuffer();
    return `portal cancel ${s.id}`;
  },
  async apiUpgrade(w) {
    // The API's default: prorations wait for the next invoice.
    const s = await liveSubscription(w);
    if (!s || planOfSubscription(s) !== "starter") return null;
    const item = s.items.data[0] as Stripe.SubscriptionItem;
    await stripe().subscriptions.update(s.id, {
      items: [{ id: item.id, price: priceOf("pro") }],
      proration_behavior: "create_prorations",
    });
    return `upgrade (create_prorations) ${s.id}`;
  },
  async downgrade(w) {
    const s = await liveSubscription(w);
    if (!s || planOfSubscription(s) !== "pro") return null;
    const item = s.items.data[0] as Stripe.SubscriptionItem;
    const proration = w.rng.pick(["create_prorations", "none", "always_invoice"] as const);
    await stripe().subscriptions.update(s.id, {
      items: [{ id: item.id, price: priceOf("starter") }],
      proration_behavior: proration,
    });
    return `downgrade (${proration}) ${s.id}`;
  },
  async cancelAtPeriodEnd(w) {
    const s = await liveSubscription(w);
    if (!s || s.cancel_at_period_end) return null;
    await stripe().subscriptions.update(s.id, { cancel_at_period_end: true });
    return `cancel at period end ${s.id}`;
  },
  async cancelNow(w) {
    const s = await liveSubscription(w);
    if (!s) return null;
    await stripe().subscriptions.cancel(s.id);
    return `cancel now ${s.id}`;
  },
  async renew(w) {
    const s = await liveSubscription(w);
    if (!s) return null;
    const res = await fetch(`${env.STRIPE_API_URL}/_local/subscriptions/${s.id}/renew`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return `renew ${s.id}`;
  },
  async cardFails(w) {
    await setCard(w, "pm_card_chargeCustomerFail");
    return "card starts failing";
  },
  async cardWorks(w) {
    await setCard(w, "pm_card_visa");
    return "card works";
  },
  async payOpenInvoice(w) {
    const open = await stripe().invoices.list({ customer: w.customer, status: "open" });
    const invoice = open.data.find((i) => i.parent?.subscription_details?.subscription);
    if (!invoice?.id) return null;
    try {
      await stripe().invoices.pay(invoice.id);
      return `pay ${invoice.id} (${invoice.billing_reason})`;
    } catch (err) {
      return `pay ${invoice.id} declined: ${(err as Error).message}`;
    }
  },
};

const WEIGHTS: Record<keyof typeof ACTIONS, number> = {
  checkout: 4,
  checkoutDeclined: 1,
  duplicate: 1,
  portalUpgrade: 2,
  portalSwitch: 3,
  portalCancel: 1,
  apiUpgrade: 1,
  downgrade: 2,
  cancelAtPeriodEnd: 1,
  cancelNow: 1,
  renew: 3,
  cardFails: 1,
  cardWorks: 2,
  payOpenInvoice: 2,
};

/**
 * The largest allowance paid for in the account's cycle: the plans of the positive lines of the
 * customer's paid invoices whose period ends with the cycle. The Free allowance needs no
 * payment. Only the account's current subscription counts when `currentOnly`.
 */
async function paidAllowance(w: World, cycleEndsAt: string, currentOnly: boolean): Promise<number> {
  const end = Math.floor(Date.parse(cycleEndsAt) / 1000);
  const invoices = await stripe().invoices.list({
    customer: w.customer,
    status: "paid",
    limit: 100,
  });
  let best = PLANS.free.monthlyCredits;
  for (const invoice of invoices.data) {
    const sub = invoice.parent?.subscription_details?.subscription;
    if (!sub || (currentOnly && sub !== w.current)) continue;
    for (const line of invoice.lines.data) {
      const price = line.pricing?.price_details?.price;
      const plan = planOfPrice(typeof price === "string" ? price : price?.id);
      if (plan && line.amount > 0 && line.period.end === end)
        best = Math.max(best, PLANS[plan].monthlyCredits);
    }
  }
  return best;
}

async function cycleEnd(w: World): Promise<string> {
  const res = await gateway("/v1/account/balance", { key: w.account.api_key });
  expect(res.status).toBe(200);
  return (await json<{ cycle_ends_at: string }>(res)).cycle_ends_at;
}

async function checkSafety(w: World): Promise<void> {
  const balance = await balanceOf(w.account);
  const bound = await paidAllowance(w, await cycleEnd(w), false);
  expect(
    balance.monthly,
    `rule 9: monthly ≤ paid allowance\n${w.log.join("\n")}`,
  ).toBeLessThanOrEqual(bound);
  expect((await audit(w.account.id)).consistent, w.log.join("\n")).toBe(true);
}

async function checkSettled(w: World): Promise<void> {
  const s = await liveSubscription(w, true);
  const shown = await json<{ plan: string }>(
    await gateway("/v1/account", { key: w.account.api_key }),
  );
  // Only the current subscription moves the plan: a duplicate's or an old one's events do not.
  const expected = s ? planOfSubscription(s) : "free";
  expect(shown.plan, `the plan follows the current subscription\n${w.log.join("\n")}`).toBe(
    expected,
  );
  if (s?.status !== "active") return;
  const latest = s.latest_invoice;
  const invoiceId = typeof latest === "string" ? latest : latest?.id;
  if (!invoiceId || (await stripe().invoices.retrieve(invoiceId)).status !== "paid") return;
  const end = await cycleEnd(w);
  if (end === w.tookOverCycle) return;
  // The local server's renew control moves a subscription's periods ahead of the clock, but a
  // subscription made afterwards starts at the clock: its first period can end before the
  // cycle of the one it replaced, which Stripe's clock (one per customer, test clocks too) never
  // produces. Rule 9 orders cycles by their end ("an invoice for an older period never moves
  // the cycle back"), so such an account may stay in the ended subscription's cycle (paid for,
  // and bounded above); only exactness, which assumes Stripe's clock, is not checked then.
  const periodEnd = s.items.data[0]?.current_period_end ?? 0;
  if (Date.parse(end) > periodEnd * 1000) return;
  const balance = await balanceOf(w.account);
  const paid = await paidAllowance(w, end, true);
  expect(balance.monthly, `paid credits granted\n${w.log.join("\n")}`).toBe(paid);
}

/** Runs one action; one that Stripe refuses (e.g. a change to a scheduled subscription) is logged. */
async function attempt(name: string, w: World): Promise<string | null> {
  try {
    return await (ACTIONS[name] as (w: World) => Promise<string | null>)(w);
  } catch (err) {
    const e = err as { type?: string; message?: string };
    if (e.type !== "StripeInvalidRequestError" && e.type !== "StripeCardError") throw err;
    return `${name} refused by Stripe: ${e.message}`;
  }
}

async function runSeed(seed: number): Promise<number> {
  const rng = new Prng(seed);
  const account = await createAccount();
  const w: World = {
    rng,
    account,
    customer: account.stripe_customer_id as string,
    current: null,
    undelivered: [],
    delivered: [],
    seen: new Set(),
    tookOverCycle: null,
    startedAt: Math.floor(Date.now() / 1000),
    log: [`seed ${seed}`],
  };
  await setCard(w, "pm_card_visa");
  let steps = 0;
  for (let i = 0; i < STEPS; i++) {
    const name = rng.weighted(WEIGHTS);
    const did = await attempt(name, w);
    if (!did) continue;
    steps++;
    w.log.push(`${i}: ${did}`);
    await deliver(w, rng.chance(0.4));
    await checkSafety(w);
  }
  await deliver(w, true);
  await checkSafety(w);
  await checkSettled(w);
  if (env.MODEL_VERBOSE)
    console.log(w.log.join("\n"), await balanceOf(w.account), await cycleEnd(w));
  return steps;
}

describe("rule 9 under random subscription histories (model-based)", () => {
  it(`${SEEDS} seeds × up to ${STEPS} steps through the local Stripe server`, async () => {
    let total = 0;
    // Every seed runs (each on its own account) so one soak reports every distinct failure.
    const failures: string[] = [];
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
      try {
        total += await runSeed(seed);
      } catch (err) {
        failures.push(`seed ${seed}: ${(err as Error).message}`);
        console.log(`seed ${seed} failed: ${(err as Error).message.split("\n")[0]}`);
      }
    }
    console.log(`subscription model: ${SEEDS} seeds, ${total} steps, ${failures.length} failed`);
    expect(failures.join("\n\n")).toBe("");
    expect(total).toBeGreaterThan(SEEDS);
  }, 600_000);
});
