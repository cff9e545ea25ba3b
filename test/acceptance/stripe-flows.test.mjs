// @ts-check
/**
 * The billing flows of issue 12 against the local Stripe-compatible server (local/stripe-server/,
 * held to Stripe's object shapes by its selftest), started here with what Stripe documents it may
 * do: search answers 1.5 s behind writes, webhooks arrive in shuffled order and are retried. The
 * server is set up the way an operator sets up Stripe (`setup` of scripts/stripe-setup.mjs:
 * products, prices, portal configuration, webhook endpoint), then the stack runs against it with
 * STRIPE_API_URL. Everything below goes through the gateway's public HTTP API (API.md) and
 * through the hosted pages a customer would use.
 *
 * Flows: (1) a plan through Checkout; (2) a card through Checkout setup mode; (3) purchases as
 * one-off invoices; (4) a payment that needs authentication, paid on the hosted invoice page, and
 * one voided; (5) the billing portal. Last, every request the server received was well-formed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CARD_TEMPLATES } from "../../local/stripe-server/payments.mjs";
import { signPayload, startStripeServer } from "../../local/stripe-server/server.mjs";
import { stripeClient, setup as stripeSetup } from "../../scripts/stripe-setup.mjs";
import {
  admin,
  balanceOf,
  call,
  classify,
  createAccount,
  EXTERNAL,
  expectError,
  fieldNames,
  freePort,
  setBalance,
  startStack,
  waitFor,
} from "./helpers.mjs";

const SECRET_KEY = "sk_test_acceptance_flows";
const SKIP = EXTERNAL ? "starts its own Stripe-compatible server and stack" : false;
/** The server's object maps, by Stripe object type. */
const MAPS = /** @type {const} */ ({
  customer: "customers",
  payment_method: "paymentMethods",
  payment_intent: "paymentIntents",
  price: "prices",
  invoice: "invoices",
  subscription: "subscriptions",
  "checkout.session": "checkoutSessions",
  "billing_portal.configuration": "portalConfigurations",
  "billing_portal.session": "portalSessions",
  webhook_endpoint: "webhookEndpoints",
});

/** @type {Awaited<ReturnType<typeof startStripeServer>>} */
let stripe;
/** @type {import("./helpers.mjs").Stack} */
let stack;
/** @type {Record<string, string>} */
let configured;

before(async () => {
  if (SKIP) return;
  // The gateway's port is chosen before it starts (the webhook endpoint made by stripe:setup
  // names it). Should another process take the port meanwhile, the stack would answer from
  // someone else's gateway: that is noticed (the admin token is refused) and tried again.
  for (let attempt = 1; ; attempt++) {
    // Stripe guarantees no delivery order either: events arrive shuffled. Search is eventually
    // consistent in Stripe ("under 1 minute"): a lag keeps the gateway honest about
    // read-after-write (it must rely on idempotency keys, not on finding what it just made).
    stripe = await startStripeServer({
      port: 0,
      quiet: true,
      searchLagMs: 1_500,
      webhookShuffleMs: 400,
      webhookRetries: 4,
    });
    const port = await freePort();
    const gatewayUrl = `http://127.0.0.1:${port}`;
    const made = await stripeSetup({
      stripe: stripeClient(SECRET_KEY, stripe.url),
      gatewayUrl,
      dashboardUrl: `${gatewayUrl}/account/billing`,
      apiLabel: stripe.url,
      mode: "test",
    });
    configured = made.env;
    assert.ok(configured.STRIPE_WEBHOOK_SECRET?.startsWith("whsec_"), "setup made the endpoint");
    stack = await startStack({
      env: {
        PORT: String(port),
        STRIPE_API_URL: stripe.url,
        STRIPE_SECRET_KEY: SECRET_KEY,
        ...configured,
      },
    });
    const probe = await admin(stack, "/accounts/acc_probe_does_not_exist");
    if (probe.status !== 401) return;
    await stack.stop();
    await stripe.close();
    if (attempt === 3) assert.fail(`port ${port}: another gateway answers there`);
  }
});
after(async () => {
  await stack?.stop();
  await stripe?.close();
});

// ----- helpers: a customer's browser on the hosted pages -------------------------------------

/**
 * The first form of a page (or the one whose attribute matches `pick`), as a browser sees it.
 * @param {string} html @param {string} [pick]
 */
function formOf(html, pick) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
  const form = pick ? forms.find((f) => f[1].includes(pick)) : forms[0];
  assert.ok(form, `a form${pick ? ` (${pick})` : ""} on the page: ${html.slice(0, 400)}`);
  const action = /action="([^"]*)"/.exec(form[1])?.[1] ?? "";
  /** @type {Record<string, string>} */
  const fields = {};
  for (const m of form[2].matchAll(/<input\b([^>]*)>/g)) {
    const name = /name="([^"]*)"/.exec(m[1])?.[1];
    if (name) fields[name] = (/value="([^"]*)"/.exec(m[1])?.[1] ?? "").replaceAll("&amp;", "&");
  }
  const buttons = [...form[2].matchAll(/<button\b([^>]*)>/g)].map((b) => ({
    name: /name="([^"]*)"/.exec(b[1])?.[1] ?? null,
    value: /value="([^"]*)"/.exec(b[1])?.[1] ?? "",
  }));
  return { action, fields, buttons };
}

/**
 * Submits a form the way a browser does (urlencoded, the pressed button's name=value).
 * @param {string} pageUrl @param {ReturnType<typeof formOf>} form
 * @param {Record<string, string>} fill @param {string} [button]  the pressed button's value
 */
async function submit(pageUrl, form, fill, button) {
  /** @type {Record<string, string>} */
  const fields = { ...form.fields, ...fill };
  if (button !== undefined) {
    const b = form.buttons.find((x) => x.value === button);
    assert.ok(b?.name, `a button with value ${button}`);
    fields[b.name] = b.value;
  }
  const res = await fetch(new URL(form.action, pageUrl), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
    redirect: "manual",
  });
  return { status: res.status, location: res.headers.get("location"), html: await res.text() };
}

/** @param {string} url */
async function getPage(url) {
  const res = await fetch(url);
  return { status: res.status, html: await res.text() };
}

/**
 * Completes a hosted Checkout page with a test card (the customer is present, so a card that
 * asks for authentication is authenticated there).
 * @param {string} url @param {keyof typeof CARD_TEMPLATES} card
 */
async function payOnCheckout(url, card) {
  const pageRes = await getPage(url);
  assert.equal(pageRes.status, 200, `the Checkout page: ${pageRes.html.slice(0, 300)}`);
  const res = await submit(url, formOf(pageRes.html, 'id="checkout"'), { payment_method: card });
  assert.equal(res.status, 303, `Checkout redirects: ${res.status} ${res.html.slice(0, 300)}`);
  const location = /** @type {string} */ (res.location);
  assert.ok(!location.includes("error="), `Checkout completes: ${decodeURIComponent(location)}`);
  return location;
}

/** The operator's own Stripe calls (the SDK, as the Dashboard or a script would). */
const operator = () => stripeClient(SECRET_KEY, stripe.url);

/** @param {boolean} frozen Freezes the clock Stripe's objects and events are stamped with. */
async function freezeClock(frozen) {
  const res = await fetch(`${stripe.url}/_test/clock`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ frozen }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** @param {keyof typeof MAPS} type @param {string} id @returns {any} */
const object = (type, id) => stripe.state[MAPS[type]].get(id) ?? null;
/** @param {keyof typeof MAPS} type @returns {any[]} */
const all = (type) => [...stripe.state[MAPS[type]].values()];
/** Events, oldest first. */
const events = () => [...stripe.state.events.values()];
/** @param {string} eventId */
const acceptedOnce = (eventId) =>
  stripe.state.webhookDeliveries.some(
    (d) => d.event_id === eventId && d.status !== null && d.status < 300,
  );

/** @param {string} key */
const transactions = async (key) => {
  const res = await call(stack, "/v1/account/transactions?limit=100", { key });
  assert.equal(res.status, 200, res.text);
  return /** @type {any[]} */ (res.body.data);
};
/** @param {string} key @param {(t: any) => boolean} pred @param {string} what */
const waitForTransaction = (key, pred, what) =>
  waitFor(async () => (await transactions(key)).find(pred), what);
/** @param {string} key */
const accountOf = async (key) => {
  const res = await call(stack, "/v1/account", { key });
  assert.equal(res.status, 200, res.text);
  return res.body;
};
/** @param {string} customer */
const customerInStripe = (customer) => object("customer", customer);
/** @param {string} rechargeId */
const invoicesFor = (rechargeId) =>
  all("invoice").filter((i) => i.metadata?.recharge_id === rechargeId);
/** @param {string} customer @param {string} type */
const delivered = (customer, type) =>
  events()
    .filter(
      (e) =>
        e.type === type && (e.data.object.customer === customer || e.data.object.id === customer),
    )
    .filter((e) => acceptedOnce(e.id));

/**
 * The purchased credits once a grant has landed: the history row says succeeded a moment
 * before the ledger grants, so a single read right after it can still see 0.
 * @param {string} key
 */
async function purchasedOnceSettled(key) {
  return (
    await waitFor(async () => {
      const b = await balanceOf(stack, key);
      return b.purchased > 0 ? b : null;
    }, "the purchased credits are granted")
  ).purchased;
}

/**
 * Turns auto-recharge on for `pkg` and spends one request from 101 credits to 100, the
 * threshold, so the recharge starts.
 * @param {{ api_key: string }} account
 * @param {string} pkg
 */
async function rechargeAtThreshold(account, pkg) {
  const put = await call(stack, "/v1/account/auto-recharge", {
    method: "PUT",
    key: account.api_key,
    body: { enabled: true, package: pkg },
  });
  assert.equal(put.status, 200, put.text);
  await setBalance(stack, account, { monthly: 101, purchased: 0 });
  assert.equal((await classify(stack, account.api_key)).status, 200);
}

/**
 * A free account whose card was added through Checkout setup mode.
 * @param {keyof typeof CARD_TEMPLATES} card
 */
async function accountWithCard(card) {
  const account = await createAccount(stack);
  const res = await call(stack, "/v1/account/payment-method/setup", {
    key: account.api_key,
    body: {},
  });
  assert.equal(res.status, 200, res.text);
  await payOnCheckout(res.body.url, card);
  await waitFor(
    async () =>
      (await accountOf(account.api_key)).payment_method?.last4 === CARD_TEMPLATES[card].last4,
    "the card from Checkout is the account's payment method",
  );
  return account;
}

// ----- the flows -----------------------------------------------------------------------------

describe("Stripe flows against the local Stripe-compatible server", { skip: SKIP }, () => {
  test("stripe:setup made the catalog the gateway is configured with", () => {
    for (const [name, lookup, amount, recurring] of [
      ["STRIPE_PRICE_STARTER", "tollgate_plan_starter", 1900, true],
      ["STRIPE_PRICE_PRO", "tollgate_plan_pro", 3900, true],
      ["STRIPE_PRICE_CREDITS_1000", "tollgate_package_credits_1000", 700, false],
      ["STRIPE_PRICE_CREDITS_3000", "tollgate_package_credits_3000", 1700, false],
      ["STRIPE_PRICE_CREDITS_9000", "tollgate_package_credits_9000", 3700, false],
    ]) {
      const price = object("price", configured[/** @type {string} */ (name)]);
      assert.ok(price, `${name} exists`);
      assert.equal(price.lookup_key, lookup);
      assert.equal(price.unit_amount, amount);
      assert.equal(price.type, recurring ? "recurring" : "one_time");
    }
    const portal = object("billing_portal.configuration", configured.STRIPE_PORTAL_CONFIGURATION);
    assert.equal(portal?.active, true);
    const [endpoint] = all("webhook_endpoint");
    assert.equal(endpoint.url, `${stack.base}/webhooks/stripe`);
    assert.ok(endpoint.enabled_events.includes("checkout.session.completed"));
  });

  test("flow 1: a free account starts Starter through Checkout; credits granted, card saved as the customer's default", async () => {
    const account = await createAccount(stack);
    const customer = /** @type {string} */ (account.stripe_customer_id);
    assert.match(customer, /^cus_/, "the account has a Stripe customer");
    const res = await call(stack, "/v1/account/checkout", {
      key: account.api_key,
      body: { plan: "starter" },
    });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.url.startsWith(`${stripe.url}/c/pay/cs_test_`), res.body.url);
    const session = all("checkout.session").find((s) => s.url === res.body.url);
    assert.equal(session?.mode, "subscription");
    assert.equal(session.customer, customer);

    const landing = await payOnCheckout(res.body.url, "pm_card_visa");
    assert.ok(landing.startsWith(`${stack.base}/account/billing`), landing);
    assert.ok(landing.includes(session.id), "the success url carries the session id");

    const shown = await waitFor(async () => {
      const a = await accountOf(account.api_key);
      return a.plan === "starter" && a.subscription?.status === "active" && a.payment_method
        ? a
        : null;
    }, "GET /v1/account shows the Starter plan, active, with the card");
    assert.equal(shown.complimentary, false);
    assert.deepEqual(
      { brand: shown.payment_method.brand, last4: shown.payment_method.last4 },
      { brand: "visa", last4: "4242" },
    );
    const balance = await waitFor(async () => {
      const b = await balanceOf(stack, account.api_key);
      return b.monthly === 3000 ? b : null;
    }, "Starter's 3,000 monthly credits are granted");
    assert.equal(balance.plan, "starter");
    // Only the paid invoice grants (money rule 9: a subscription event changes the plan, never
    // the credits), but its history row is written just after the ledger's grant: wait for it.
    const monthlyGrants = async () =>
      (await transactions(account.api_key)).filter((t) => t.type === "monthly_grant");
    await waitFor(async () => {
      const rows = await monthlyGrants();
      if (!rows.some((t) => t.invoice_url !== null)) throw new Error(JSON.stringify(rows));
      return true;
    }, "the paid cycle's history row, with its invoice");
    const grants = (await monthlyGrants()).filter((t) => t.invoice_url !== null);
    assert.equal(grants.length, 1, `one paid monthly grant: ${JSON.stringify(grants)}`);
    assert.match(grants[0].invoice_url ?? "", /\/i\/in_/, "the plan cycle links its invoice");

    for (const type of [
      "checkout.session.completed",
      "customer.subscription.created",
      "customer.subscription.updated",
      "invoice.paid",
    ])
      await waitFor(async () => delivered(customer, type).length >= 1, `${type} was delivered`);
    const sub = all("subscription").find((s) => s.customer === customer);
    await waitFor(
      async () =>
        customerInStripe(customer)?.invoice_settings.default_payment_method ===
        sub?.default_payment_method,
      "the card entered in Checkout is the customer's invoice default",
    );

    // Later off-session purchases work with that card.
    const topUp = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(topUp.status, 202, topUp.text);
    const done = await waitForTransaction(
      account.api_key,
      (t) => t.id === topUp.body.id && t.status === "succeeded",
      "the top-up after Checkout succeeds off-session",
    );
    assert.match(done.invoice_url ?? "", /\/i\/in_/);
    assert.equal(await purchasedOnceSettled(account.api_key), 1000);

    const again = await call(stack, "/v1/account/checkout", {
      key: account.api_key,
      body: { plan: "pro" },
    });
    expectError(again, 409, "subscription_exists", "a second Checkout");
  });

  test("Checkout with a client Idempotency-Key of up to 255 characters: a retry answers the same session", async () => {
    const account = await createAccount(stack);
    /** @type {Array<[string, Record<string, string>]>} */
    const routes = [
      ["/v1/account/checkout", { plan: "starter" }],
      ["/v1/account/payment-method/setup", {}],
    ];
    for (const [path, body] of routes) {
      // 255 characters, the most the contract (and Stripe) allows.
      const headers = { "Idempotency-Key": `k${"x".repeat(252)}${path.length}` };
      assert.equal(headers["Idempotency-Key"].length, 255);
      const first = await call(stack, path, { key: account.api_key, body, headers });
      assert.equal(first.status, 200, `${path}: ${first.text}`);
      const again = await call(stack, path, { key: account.api_key, body, headers });
      assert.equal(again.status, 200, `${path} retried: ${again.text}`);
      assert.equal(again.body.url, first.body.url, `${path}: the retry is the same session`);
    }
    // The same key for another request is the client's mistake, not the provider's.
    const other = await call(stack, "/v1/account/checkout", {
      key: account.api_key,
      body: { plan: "pro" },
      headers: { "Idempotency-Key": `k${"x".repeat(252)}${"/v1/account/checkout".length}` },
    });
    expectError(other, 409, "idempotency_conflict", "a key reused for another plan");
    // One character more is refused before Stripe is called.
    const long = await call(stack, "/v1/account/checkout", {
      key: account.api_key,
      body: { plan: "starter" },
      headers: { "Idempotency-Key": "k".repeat(256) },
    });
    expectError(long, 400, "invalid_request", "a 256-character key");
  });

  test("flow 2: a card added through Checkout setup mode becomes the default; GET /v1/account shows brand, last4, expiry", async () => {
    const account = await createAccount(stack);
    const customer = /** @type {string} */ (account.stripe_customer_id);
    const res = await call(stack, "/v1/account/payment-method/setup", {
      key: account.api_key,
      body: {},
    });
    assert.equal(res.status, 200, res.text);
    const session = all("checkout.session").find((s) => s.url === res.body.url);
    assert.equal(session?.mode, "setup");
    assert.equal(session.customer, customer);
    await payOnCheckout(res.body.url, "pm_card_mastercard");
    const card = await waitFor(() => {
      const pm = customerInStripe(customer)?.invoice_settings.default_payment_method;
      const found = pm ? object("payment_method", pm) : null;
      return Promise.resolve(found?.card.last4 === "4444" ? found.card : null);
    }, "the card is the customer's invoice default in Stripe");
    const shown = await waitFor(
      async () => (await accountOf(account.api_key)).payment_method,
      "GET /v1/account shows the card",
    );
    assert.deepEqual(shown, {
      brand: "mastercard",
      last4: "4444",
      exp_month: card.exp_month,
      exp_year: card.exp_year,
    });
    assert.equal((await accountOf(account.api_key)).plan, "free", "setup mode starts no plan");
  });

  test("flow 3: an auto-recharge at 100 credits and a top-up are one-off invoices for the package price, paid off-session, with invoice_url", async () => {
    const account = await accountWithCard("pm_card_visa");
    await rechargeAtThreshold(account, "credits_3000");
    const recharge = await waitForTransaction(
      account.api_key,
      (t) => t.type === "auto_recharge" && t.status === "succeeded",
      "the auto-recharge at 100 credits succeeds",
    );
    assert.equal(recharge.credits, 3000);
    assert.equal(recharge.amount_cents, 1700);
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 3000,
      "3,000 purchased credits",
    );

    const key = `flow3-${Date.now()}`;
    const topUp = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
      headers: { "Idempotency-Key": key },
    });
    assert.equal(topUp.status, 202, topUp.text);
    const replay = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
      headers: { "Idempotency-Key": key },
    });
    assert.equal(replay.body.id, topUp.body.id, "the replay is the same purchase");
    const bought = await waitForTransaction(
      account.api_key,
      (t) => t.id === topUp.body.id && t.status === "succeeded",
      "the top-up succeeds",
    );
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 4000,
      "1,000 more purchased credits, once",
    );

    for (const [txn, priceVar, cents] of [
      [recharge, "STRIPE_PRICE_CREDITS_3000", 1700],
      [bought, "STRIPE_PRICE_CREDITS_1000", 700],
    ]) {
      const invoices = invoicesFor(txn.id);
      assert.equal(invoices.length, 1, `exactly one invoice for ${txn.type} ${txn.id}`);
      const inv = invoices[0];
      assert.equal(inv.status, "paid");
      assert.equal(inv.customer, account.stripe_customer_id);
      assert.equal(inv.billing_reason, "manual");
      assert.equal(inv.parent, null, "a one-off invoice, not a subscription's");
      assert.equal(inv.collection_method, "charge_automatically");
      assert.equal(inv.total, cents);
      assert.equal(inv.lines.data.length, 1, "one line: the package");
      assert.equal(inv.lines.data[0].pricing.price_details.price, configured[priceVar]);
      assert.equal(txn.invoice_url, inv.hosted_invoice_url, "the transaction links the invoice");
      const pay = stripe.state.requests.find(
        (r) => r.path === `/v1/invoices/${inv.id}/pay` && r.status === 200,
      );
      assert.equal(pay?.params?.off_session, "true", "paid off-session");
    }
    const page = await getPage(bought.invoice_url);
    assert.equal(page.status, 200);
    assert.match(page.html, /id="status">paid</, "the hosted invoice page shows it paid");
  });

  test("a card the bank declines when it is saved (pm_card_chargeDeclined): the operator's attach is 400 naming payment_method, nothing saved", async () => {
    const account = await createAccount(stack);
    const res = await admin(stack, `/accounts/${account.id}/payment-method`, {
      body: { payment_method: "pm_card_chargeDeclined" },
    });
    const error = expectError(res, 400, "invalid_request", "attaching a declined card");
    assert.deepEqual(fieldNames(error), ["payment_method"]);
    assert.equal((await accountOf(account.api_key)).payment_method, null);
  });

  test("a card Stripe declines at payment: the purchase fails, nothing granted, auto-recharge off", async () => {
    const account = await createAccount(stack);
    const attached = await admin(stack, `/accounts/${account.id}/payment-method`, {
      body: { payment_method: "pm_card_chargeCustomerFail" },
    });
    assert.equal(attached.status, 200, attached.text);
    await rechargeAtThreshold(account, "credits_1000");
    const failed = await waitForTransaction(
      account.api_key,
      (t) => t.type === "auto_recharge" && t.status === "failed",
      "the declined auto-recharge is failed",
    );
    assert.equal(failed.failure_code, "card_declined");
    // The history row is written before the ledger records the failure.
    const settings = await waitFor(async () => {
      const s = (await call(stack, "/v1/account/auto-recharge", { key: account.api_key })).body;
      return s.last_failure ? s : null;
    }, "the ledger records the decline");
    assert.equal(settings.enabled, false);
    assert.equal(settings.last_failure?.code, "card_declined");
    assert.equal((await balanceOf(stack, account.api_key)).purchased, 0);
    // Voided before the failure is recorded: nothing is left to pay later (money rules 6, 10).
    assert.equal(invoicesFor(failed.id)[0]?.status, "void", "the declined invoice is voided");
  });

  test("flow 4: a payment that needs authentication is requires_action with action_url; paid on the hosted invoice page it grants once; an unpaid one voided is failed", async () => {
    const account = await accountWithCard("pm_card_authenticationRequired");
    await rechargeAtThreshold(account, "credits_1000");
    const waiting = await waitForTransaction(
      account.api_key,
      (t) => t.type === "auto_recharge" && t.status === "requires_action",
      "the auto-recharge waits for the customer",
    );
    const [inv] = invoicesFor(waiting.id);
    assert.equal(inv?.status, "open");
    assert.equal(
      waiting.action_url,
      inv.hosted_invoice_url,
      "action_url is the hosted invoice page",
    );
    assert.equal(waiting.invoice_url, inv.hosted_invoice_url);
    const settings = await waitFor(async () => {
      const s = (await call(stack, "/v1/account/auto-recharge", { key: account.api_key })).body;
      return s.enabled === false ? s : null;
    }, "auto-recharge is turned off");
    assert.equal(settings.last_failure?.action_url, inv.hosted_invoice_url);
    assert.equal((await balanceOf(stack, account.api_key)).purchased, 0, "nothing granted yet");

    // The customer opens the link and confirms with their bank.
    const pageRes = await getPage(waiting.action_url);
    assert.equal(pageRes.status, 200);
    const form = formOf(pageRes.html, 'id="pay"');
    assert.equal(form.fields.authenticate, "true", "the page asks to authenticate the payment");
    const paid = await submit(waiting.action_url, form, {});
    assert.equal(paid.status, 303, paid.html.slice(0, 300));
    assert.ok(!paid.location?.includes("error="), `paid on the page: ${paid.location}`);
    await waitForTransaction(
      account.api_key,
      (t) => t.id === waiting.id && t.status === "succeeded",
      "invoice.paid settles the purchase",
    );
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 1000,
      "1,000 credits granted",
    );

    // Stripe may deliver an event more than once: a redelivery grants nothing more.
    const event = events().find((e) => e.type === "invoice.paid" && e.data.object.id === inv.id);
    assert.ok(event, "invoice.paid was emitted");
    const payload = JSON.stringify(event);
    const redelivered = await fetch(`${stack.base}/webhooks/stripe`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Stripe-Signature": signPayload(payload, configured.STRIPE_WEBHOOK_SECRET),
      },
      body: payload,
    });
    assert.equal(redelivered.status, 200);
    await redelivered.arrayBuffer();
    assert.equal((await balanceOf(stack, account.api_key)).purchased, 1000, "granted exactly once");
    assert.equal(
      (await transactions(account.api_key)).filter(
        (t) => t.status === "succeeded" && t.type === "auto_recharge",
      ).length,
      1,
    );

    // A second purchase that needs authentication is never completed; its invoice is voided.
    const topUp = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(topUp.status, 202, topUp.text);
    await waitForTransaction(
      account.api_key,
      (t) => t.id === topUp.body.id && t.status === "requires_action",
      "the top-up waits for the customer",
    );
    const [open] = invoicesFor(topUp.body.id);
    const voided = await operator().invoices.voidInvoice(open.id);
    assert.equal(voided.status, "void");
    const failed = await waitForTransaction(
      account.api_key,
      (t) => t.id === topUp.body.id && t.status === "failed",
      "the voided purchase is failed",
    );
    assert.equal(typeof failed.failure_code, "string");
    assert.equal((await balanceOf(stack, account.api_key)).purchased, 1000, "nothing more granted");
  });

  test("a card that asks for authentication only when it is set up (4000 0025 0000 3155): confirmed in Checkout, later purchases go through off-session", async () => {
    const account = await accountWithCard("pm_card_authenticationRequiredOnSetup");
    const topUp = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(topUp.status, 202, topUp.text);
    const done = await waitForTransaction(
      account.api_key,
      (t) => t.id === topUp.body.id && (t.status === "succeeded" || t.status === "requires_action"),
      "the top-up settles",
    );
    assert.equal(done.status, "succeeded", "no authentication asked off-session");
    assert.equal(done.action_url, null);
  });

  test("a purchase whose Stripe answers are lost on the way (invoice create, pay) or refused with a 500 (invoice item) is retried with the same keys: one invoice, charged once, granted once", async () => {
    const account = await createAccount(stack);
    const attached = await admin(stack, `/accounts/${account.id}/payment-method`, {
      body: { payment_method: "pm_card_visa" },
    });
    assert.equal(attached.status, 200, attached.text);
    // drop_after runs the request and loses the answer; 500 refuses it without running it.
    const customer = { customer: /** @type {string} */ (account.stripe_customer_id) };
    const faults = await fetch(`${stripe.url}/_test/faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        faults: [
          { method: "POST", path: "/v1/invoices", kind: "drop_after", match: customer },
          { method: "POST", path: "/v1/invoices/*/pay", kind: "drop_after" },
          { method: "POST", path: "/v1/invoiceitems", kind: "500", match: customer },
        ],
      }),
    });
    assert.equal(faults.status, 200, await faults.text());
    const topUp = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(topUp.status, 202, topUp.text);
    await waitFor(
      async () =>
        (await transactions(account.api_key)).find(
          (t) => t.id === topUp.body.id && t.status === "succeeded",
        ),
      "the top-up succeeds after the retries",
      { timeoutMs: 40_000 },
    );
    const invoices = invoicesFor(topUp.body.id);
    assert.equal(invoices.length, 1, "one invoice despite the lost create");
    assert.equal(invoices[0].status, "paid");
    const hits = (/** @type {string} */ kind) =>
      stripe.state.requests.filter((r) => r.fault === kind).length;
    assert.equal(hits("drop_after"), 2, "both losses hit");
    assert.equal(hits("500"), 1, "the 500 hit");
    const charges = all("payment_intent").filter(
      (pi) => pi.customer === account.stripe_customer_id && pi.status === "succeeded",
    );
    assert.equal(charges.length, 1, "charged once");
    assert.equal(await purchasedOnceSettled(account.api_key), 1000, "granted once");
  });

  test("flow 5: the billing portal session opens the customer's portal with our configuration", async () => {
    const account = await createAccount(stack);
    const res = await call(stack, "/v1/account/billing-portal", { key: account.api_key, body: {} });
    assert.ok([200, 201].includes(res.status), `${res.status} ${res.text}`);
    assert.ok(res.body.url.startsWith(`${stripe.url}/p/session/bps_`), res.body.url);
    const session = all("billing_portal.session").find((s) => s.url === res.body.url);
    assert.equal(session?.customer, account.stripe_customer_id);
    assert.equal(session.configuration, configured.STRIPE_PORTAL_CONFIGURATION);
    assert.equal(session.return_url, `${stack.base}/account/billing`);
    const portal = await getPage(res.body.url);
    assert.equal(portal.status, 200);
    assert.match(portal.html, /Tollgate/);
  });

  test("flow 5: a subscriber cancels in the portal; GET /v1/account shows cancel_at_period_end and keeps the plan", async () => {
    const account = await createAccount(stack);
    const checkout = await call(stack, "/v1/account/checkout", {
      key: account.api_key,
      body: { plan: "pro" },
    });
    assert.equal(checkout.status, 200, checkout.text);
    // The cancellation comes within the second the subscription became active: two
    // customer.subscription.updated events that `created` cannot order (delivered shuffled).
    await freezeClock(true);
    try {
      await payOnCheckout(checkout.body.url, "pm_card_visa");
      await waitFor(
        async () => (await accountOf(account.api_key)).subscription?.status === "active",
        "the Pro subscription is active",
      );
      const res = await call(stack, "/v1/account/billing-portal", {
        key: account.api_key,
        body: {},
      });
      assert.ok([200, 201].includes(res.status), `${res.status} ${res.text}`);
      const portal = await getPage(res.body.url);
      const cancelled = await submit(res.body.url, formOf(portal.html, "/cancel"), {});
      assert.equal(cancelled.status, 303);
    } finally {
      await freezeClock(false);
    }
    const shown = await waitFor(async () => {
      const a = await accountOf(account.api_key);
      return a.subscription?.cancel_at_period_end === true ? a : null;
    }, "GET /v1/account shows the cancellation at period end");
    assert.equal(shown.plan, "pro", "the plan runs to the end of the period");
    assert.equal(shown.subscription.status, "active");
    assert.ok(shown.subscription.current_period_end, "with the period's end");
  });

  test("the reconciler finds every purchase settled in Stripe (search by metadata)", async () => {
    const res = await admin(stack, "/reconcile", { body: {} });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.attention, [], "nothing needs an operator");
    assert.deepEqual(res.body.grantsRepaired, [], "every paid purchase was granted already");
  });

  test("every request the Stripe server received was well-formed; purchases carried Idempotency-Key; every webhook was accepted", async () => {
    await stripe.idle();
    // Every client here is the SDK: the gateway, stripe:setup and this file's operator calls.
    const requests = stripe.state.requests;
    assert.ok(requests.length > 50, `the server was used (${requests.length} requests)`);
    // One refusal is provoked on purpose: a client's Idempotency-Key reused for another plan.
    const provoked = requests.filter(
      (r) => r.error?.type === "idempotency_error" && r.path === "/v1/checkout/sessions",
    );
    assert.equal(provoked.length, 1, "the reused checkout key reached Stripe once");
    // The server refuses unknown parameters, bad values, non-form bodies and idempotency misuse
    // with a 400, so a request refused other than by a card error or an injected fault was
    // malformed.
    const refused = requests.filter(
      (r) =>
        r.status !== null &&
        r.status >= 400 &&
        r.status !== 402 &&
        !r.fault &&
        !provoked.includes(r),
    );
    assert.deepEqual(
      refused.map((r) => `${r.method} ${r.path} → ${r.status} ${r.error?.type} ${r.error?.code}`),
      [],
      "no request was refused (unknown/missing/invalid parameters, bad encoding, idempotency misuse)",
    );
    assert.deepEqual(
      requests.filter((r) => !r.stripe_version).map((r) => `${r.method} ${r.path}`),
      [],
      "every request names its Stripe-Version",
    );
    const purchaseWrites = requests.filter(
      (r) => r.method === "POST" && /^\/v1\/(invoices|invoiceitems)(\/|$)/.test(r.path),
    );
    assert.ok(purchaseWrites.length >= 8, "purchases were made");
    assert.deepEqual(
      purchaseWrites.filter((r) => !r.idempotency_key).map((r) => `${r.method} ${r.path}`),
      [],
      "every purchase step carries an Idempotency-Key",
    );
    // Deliveries are retried after a refusal, as Stripe does: each event must be accepted once.
    const notAccepted = events()
      .filter((e) => e.pending_webhooks > 0 && !acceptedOnce(e.id))
      .map((e) => `${e.type} ${e.id}`);
    assert.deepEqual(notAccepted, [], "the gateway accepted every signed webhook");
  });
});
