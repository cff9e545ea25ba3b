import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  admin,
  balanceOf,
  createAccount,
  expectError,
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
  stripeRequests,
  submitPage,
} from "../helpers/stripe";

interface AccountBody {
  plan: string;
  complimentary: boolean;
  subscription: null | {
    status: string;
    current_period_end: string | null;
    cancel_at_period_end: boolean;
  };
  payment_method: null | { brand: string; last4: string; exp_month: number; exp_year: number };
}

async function accountOf(account: TestAccount) {
  const res = await gateway("/v1/account", { key: account.api_key });
  expect(res.status).toBe(200);
  return json<AccountBody>(res);
}

async function checkoutUrl(account: TestAccount, path: string, body: unknown) {
  const res = await gateway(path, {
    method: "POST",
    key: account.api_key,
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  const { url } = await json<{ url: string }>(res);
  expect(url).toMatch(/\/c\/pay\/cs_/);
  return url;
}

/** A person completes the hosted Checkout page with a test card. */
async function completeCheckout(url: string, card = "pm_card_visa") {
  const res = await submitPage(url, { payment_method: card });
  expect(res.status).toBe(303);
  await res.arrayBuffer();
  return res.headers.get("Location") as string;
}

async function deliverAll(events: EmittedEvent[]) {
  for (const e of events) {
    const res = await deliverSigned(e);
    expect(res.status, e.type).toBe(200);
    await res.arrayBuffer();
  }
}

async function subscriptionsOf(customer: string) {
  const res = await fetch(
    `${env.STRIPE_API_URL}/v1/subscriptions?customer=${customer}&status=all`,
    {
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    },
  );
  return (await json<{ data: Array<{ id: string; status: string }> }>(res)).data;
}

/** Whether the local Stripe server has `/v1/refunds` (another change adds it). */
async function refundsAvailable(): Promise<boolean> {
  const res = await fetch(`${env.STRIPE_API_URL}/v1/refunds?limit=1`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  await res.arrayBuffer();
  return res.status === 200;
}
const REFUNDS = await refundsAvailable();

async function defaultCardOf(customer: string) {
  const res = await fetch(`${env.STRIPE_API_URL}/v1/customers/${customer}`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  return (await json<{ invoice_settings: { default_payment_method: string | null } }>(res))
    .invoice_settings.default_payment_method;
}

describe("plans through Stripe Checkout", () => {
  it("a free account subscribes to Starter: the plan, its credits, the subscription and the card", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const url = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
    const back = await completeCheckout(url);
    expect(back).toContain("checkout=subscribed");
    const events = await eventsFor(customer);
    expect(events.map((e) => e.type)).toContain("checkout.session.completed");
    await deliverAll(events);
    const view = await accountOf(account);
    expect(view).toMatchObject({
      plan: "starter",
      complimentary: false,
      subscription: { status: "active", cancel_at_period_end: false },
      payment_method: { brand: "visa", last4: "4242" },
    });
    expect(view.subscription?.current_period_end).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(view.payment_method?.exp_year).toBeGreaterThan(2025);
    expect(await balanceOf(account)).toMatchObject({ monthly: 3_000, purchased: 0 });
    // Newest first: the plan's grant tops the history, above the Free plan's first grant
    // (which the same second can hold: Stripe's times have whole seconds only).
    const history = await json<{ data: Array<{ type: string; credits: number }> }>(
      await gateway("/v1/account/transactions?limit=2", { key: account.api_key }),
    );
    expect(history.data[0]).toMatchObject({ type: "monthly_grant", credits: 3_000 });
    // Checkout put the card on the subscription only; the gateway made it the customer's default.
    expect(await defaultCardOf(customer)).toMatch(/^pm_/);
    // A live subscription is changed in the portal, not with a second Checkout.
    const again = await gateway("/v1/account/checkout", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ plan: "pro" }),
    });
    await expectError(again, 409, "subscription_exists");
  });

  it("completion events in any order, each delivered twice, end the same way", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    await completeCheckout(await checkoutUrl(account, "/v1/account/checkout", { plan: "pro" }));
    const events = await eventsFor(customer);
    await deliverAll([...events].reverse());
    await deliverAll(events);
    expect(await accountOf(account)).toMatchObject({
      plan: "pro",
      subscription: { status: "active" },
      payment_method: { brand: "visa", last4: "4242" },
    });
    // Money rule 9: one cycle's grant, however many times and in whatever order.
    expect((await balanceOf(account)).monthly).toBe(8_000);
  });

  it("two Checkout sessions opened (two tabs, a double click): only one can be completed", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const first = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
    const second = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
    // Opened in the same second, the second request may keep the first session (and expire
    // its own); otherwise the first was expired: its page says so and refuses the card.
    if (second !== first) {
      const page = await fetch(first);
      expect(await page.text()).toMatch(/This Checkout Session is <span id="status">expired</);
      const refused = await completeCheckout(first);
      expect(refused).toContain("error=");
      expect(refused).not.toContain("checkout=subscribed");
    }
    expect(await completeCheckout(second)).toContain("checkout=subscribed");
    const events = await eventsFor(customer);
    expect(events.filter((e) => e.type === "checkout.session.expired")).toHaveLength(1);
    expect(events.filter((e) => e.type === "checkout.session.completed")).toHaveLength(1);
    await deliverAll(events);
    const subs = await subscriptionsOf(customer);
    expect(subs.map((s) => s.status)).toEqual(["active"]);
    expect(await chargesOf(customer)).toHaveLength(1);
    expect(await accountOf(account)).toMatchObject({
      plan: "starter",
      subscription: { status: "active" },
    });
    expect((await balanceOf(account)).monthly).toBe(3_000);
  });

  it("the same request retried (one Idempotency-Key) keeps its session open", async () => {
    const account = await createAccount("free");
    const open = () =>
      gateway("/v1/account/checkout", {
        method: "POST",
        key: account.api_key,
        headers: { "Idempotency-Key": "double-click-1" },
        body: JSON.stringify({ plan: "starter" }),
      });
    const a = await json<{ url: string }>(await open());
    const b = await json<{ url: string }>(await open());
    expect(b.url).toBe(a.url);
    expect(await completeCheckout(a.url)).toContain("checkout=subscribed");
  });

  it("a second session a second later always expires the first", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const first = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
    await new Promise((r) => setTimeout(r, 1_100));
    const second = await checkoutUrl(account, "/v1/account/checkout", { plan: "pro" });
    expect(second).not.toBe(first);
    expect(await completeCheckout(first)).toContain("error=");
    expect(await completeCheckout(second)).toContain("checkout=subscribed");
    await deliverAll(await eventsFor(customer));
    expect((await subscriptionsOf(customer)).map((s) => s.status)).toEqual(["active"]);
    expect(await chargesOf(customer)).toHaveLength(1);
    expect((await accountOf(account)).plan).toBe("pro");
  });

  // TODO(refunds): runs once the local Stripe server has /v1/refunds (added on the branch that
  // changes local/stripe-server); without it the refund answers 404 and the webhook 502.
  it.skipIf(!REFUNDS)(
    "a plan Checkout completed beside another live subscription is cancelled and refunded",
    async () => {
      const account = await createAccount("free");
      const customer = account.stripe_customer_id as string;
      const url = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
      // The race keepOnePlanSession cannot close: a subscription made while the session is open.
      await attachCard(account);
      const res = await fetch(`${env.STRIPE_API_URL}/v1/subscriptions`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${env.STRIPE_SECRET_KEY}`,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({
          customer,
          "items[0][price]": env.STRIPE_PRICE_STARTER as string,
        }),
      });
      const other = await json<{ id: string; status: string }>(res);
      expect(other.status).toBe("active");
      expect(await completeCheckout(url)).toContain("checkout=subscribed");
      const logs = expectLogs([/^duplicate subscription cancelled and refunded/]);
      await deliverAll(await eventsFor(customer));
      expect(logs.lines.length).toBeGreaterThan(0);
      // The subscription that came first is the account's; the Checkout's is the duplicate.
      const subs = await subscriptionsOf(customer);
      expect(subs.find((s) => s.id === other.id)?.status).toBe("active");
      expect(subs.filter((s) => s.id !== other.id).map((s) => s.status)).toEqual(["canceled"]);
      expect(await accountOf(account)).toMatchObject({ plan: "starter" });
      expect((await balanceOf(account)).monthly).toBe(3_000);
    },
  );

  // …0002 is declined when it is saved, …0341 when the first invoice is charged: either way
  // Checkout shows the error on the page and the session stays open.
  for (const card of ["pm_card_chargeDeclined", "pm_card_chargeCustomerFail"]) {
    it(`a declined card (${card}) on the Checkout page completes nothing`, async () => {
      const account = await createAccount("free");
      const url = await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" });
      const res = await submitPage(url, { payment_method: card });
      await res.arrayBuffer();
      expect(res.headers.get("Location")).toContain("error=");
      await deliverAll(await eventsFor(account.stripe_customer_id as string));
      expect(await accountOf(account)).toMatchObject({
        plan: "free",
        subscription: null,
        payment_method: null,
      });
    });
  }

  it("an unknown plan is a 400 naming the field", async () => {
    const account = await createAccount("free");
    const res = await gateway("/v1/account/checkout", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ plan: "enterprise" }),
    });
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.map((f) => f.field)).toEqual(["plan"]);
  });
});

describe("cards through Checkout setup mode", () => {
  it("the new card becomes the customer's default and shows on the account", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const url = await checkoutUrl(account, "/v1/account/payment-method/setup", {});
    expect(await completeCheckout(url, "pm_card_mastercard")).toContain("checkout=card_added");
    await deliverAll(await eventsFor(customer));
    expect((await accountOf(account)).payment_method).toMatchObject({
      brand: "mastercard",
      last4: "4444",
    });
    expect(await defaultCardOf(customer)).toMatch(/^pm_/);
    // Now it can enable auto-recharge (a card on file).
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    expect(on.status).toBe(200);
    await on.arrayBuffer();
  });

  it("a late completion of an older Checkout does not put its card back over one saved since", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    // Subscribe with a Visa, but hold back that session's completion event (a Stripe retry).
    await completeCheckout(await checkoutUrl(account, "/v1/account/checkout", { plan: "starter" }));
    const first = await eventsFor(customer);
    const held = first.filter((e) => e.type === "checkout.session.completed");
    expect(held).toHaveLength(1);
    await deliverAll(first.filter((e) => e.type !== "checkout.session.completed"));
    // Then a Mastercard through setup mode, delivered at once.
    const setup = await checkoutUrl(account, "/v1/account/payment-method/setup", {});
    await completeCheckout(setup, "pm_card_mastercard");
    const seen = new Set(first.map((e) => e.id));
    await deliverAll((await eventsFor(customer)).filter((e) => !seen.has(e.id)));
    expect((await accountOf(account)).payment_method).toMatchObject({ last4: "4444" });
    const mastercard = await defaultCardOf(customer);
    // The old completion arrives last: the Mastercard stays the default.
    await deliverAll(held);
    expect(await defaultCardOf(customer)).toBe(mastercard);
    expect((await accountOf(account)).payment_method).toMatchObject({ last4: "4444" });
  });

  it("a card declined when it is saved: the page shows the error, no card is added", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const url = await checkoutUrl(account, "/v1/account/payment-method/setup", {});
    const back = await completeCheckout(url, "pm_card_chargeDeclinedInsufficientFunds");
    expect(back).toContain("error=");
    expect(back).not.toContain("checkout=card_added");
    await deliverAll(await eventsFor(customer));
    expect((await accountOf(account)).payment_method).toBeNull();
    expect(await defaultCardOf(customer)).toBeNull();
    // The card that saves fine (and fails only when charged) is added.
    expect(await completeCheckout(url, "pm_card_chargeCustomerFail")).toContain(
      "checkout=card_added",
    );
    await deliverAll(await eventsFor(customer));
    expect((await accountOf(account)).payment_method).toMatchObject({ last4: "0341" });
  });
});

describe("complimentary plans (operators)", () => {
  it("a paid plan without a subscription must be asked for as complimentary", async () => {
    const res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: "gift@example.com", plan: "pro" }),
    });
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.map((f) => f.field)).toEqual(["complimentary"]);
  });

  it("is shown as complimentary, with the plan's monthly credits", async () => {
    const account = await createAccount("pro");
    expect(await accountOf(account)).toMatchObject({
      plan: "pro",
      complimentary: true,
      subscription: null,
    });
    expect((await balanceOf(account)).monthly).toBe(8_000);
  });
});

describe("checkout amplification (issue 18 item 7)", () => {
  /** Every Stripe API call made for this customer's subscriptions and Checkout sessions. */
  async function stripeCallsFor(customer: string) {
    // The log first: the listing below is this test's own call.
    const calls = [
      ...(await stripeRequests("/v1/checkout/sessions*")),
      ...(await stripeRequests("/v1/subscriptions*")),
    ];
    const sessions = await fetch(
      `${env.STRIPE_API_URL}/v1/checkout/sessions?customer=${customer}&limit=100`,
      { headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` } },
    );
    const ids = new Set(
      (await json<{ data: Array<{ id: string }> }>(sessions)).data.map((s) => s.id),
    );
    return calls.filter(
      (r) =>
        // (This helper's own listings ask for every status; the gateway's for open ones.)
        (r.params.customer === customer && !(r.method === "GET" && !r.params.status)) ||
        [...ids].some((id) => r.path.startsWith(`/v1/checkout/sessions/${id}`)),
    );
  }

  it("30 parallel Checkout requests from one account: a bounded number of Stripe calls, then 429", async () => {
    const account = await createAccount("free");
    const customer = account.stripe_customer_id as string;
    const n = 30;
    const results = await Promise.all(
      Array.from({ length: n }, () =>
        gateway("/v1/account/checkout", {
          method: "POST",
          key: account.api_key,
          body: JSON.stringify({ plan: "starter" }),
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    await Promise.all(ok.map((r) => r.arrayBuffer()));
    expect(ok).toHaveLength(10);
    expect(limited).toHaveLength(n - 10);
    expect(Number(limited[0]?.headers.get("Retry-After"))).toBeGreaterThan(0);
    await expectError(limited[0] as Response, 429, "rate_limited");
    await Promise.all(limited.slice(1).map((r) => r.arrayBuffer()));
    // At most six calls per accepted request (list subscriptions, create, one page of open
    // sessions, at most three expiries), none for a refused one: never O(N²).
    const calls = await stripeCallsFor(customer);
    expect(calls.length).toBeLessThanOrEqual(6 * 10);
    // Card setup shares the hourly count: refused before any Stripe call.
    const setup = await gateway("/v1/account/payment-method/setup", {
      method: "POST",
      key: account.api_key,
      body: "{}",
    });
    await expectError(setup, 429, "rate_limited");
    expect((await stripeCallsFor(customer)).length).toBe(calls.length);
  });

  it("the billing portal, top-ups and alert settings are limited per account per hour too", async () => {
    const account = await createAccount("free");
    const call = (method: string, path: string, body: unknown) => () =>
      gateway(path, { method, key: account.api_key, body: JSON.stringify(body) });
    for (const [limit, status, request] of [
      [20, 200, call("POST", "/v1/account/billing-portal", {})],
      // No card on file: each is refused by the ledger, but counted first.
      [30, 409, call("POST", "/v1/account/top-ups", { package: "credits_1000" })],
      [20, 200, call("PUT", "/v1/account/alerts", { low_balance_credits: 100 })],
    ] as const) {
      for (let i = 0; i < limit; i++) {
        const res = await request();
        expect(res.status).toBe(status);
        await res.arrayBuffer();
      }
      const refused = await request();
      expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThan(3_500);
      await expectError(refused, 429, "rate_limited");
    }
  });
});
