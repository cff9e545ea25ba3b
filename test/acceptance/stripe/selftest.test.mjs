// @ts-check
/**
 * The suite's Stripe-compatible server driven by the real `stripe` SDK, endpoint by endpoint,
 * so that the server the flows rely on is itself tested: what the SDK sends is understood, what
 * the server answers the SDK can read (objects, lists, search results, typed errors), and its
 * webhooks verify with the SDK's own `constructEvent`.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import Stripe from "stripe";
import { encodeForm, parseForm } from "./form.mjs";
import { startStripeServer } from "./server.mjs";

const KEY = "sk_test_selftest";
/** @type {Awaited<ReturnType<typeof startStripeServer>>} */
let server;
/** @type {Stripe} */
let stripe;
/** @type {http.Server} */
let receiver;
/** @type {Array<{ body: string, signature: string }>} */
const received = [];
let webhookSecret = "";
/** @type {string} */
let receiverUrl;

before(async () => {
  server = await startStripeServer({ webhookRetryBaseMs: 50, webhookRetries: 2 });
  const url = new URL(server.url);
  stripe = new Stripe(KEY, {
    host: url.hostname,
    port: Number(url.port),
    protocol: "http",
    maxNetworkRetries: 0,
  });
  receiver = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    received.push({
      body: Buffer.concat(chunks).toString("utf8"),
      signature: String(req.headers["stripe-signature"] ?? ""),
    });
    res.writeHead(received.length === 1 ? 500 : 200).end(); // the first delivery fails once
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", () => r(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (receiver.address());
  receiverUrl = `http://127.0.0.1:${address.port}/hook`;
});
after(async () => {
  await server?.close();
  receiver?.closeAllConnections?.();
  await new Promise((r) => receiver?.close(() => r(undefined)));
});

/** @param {() => Promise<unknown>} fn @param {string} type @param {string} [code] */
async function rejects(fn, type, code) {
  try {
    await fn();
  } catch (err) {
    const e = /** @type {any} */ (err);
    assert.equal(e.type, type, `${e.type}: ${e.message}`);
    if (code) assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${type}${code ? ` ${code}` : ""}`);
}

describe("form encoding", () => {
  test("bracket notation decodes to nested objects and arrays", () => {
    assert.deepEqual(
      parseForm(
        "a=1&expand[]=x&expand[]=y&metadata[k]=v&line_items[0][price]=p&line_items[0][quantity]=2&e=",
      ),
      {
        a: "1",
        expand: ["x", "y"],
        metadata: { k: "v" },
        line_items: [{ price: "p", quantity: "2" }],
        e: "",
      },
    );
    assert.deepEqual(parseForm(encodeForm({ x: [{ y: "1" }], m: { "a b": "c&d" } })), {
      x: [{ y: "1" }],
      m: { "a b": "c&d" },
    });
    assert.throws(() => parseForm("a=1&a[b]=2"));
    assert.throws(() => parseForm("a[=1"));
  });
});

describe("the server through the stripe SDK", () => {
  test("authentication: no key and a live or unknown key are 401", async () => {
    const res = await fetch(`${server.url}/v1/customers`);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.type, "invalid_request_error");
    const url = new URL(server.url);
    const live = new Stripe("sk_live_nope", {
      host: url.hostname,
      port: Number(url.port),
      protocol: "http",
    });
    await rejects(() => live.customers.list(), "StripeAuthenticationError");
  });

  test("webhook endpoints: create returns the secret once; list, update, retrieve", async () => {
    const created = await stripe.webhookEndpoints.create({
      url: receiverUrl,
      enabled_events: ["customer.created", "invoice.paid", "checkout.session.completed"],
      api_version: Stripe.API_VERSION,
    });
    assert.match(created.secret ?? "", /^whsec_/);
    webhookSecret = /** @type {string} */ (created.secret);
    const listed = await stripe.webhookEndpoints.list();
    assert.equal(listed.data[0].id, created.id);
    assert.equal(listed.data[0].secret, undefined, "the secret is only shown at creation");
    const updated = await stripe.webhookEndpoints.update(created.id, {
      enabled_events: [
        "customer.created",
        "customer.updated",
        "invoice.paid",
        "checkout.session.completed",
        "invoice.voided",
      ],
    });
    assert.equal(updated.enabled_events.length, 5);
    await rejects(
      () =>
        stripe.webhookEndpoints.create({
          url: receiverUrl,
          enabled_events: /** @type {any} */ (["no.such_event"]),
        }),
      "StripeInvalidRequestError",
    );
  });

  test("customers: create, idempotent replay, idempotency_error, update, retrieve, list, search, unknown parameter", async () => {
    const a = await stripe.customers.create(
      { email: "a@example.com", metadata: { account_id: "acct_1" } },
      { idempotencyKey: "cus-1" },
    );
    const b = await stripe.customers.create(
      { email: "a@example.com", metadata: { account_id: "acct_1" } },
      { idempotencyKey: "cus-1" },
    );
    assert.equal(a.id, b.id, "same key, same params: the first answer");
    assert.equal(b.lastResponse.headers["idempotent-replayed"], "true");
    await rejects(
      () => stripe.customers.create({ email: "other@example.com" }, { idempotencyKey: "cus-1" }),
      "StripeIdempotencyError",
    );
    const updated = await stripe.customers.update(a.id, {
      name: "Ada",
      metadata: { account_id: "", x: "1" },
    });
    assert.equal(updated.name, "Ada");
    assert.deepEqual(updated.metadata, { x: "1" }, "an empty value removes a metadata key");
    const got = await stripe.customers.retrieve(a.id);
    assert.equal(/** @type {Stripe.Customer} */ (got).email, "a@example.com");
    assert.equal((await stripe.customers.list({ email: "a@example.com" })).data.length, 1);
    const found = await stripe.customers.search({
      query: 'metadata["x"]:"1" AND email:"a@example.com"',
    });
    assert.equal(found.object, "search_result");
    assert.equal(found.data[0]?.id, a.id);
    const err = await rejects(
      () => stripe.customers.create(/** @type {any} */ ({ emial: "typo@example.com" })),
      "StripeInvalidRequestError",
      "parameter_unknown",
    );
    assert.equal(err.param, "emial");
    await rejects(
      () => stripe.customers.retrieve("cus_missing"),
      "StripeInvalidRequestError",
      "resource_missing",
    );
    await rejects(
      () => stripe.customers.search({ query: "bogus:'x'" }),
      "StripeInvalidRequestError",
    );
  });

  test("webhooks are signed as Stripe signs them and redelivered after a failure", async () => {
    await server.idle();
    const types = [];
    for (const r of received) {
      const event = stripe.webhooks.constructEvent(r.body, r.signature, webhookSecret);
      types.push(event.type);
    }
    assert.ok(types.includes("customer.created"));
    assert.equal(received[0].body, received[1].body, "the failed delivery was retried");
    assert.throws(() =>
      stripe.webhooks.constructEvent(received[0].body, received[0].signature, "whsec_wrong"),
    );
    const events = await stripe.events.list({ type: "customer.*", limit: 3 });
    assert.ok(events.data.every((e) => e.type.startsWith("customer.")));
    const one = await stripe.events.retrieve(events.data[0].id);
    assert.equal(one.id, events.data[0].id);
  });

  test("products and prices: lookup keys (transfer), list with expand[]=data.product, update, search, pagination", async () => {
    const product = await stripe.products.create({ name: "Credits", metadata: { kind: "pkg" } });
    const p1 = await stripe.prices.create({
      product: product.id,
      currency: "usd",
      unit_amount: 700,
      lookup_key: "pkg_1000",
    });
    await rejects(
      () =>
        stripe.prices.create({
          product: product.id,
          currency: "usd",
          unit_amount: 800,
          lookup_key: "pkg_1000",
        }),
      "StripeInvalidRequestError",
    );
    const p2 = await stripe.prices.create({
      product: product.id,
      currency: "usd",
      unit_amount: 800,
      lookup_key: "pkg_1000",
      transfer_lookup_key: true,
    });
    assert.equal((await stripe.prices.retrieve(p1.id)).lookup_key, null);
    const listed = await stripe.prices.list({
      lookup_keys: ["pkg_1000"],
      expand: ["data.product"],
    });
    assert.equal(listed.data.length, 1);
    assert.equal(listed.data[0].id, p2.id);
    assert.equal(/** @type {Stripe.Product} */ (listed.data[0].product).name, "Credits");
    const plan = await stripe.prices.create({
      product_data: { name: "Plan" },
      currency: "usd",
      unit_amount: 1900,
      recurring: { interval: "month" },
      lookup_key: "plan",
    });
    assert.equal(plan.type, "recurring");
    assert.equal((await stripe.prices.update(p1.id, { active: false })).active, false);
    assert.equal((await stripe.products.update(product.id, { active: false })).active, false);
    assert.equal((await stripe.products.retrieve(product.id)).active, false);
    const all = await stripe.products.list({ limit: 1 }).autoPagingToArray({ limit: 100 });
    assert.equal(all.length, 2, "auto-pagination with starting_after");
    const page = await stripe.prices.search({ query: "lookup_key:'plan'" });
    assert.equal(page.data[0]?.id, plan.id);
  });

  test("billing portal: a configuration is required and validated; sessions get a url", async () => {
    const customer = await stripe.customers.create({ email: "portal@example.com" });
    await rejects(
      () =>
        stripe.billingPortal.sessions.create({
          customer: customer.id,
          return_url: "http://x.test/",
        }),
      "StripeInvalidRequestError",
    );
    const plan = (await stripe.prices.list({ lookup_keys: ["plan"] })).data[0];
    await rejects(
      () =>
        stripe.billingPortal.configurations.create({
          features: {
            subscription_update: {
              enabled: true,
              default_allowed_updates: ["price"],
              products: [{ product: /** @type {string} */ (plan.product), prices: ["price_nope"] }],
            },
          },
        }),
      "StripeInvalidRequestError",
      "resource_missing",
    );
    const config = await stripe.billingPortal.configurations.create({
      business_profile: { headline: "Hello" },
      default_return_url: "http://x.test/billing",
      features: {
        invoice_history: { enabled: true },
        subscription_cancel: { enabled: true, mode: "at_period_end" },
        subscription_update: {
          enabled: true,
          default_allowed_updates: ["price"],
          proration_behavior: "create_prorations",
          products: [{ product: /** @type {string} */ (plan.product), prices: [plan.id] }],
        },
      },
      metadata: { tollgate: "portal" },
    });
    assert.equal(config.features.subscription_cancel.mode, "at_period_end");
    const updated = await stripe.billingPortal.configurations.update(config.id, {
      business_profile: { headline: "Hi" },
    });
    assert.equal(updated.business_profile.headline, "Hi");
    assert.equal((await stripe.billingPortal.configurations.list()).data[0].id, config.id);
    assert.equal((await stripe.billingPortal.configurations.retrieve(config.id)).id, config.id);
    const session = await stripe.billingPortal.sessions.create({
      customer: customer.id,
      configuration: config.id,
    });
    assert.equal(
      session.return_url,
      "http://x.test/billing",
      "the configuration's default return url",
    );
    const page = await fetch(session.url);
    assert.equal(page.status, 200);
  });

  test("payment methods: test ids attach as new ids; decline cards fail at attach except …0341; list, retrieve, detach; default must be attached", async () => {
    const customer = await stripe.customers.create({ email: "pm@example.com" });
    const visa = await stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
    assert.notEqual(visa.id, "pm_card_visa");
    assert.equal(visa.card?.last4, "4242");
    const declined = await rejects(
      () => stripe.paymentMethods.attach("pm_card_chargeDeclined", { customer: customer.id }),
      "StripeCardError",
      "card_declined",
    );
    assert.equal(declined.decline_code, "generic_decline");
    const fails = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: customer.id,
    });
    assert.equal(fails.card?.last4, "0341");
    const other = await stripe.customers.create({});
    const stray = await stripe.paymentMethods.attach("pm_card_mastercard", { customer: other.id });
    await rejects(
      () =>
        stripe.customers.update(customer.id, {
          invoice_settings: { default_payment_method: stray.id },
        }),
      "StripeInvalidRequestError",
    );
    const c = await stripe.customers.update(customer.id, {
      invoice_settings: { default_payment_method: visa.id },
    });
    assert.equal(c.invoice_settings.default_payment_method, visa.id);
    const listed = await stripe.paymentMethods.list({
      customer: customer.id,
      type: "card",
      limit: 1,
    });
    assert.equal(listed.data.length, 1);
    assert.equal(listed.has_more, true);
    assert.equal((await stripe.paymentMethods.retrieve(visa.id)).customer, customer.id);
    const detached = await stripe.paymentMethods.detach(fails.id);
    assert.equal(detached.customer, null);
  });

  test("invoices: draft → open → paid, one-off items by price, search by metadata, pay off-session with expand[]=payments", async () => {
    const customer = await stripe.customers.create({ email: "inv@example.com" });
    const pm = await stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
    const price = (await stripe.prices.list({ lookup_keys: ["pkg_1000"] })).data[0];
    const inv = await stripe.invoices.create({
      customer: customer.id,
      collection_method: "charge_automatically",
      auto_advance: false,
      pending_invoice_items_behavior: "exclude",
      default_payment_method: pm.id,
      metadata: { recharge_id: "rch_1" },
    });
    assert.equal(inv.status, "draft");
    assert.equal(inv.hosted_invoice_url, null);
    await stripe.invoiceItems.create({
      customer: customer.id,
      invoice: /** @type {string} */ (inv.id),
      pricing: { price: price.id },
    });
    const plan = (await stripe.prices.list({ lookup_keys: ["plan"] })).data[0];
    await rejects(
      () =>
        stripe.invoiceItems.create({
          customer: customer.id,
          invoice: /** @type {string} */ (inv.id),
          pricing: { price: plan.id },
        }),
      "StripeInvalidRequestError",
    );
    const open = await stripe.invoices.finalizeInvoice(/** @type {string} */ (inv.id));
    assert.equal(open.status, "open");
    assert.equal(open.total, 800);
    assert.match(open.hosted_invoice_url ?? "", /\/i\/in_/);
    await rejects(
      () => stripe.invoices.finalizeInvoice(/** @type {string} */ (inv.id)),
      "StripeInvalidRequestError",
    );
    await rejects(
      () =>
        stripe.invoiceItems.create({
          customer: customer.id,
          invoice: /** @type {string} */ (inv.id),
          amount: 100,
          currency: "usd",
        }),
      "StripeInvalidRequestError",
    );
    const paid = await stripe.invoices.pay(/** @type {string} */ (inv.id), {
      payment_method: pm.id,
      off_session: true,
      expand: ["payments"],
    });
    assert.equal(paid.status, "paid");
    assert.equal(paid.amount_paid, 800);
    const piId = /** @type {string} */ (paid.payments?.data[0]?.payment.payment_intent);
    assert.equal((await stripe.paymentIntents.retrieve(piId)).status, "succeeded");
    await rejects(
      () => stripe.invoices.pay(/** @type {string} */ (inv.id), {}),
      "StripeInvalidRequestError",
    );
    await rejects(
      () => stripe.invoices.voidInvoice(/** @type {string} */ (inv.id)),
      "StripeInvalidRequestError",
    );
    const found = await stripe.invoices.search({ query: "metadata['recharge_id']:'rch_1'" });
    assert.deepEqual(
      found.data.map((i) => i.id),
      [inv.id],
    );
    assert.equal(
      (await stripe.invoices.list({ customer: customer.id, status: "paid" })).data.length,
      1,
    );
    assert.equal(
      (await stripe.invoices.retrieve(/** @type {string} */ (inv.id))).lines.data.length,
      1,
    );
    assert.equal(
      (await stripe.invoices.listLineItems(/** @type {string} */ (inv.id))).data.length,
      1,
    );
  });

  test("invoices: a declined card and an authentication-required card off-session; void; uncollectible", async () => {
    const customer = await stripe.customers.create({ email: "sca@example.com" });
    const failing = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: customer.id,
    });
    const sca = await stripe.paymentMethods.attach("pm_card_authenticationRequired", {
      customer: customer.id,
    });
    const make = async (/** @type {string} */ pm) => {
      const inv = await stripe.invoices.create({
        customer: customer.id,
        default_payment_method: pm,
        auto_advance: false,
      });
      await stripe.invoiceItems.create({
        customer: customer.id,
        invoice: /** @type {string} */ (inv.id),
        amount: 500,
        currency: "usd",
        description: "x",
      });
      return stripe.invoices.finalizeInvoice(/** @type {string} */ (inv.id));
    };
    const a = await make(failing.id);
    const declined = await rejects(
      () => stripe.invoices.pay(/** @type {string} */ (a.id), { off_session: true }),
      "StripeCardError",
      "card_declined",
    );
    assert.equal(declined.payment_intent?.status, "requires_payment_method");
    assert.equal((await stripe.invoices.retrieve(/** @type {string} */ (a.id))).status, "open");
    const b = await make(sca.id);
    const action = await rejects(
      () => stripe.invoices.pay(/** @type {string} */ (b.id), { off_session: true }),
      "StripeCardError",
      "invoice_payment_intent_requires_action",
    );
    assert.equal(action.payment_intent?.status, "requires_action");
    // The customer completes it on the hosted invoice page.
    const pay = await fetch(`${b.hosted_invoice_url}/pay`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "use_saved=true&three_d_secure=complete",
    });
    assert.equal(pay.status, 200);
    assert.equal((await stripe.invoices.retrieve(/** @type {string} */ (b.id))).status, "paid");
    const voided = await stripe.invoices.voidInvoice(/** @type {string} */ (a.id));
    assert.equal(voided.status, "void");
    const c = await make(sca.id);
    assert.equal(
      (await stripe.invoices.markUncollectible(/** @type {string} */ (c.id))).status,
      "uncollectible",
    );
    const d = await stripe.invoices.create({ customer: customer.id });
    assert.deepEqual(await stripe.invoices.del(/** @type {string} */ (d.id)), {
      id: d.id,
      object: "invoice",
      deleted: true,
    });
  });

  test("Checkout: subscription mode on the hosted page makes an active subscription and a paid first invoice; setup mode a succeeded SetupIntent", async () => {
    const customer = await stripe.customers.create({ email: "co@example.com" });
    const plan = (await stripe.prices.list({ lookup_keys: ["plan"] })).data[0];
    await rejects(
      () =>
        stripe.checkout.sessions.create({
          mode: "subscription",
          customer: customer.id,
          line_items: [{ price: plan.id }],
          success_url: "http://x.test/ok",
        }),
      "StripeInvalidRequestError",
      "parameter_missing",
    );
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: plan.id, quantity: 1 }],
      payment_method_collection: "always",
      success_url: "http://x.test/ok?session_id={CHECKOUT_SESSION_ID}",
      cancel_url: "http://x.test/cancel",
      subscription_data: { metadata: { plan: "starter" } },
    });
    assert.equal(session.status, "open");
    const declined = await fetch(/** @type {string} */ (session.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "card_number=4000000000000002&exp_month=12&exp_year=2030&cvc=123",
    });
    assert.equal(declined.status, 402);
    const done = await fetch(/** @type {string} */ (session.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "card_number=4242424242424242&exp_month=12&exp_year=2030&cvc=123",
      redirect: "manual",
    });
    assert.equal(done.status, 303);
    assert.equal(done.headers.get("location"), `http://x.test/ok?session_id=${session.id}`);
    const completed = await stripe.checkout.sessions.retrieve(session.id, {
      expand: ["subscription"],
    });
    assert.equal(completed.status, "complete");
    assert.equal(completed.url, null);
    const sub = /** @type {Stripe.Subscription} */ (completed.subscription);
    assert.equal(sub.status, "active");
    assert.equal(sub.metadata.plan, "starter");
    const first = await stripe.invoices.retrieve(/** @type {string} */ (sub.latest_invoice));
    assert.equal(first.status, "paid");
    assert.equal(first.billing_reason, "subscription_create");
    assert.equal(first.parent?.subscription_details?.subscription, sub.id);
    assert.equal(first.lines.data[0].pricing?.price_details?.price, plan.id);
    const listed = await stripe.subscriptions.list({ customer: customer.id, status: "all" });
    assert.equal(listed.data[0].id, sub.id);
    const flagged = await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true });
    assert.equal(flagged.cancel_at_period_end, true);
    assert.equal((await stripe.subscriptions.cancel(sub.id)).status, "canceled");
    assert.equal(
      (await stripe.subscriptions.list({ customer: customer.id })).data.length,
      0,
      "the default list leaves canceled out",
    );

    const setup = await stripe.checkout.sessions.create({
      mode: "setup",
      customer: customer.id,
      currency: "usd",
      success_url: "http://x.test/ok",
    });
    const challenge = await fetch(/** @type {string} */ (setup.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "card_number=4000002760003184&exp_month=1&exp_year=2031&cvc=123",
    });
    assert.match(await challenge.text(), /data-challenge/, "3D Secure is asked for");
    const saved = await fetch(/** @type {string} */ (setup.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "card_number=4000002760003184&exp_month=1&exp_year=2031&cvc=123&three_d_secure=complete",
      redirect: "manual",
    });
    assert.equal(saved.status, 303);
    const after = await stripe.checkout.sessions.retrieve(setup.id);
    const si = await stripe.setupIntents.retrieve(/** @type {string} */ (after.setup_intent));
    assert.equal(si.status, "succeeded");
    const pm = await stripe.paymentMethods.retrieve(/** @type {string} */ (si.payment_method));
    assert.deepEqual([pm.customer, pm.card?.exp_month, pm.card?.exp_year], [customer.id, 1, 2031]);

    const expiring = await stripe.checkout.sessions.create({
      mode: "setup",
      customer: customer.id,
      currency: "usd",
    });
    assert.equal((await stripe.checkout.sessions.expire(expiring.id)).status, "expired");
    await rejects(() => stripe.checkout.sessions.expire(expiring.id), "StripeInvalidRequestError");
    assert.ok((await stripe.checkout.sessions.list({ customer: customer.id })).data.length >= 3);
  });

  test("Checkout: sessions listed by customer and status=open; an expired one emits checkout.session.expired and its hosted page refuses", async () => {
    const customer = await stripe.customers.create({ email: "tabs@example.com" });
    const plan = (await stripe.prices.list({ lookup_keys: ["plan"] })).data[0];
    const open = () =>
      stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: plan.id, quantity: 1 }],
        success_url: "http://x.test/ok",
      });
    const first = await open();
    const second = await open();
    const listed = await stripe.checkout.sessions.list({ customer: customer.id, status: "open" });
    assert.deepEqual(listed.data.map((s) => s.id).sort(), [first.id, second.id].sort());
    const expired = await stripe.checkout.sessions.expire(first.id);
    assert.deepEqual([expired.status, expired.url], ["expired", null]);
    const events = await stripe.events.list({ type: "checkout.session.expired", limit: 10 });
    assert.ok(events.data.some((e) => /** @type {any} */ (e.data.object).id === first.id));
    assert.deepEqual(
      (await stripe.checkout.sessions.list({ customer: customer.id, status: "open" })).data.map(
        (s) => s.id,
      ),
      [second.id],
    );
    await rejects(() => stripe.checkout.sessions.expire(first.id), "StripeInvalidRequestError");
    const page = await fetch(/** @type {string} */ (first.url));
    assert.equal(page.status, 410);
    assert.match(await page.text(), /data-status="expired"/);
    const refused = await fetch(/** @type {string} */ (first.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "card_number=4242424242424242&exp_month=12&exp_year=2030&cvc=123",
      redirect: "manual",
    });
    assert.equal(refused.status, 410);
    assert.equal((await stripe.subscriptions.list({ customer: customer.id })).data.length, 0);
  });

  test("requests the server received from the SDK were all well-formed (the malformed ones were this file's on purpose)", () => {
    const malformed = server.requests
      .filter((r) => r.malformed)
      .map((r) => r.error?.code ?? r.error?.type);
    assert.ok(malformed.includes("parameter_unknown"));
    assert.ok(
      malformed.every((c) =>
        [
          "parameter_unknown",
          "parameter_missing",
          "idempotency_error",
          "invalid_request_error",
        ].includes(String(c)),
      ),
      String(malformed),
    );
  });
});
