// @ts-check
/**
 * Selftest checks for Billing, Checkout, the portal, webhook endpoints and the hosted pages,
 * driven with the real SDK. Registered by selftest.mjs, which owns the runner and the server.
 */
import assert from "node:assert/strict";
import http from "node:http";
import Stripe from "stripe";

/**
 * @typedef {object} Kit
 * @property {(name: string, fn: () => Promise<void> | void) => void} check
 * @property {Stripe} stripe
 * @property {{ url: string }} server
 * @property {{ type: string, event: any }[]} received Events the configured webhook got.
 * @property {(promise: Promise<unknown>) => Promise<any>} rejection
 * @property {(predicate: () => boolean, what: string, timeoutMs?: number) => Promise<void>} eventually
 */

/**
 * Posts a hosted-page form like a browser does; returns the 303 Location.
 * @param {string} url
 * @param {Record<string, string>} form
 */
async function submit(url, form) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
    redirect: "manual",
  });
  assert.equal(res.status, 303, `POST ${url} answered ${res.status}`);
  return String(res.headers.get("location"));
}

/** @param {Kit} kit */
export function registerBillingChecks(kit) {
  const { check, stripe, server, received, rejection, eventually } = kit;
  /** Types received since `mark`, for one customer or object. */
  const since = (
    /** @type {number} */ mark,
    /** @type {(e: any) => boolean} */ keep = () => true,
  ) =>
    received
      .slice(mark)
      .filter((r) => keep(r.event))
      .map((r) => r.type);
  /** Waits until every event emitted so far has been delivered, then returns a mark. */
  const settled = async () => {
    await eventually(() => true, "");
    const deadline = Date.now() + 3000;
    for (;;) {
      const state = /** @type {any} */ (await (await fetch(`${server.url}/_test/state`)).json());
      const expected = state.events.reduce(
        (/** @type {number} */ n, /** @type {any} */ e) => n + e.pending_webhooks,
        0,
      );
      const done = state.webhook_deliveries.filter(
        (/** @type {any} */ d) => d.status !== null || d.error !== null,
      ).length;
      if (done >= expected || Date.now() > deadline) return received.length;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const forCustomer = (/** @type {string} */ id) => (/** @type {any} */ e) =>
    e.data.object.customer === id || e.data.object.id === id;

  /** @type {Stripe.Price} */ let starter;
  /** @type {Stripe.Price} */ let pro;
  /** @type {Stripe.Product} */ let product;

  check("products and prices: create, lookup_key, transfer, list, search", async () => {
    product = await stripe.products.create({ name: "Tollgate Starter", metadata: { tier: "s" } });
    assert.match(product.id, /^prod_/);
    starter = await stripe.prices.create({
      product: product.id,
      unit_amount: 900,
      currency: "usd",
      recurring: { interval: "month" },
      lookup_key: "starter_monthly",
    });
    assert.equal(starter.type, "recurring");
    assert.equal(starter.recurring?.interval, "month");
    pro = await stripe.prices.create({
      product_data: { name: "Tollgate Pro" },
      unit_amount: 2900,
      currency: "usd",
      recurring: { interval: "month" },
      lookup_key: "pro_monthly",
      metadata: { plan: "pro" },
    });
    assert.match(String(pro.product), /^prod_/);
    const dup = await rejection(
      stripe.prices.create({
        product: product.id,
        unit_amount: 1000,
        currency: "usd",
        lookup_key: "starter_monthly",
      }),
    );
    assert.equal(dup.statusCode, 400);
    assert.equal(dup.param, "lookup_key");
    const moved = await stripe.prices.create({
      product: product.id,
      unit_amount: 1000,
      currency: "usd",
      recurring: { interval: "month" },
      lookup_key: "starter_monthly",
      transfer_lookup_key: true,
    });
    assert.equal((await stripe.prices.retrieve(starter.id)).lookup_key, null);
    const byKey = await stripe.prices.list({ lookup_keys: ["starter_monthly", "pro_monthly"] });
    assert.deepEqual(byKey.data.map((p) => p.id).sort(), [moved.id, pro.id].sort());
    await stripe.prices.update(starter.id, {
      lookup_key: "starter_monthly",
      transfer_lookup_key: true,
    });
    const found = await stripe.prices.search({ query: "metadata['plan']:'pro' AND active:'true'" });
    assert.deepEqual(
      found.data.map((p) => p.id),
      [pro.id],
    );
    const products = await stripe.products.search({ query: "name:'Tollgate Pro'" });
    assert.equal(products.data[0]?.id, pro.product);
    const expanded = await stripe.prices.retrieve(starter.id, { expand: ["product"] });
    assert.equal(/** @type {Stripe.Product} */ (expanded.product).name, "Tollgate Starter");
    const unknown = await rejection(
      stripe.prices.create(
        /** @type {any} */ ({ currency: "usd", unit_amount: 1, product: product.id, bogus: 1 }),
      ),
    );
    assert.equal(unknown.code, "parameter_unknown");
  });

  check("manual invoice: draft → open → paid with a visa, events and amounts", async () => {
    const customer = await stripe.customers.create({ email: "inv@example.com" });
    const pm = await stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
    await stripe.invoiceItems.create({
      customer: customer.id,
      amount: 1500,
      currency: "usd",
      description: "Credits pack",
    });
    await stripe.invoiceItems.create({ customer: customer.id, pricing: { price: pro.id } });
    const mark = await settled();
    let invoice = await stripe.invoices.create({
      customer: customer.id,
      collection_method: "charge_automatically",
      pending_invoice_items_behavior: "include",
      metadata: { order: "o1" },
      description: "One-off",
    });
    assert.equal(invoice.status, "draft");
    assert.equal(invoice.auto_advance, false);
    assert.equal(invoice.lines.data.length, 2);
    assert.equal(invoice.total, 4400);
    assert.equal(invoice.hosted_invoice_url, null);
    assert.equal(invoice.lines.data[1]?.pricing?.price_details?.price, pro.id);
    invoice = await stripe.invoices.finalizeInvoice(invoice.id);
    assert.equal(invoice.status, "open");
    assert.match(String(invoice.number), /-0001$/);
    assert.equal(invoice.hosted_invoice_url, `${server.url}/i/${invoice.id}`);
    const again = await rejection(stripe.invoices.finalizeInvoice(invoice.id));
    assert.match(again.message, /already finalized/);
    const withSecret = await stripe.invoices.retrieve(invoice.id, {
      expand: ["confirmation_secret", "payments"],
    });
    assert.match(String(withSecret.confirmation_secret?.client_secret), /^pi_.*_secret_/);
    const piId = String(withSecret.payments?.data[0]?.payment.payment_intent);
    const pi = await stripe.paymentIntents.retrieve(piId);
    assert.deepEqual(pi.metadata, {}, "Stripe does not copy invoice metadata to the PI");
    invoice = await stripe.invoices.pay(invoice.id, { payment_method: pm.id, off_session: true });
    assert.equal(invoice.status, "paid");
    assert.equal(invoice.amount_paid, 4400);
    assert.equal(invoice.amount_remaining, 0);
    assert.equal(invoice.attempt_count, 1);
    assert.ok(invoice.status_transitions.paid_at);
    const twice = await rejection(stripe.invoices.pay(invoice.id));
    assert.equal(twice.statusCode, 400);
    assert.equal(twice.message, "Invoice is already paid");
    const voidPaid = await rejection(stripe.invoices.voidInvoice(invoice.id));
    assert.equal(voidPaid.statusCode, 400);
    const payments = await stripe.invoicePayments.list({ invoice: invoice.id });
    assert.equal(payments.data[0]?.status, "paid");
    await eventually(() => since(mark).includes("invoice.payment_succeeded"), "paid events");
    assert.deepEqual(
      since(mark, (e) => e.data.object.object === "invoice"),
      ["invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded"],
    );
    const search = await stripe.invoices.search({ query: "metadata['order']:'o1'" });
    assert.deepEqual(
      search.data.map((i) => i.id),
      [invoice.id],
    );
    const list = await stripe.invoices.list({ customer: customer.id, status: "paid" });
    assert.equal(list.data.length, 1);
    const html = await (await fetch(String(invoice.hosted_invoice_url))).text();
    assert.match(html, /id="receipt"/);
    const pdf = await fetch(String(invoice.invoice_pdf));
    assert.equal(pdf.headers.get("content-type"), "application/pdf");
    assert.match(Buffer.from(await pdf.arrayBuffer()).toString("latin1"), /^%PDF-1\.4/);
  });

  check(
    "declined invoice payment: 402, stays open, attempt_count, invoice.payment_failed",
    async () => {
      const customer = await stripe.customers.create({ email: "decl@example.com" });
      const pm = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
        customer: customer.id,
      });
      await stripe.invoiceItems.create({ customer: customer.id, amount: 700, currency: "usd" });
      const draft = await stripe.invoices.create({
        customer: customer.id,
        pending_invoice_items_behavior: "include",
      });
      await stripe.invoices.finalizeInvoice(draft.id);
      const mark = await settled();
      const err = await rejection(stripe.invoices.pay(draft.id, { payment_method: pm.id }));
      assert.equal(err.type, "StripeCardError");
      assert.equal(err.code, "card_declined");
      const invoice = await stripe.invoices.retrieve(draft.id);
      assert.equal(invoice.status, "open");
      assert.equal(invoice.attempt_count, 1);
      await eventually(() => since(mark).includes("invoice.payment_failed"), "payment_failed");
      const voided = await stripe.invoices.voidInvoice(draft.id);
      assert.equal(voided.status, "void");
      const draft2 = await stripe.invoices.create({
        customer: customer.id,
        collection_method: "send_invoice",
        days_until_due: 30,
      });
      await stripe.invoiceItems.create({
        customer: customer.id,
        amount: 100,
        currency: "usd",
        invoice: draft2.id,
      });
      await stripe.invoices.finalizeInvoice(draft2.id);
      const bad = await stripe.invoices.markUncollectible(draft2.id);
      assert.equal(bad.status, "uncollectible");
      await eventually(() => since(mark).includes("invoice.marked_uncollectible"), "uncollectible");
      assert.ok(since(mark).includes("invoice.voided"));
    },
  );

  check("authentication required: 402 requires_action, then paid on the hosted page", async () => {
    const customer = await stripe.customers.create({ email: "3ds@example.com" });
    const pm = await stripe.paymentMethods.attach("pm_card_authenticationRequired", {
      customer: customer.id,
    });
    await stripe.invoiceItems.create({ customer: customer.id, amount: 1200, currency: "usd" });
    const draft = await stripe.invoices.create({
      customer: customer.id,
      pending_invoice_items_behavior: "include",
    });
    const mark = await settled();
    const err = await rejection(
      stripe.invoices.pay(draft.id, { payment_method: pm.id, off_session: true }),
    );
    assert.equal(err.statusCode, 402);
    assert.equal(err.code, "invoice_payment_intent_requires_action");
    assert.equal(err.raw.payment_intent.status, "requires_action");
    let invoice = await stripe.invoices.retrieve(draft.id);
    assert.equal(invoice.status, "open");
    await eventually(
      () => since(mark).includes("invoice.payment_action_required"),
      "action_required",
    );
    const page = await (await fetch(String(invoice.hosted_invoice_url))).text();
    assert.match(page, /name="authenticate" value="true"/);
    const location = await submit(`${server.url}/i/${draft.id}/pay`, { authenticate: "true" });
    assert.equal(location, `/i/${draft.id}`);
    invoice = await stripe.invoices.retrieve(draft.id);
    assert.equal(invoice.status, "paid");
    await eventually(() => since(mark).includes("invoice.payment_succeeded"), "paid after 3DS");
    const paidEvent = received.slice(mark).find((r) => r.type === "invoice.paid");
    assert.equal(paidEvent?.event.request.id, null, "a page action has no API request id");
  });

  check("customer balance covers the invoice: paid at finalization, amount_due 0", async () => {
    const customer = await stripe.customers.create({ email: "credit@example.com", balance: -5000 });
    await stripe.invoiceItems.create({ customer: customer.id, amount: 3000, currency: "usd" });
    const draft = await stripe.invoices.create({
      customer: customer.id,
      pending_invoice_items_behavior: "include",
    });
    const invoice = await stripe.invoices.finalizeInvoice(draft.id);
    assert.equal(invoice.status, "paid");
    assert.equal(invoice.amount_due, 0);
    assert.equal(invoice.starting_balance, -5000);
    assert.equal(invoice.ending_balance, -2000);
    assert.equal((await stripe.customers.retrieve(customer.id)).balance, -2000);
  });

  /** @type {Stripe.Customer} */ let subscriber;
  /** @type {Stripe.Subscription} */ let subscription;

  check(
    "subscription create: first invoice paid with the default card, events in order",
    async () => {
      subscriber = await stripe.customers.create({ email: "sub@example.com" });
      const pm = await stripe.paymentMethods.attach("pm_card_visa", { customer: subscriber.id });
      const mark = await settled();
      subscription = await stripe.subscriptions.create({
        customer: subscriber.id,
        items: [{ price: starter.id }],
        default_payment_method: pm.id,
        metadata: { account: "acct_1" },
        expand: ["latest_invoice"],
      });
      assert.equal(subscription.status, "active");
      const item = subscription.items.data[0];
      assert.equal(item?.price.id, starter.id);
      assert.ok(item && item.current_period_end > item.current_period_start);
      const invoice = /** @type {Stripe.Invoice} */ (subscription.latest_invoice);
      assert.equal(invoice.status, "paid");
      assert.equal(invoice.billing_reason, "subscription_create");
      assert.equal(invoice.parent?.subscription_details?.subscription, subscription.id);
      assert.equal(invoice.lines.data[0]?.pricing?.price_details?.price, starter.id);
      await eventually(() => since(mark).includes("customer.subscription.updated"), "sub events");
      assert.deepEqual(
        since(mark, forCustomer(subscriber.id)).filter((t) => !t.startsWith("payment_")),
        [
          "customer.subscription.created",
          "invoice.created",
          "invoice.finalized",
          "invoice.paid",
          "invoice.payment_succeeded",
          "customer.subscription.updated",
        ],
      );
      const updated = received.slice(mark).find((r) => r.type === "customer.subscription.updated");
      assert.equal(updated?.event.data.previous_attributes.status, "incomplete");
      const listed = await stripe.subscriptions.list({ customer: subscriber.id });
      assert.deepEqual(
        listed.data.map((s) => s.id),
        [subscription.id],
      );
    },
  );

  check("subscription update: switch price with proration, cancel_at_period_end", async () => {
    const mark = await settled();
    const itemId = String(subscription.items.data[0]?.id);
    subscription = await stripe.subscriptions.update(subscription.id, {
      items: [{ id: itemId, price: pro.id }],
      proration_behavior: "create_prorations",
    });
    assert.equal(subscription.items.data[0]?.price.id, pro.id);
    const pending = await stripe.invoiceItems.list({ customer: subscriber.id, pending: true });
    assert.equal(pending.data.length, 2);
    subscription = await stripe.subscriptions.update(subscription.id, {
      cancel_at_period_end: true,
    });
    assert.equal(subscription.cancel_at_period_end, true);
    assert.equal(subscription.cancel_at, subscription.items.data[0]?.current_period_end);
    await eventually(
      () => since(mark).filter((t) => t === "customer.subscription.updated").length === 2,
      "two updates",
    );
    const last = received.slice(mark).filter((r) => r.type === "customer.subscription.updated")[1];
    assert.equal(last?.event.data.previous_attributes.cancel_at_period_end, false);
    subscription = await stripe.subscriptions.update(subscription.id, {
      cancel_at_period_end: false,
    });
  });

  check("renewal helper: next period invoiced and paid (subscription_cycle)", async () => {
    const before = subscription.items.data[0]?.current_period_end;
    const mark = await settled();
    const res = await fetch(`${server.url}/_local/subscriptions/${subscription.id}/renew`, {
      method: "POST",
    });
    assert.equal(res.status, 200);
    const body = /** @type {any} */ (await res.json());
    assert.equal(body.invoice.billing_reason, "subscription_cycle");
    assert.equal(body.invoice.status, "paid");
    assert.equal(body.subscription.items.data[0].current_period_start, before);
    assert.equal(body.invoice.lines.data[0].period.start, before);
    // The prorations created by the plan switch ride on the renewal invoice.
    assert.equal(body.invoice.lines.data.length, 3);
    await eventually(() => since(mark).includes("invoice.paid"), "renewal paid");
    const raw = await stripe.rawRequest(
      "POST",
      `/_local/subscriptions/${subscription.id}/renew`,
      {},
    );
    assert.equal(/** @type {any} */ (raw).invoice.status, "paid");
  });

  check("renewal with a declined card: past_due, then cancel (DELETE)", async () => {
    const customer = await stripe.customers.create({ email: "pastdue@example.com" });
    const good = await stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: starter.id }],
      default_payment_method: good.id,
    });
    const bad = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: customer.id,
    });
    await stripe.subscriptions.update(sub.id, { default_payment_method: bad.id });
    const mark = await settled();
    const res = await fetch(`${server.url}/_local/subscriptions/${sub.id}/renew`, {
      method: "POST",
    });
    const body = /** @type {any} */ (await res.json());
    assert.equal(body.invoice.status, "open");
    assert.equal(body.subscription.status, "past_due");
    await eventually(() => since(mark).includes("invoice.payment_failed"), "renewal failed");
    const canceled = await stripe.subscriptions.cancel(sub.id);
    assert.equal(canceled.status, "canceled");
    await eventually(() => since(mark).includes("customer.subscription.deleted"), "deleted");
    const all = await stripe.subscriptions.list({ customer: customer.id });
    assert.equal(all.data.length, 0, "canceled subscriptions are left out by default");
    const incl = await stripe.subscriptions.list({ customer: customer.id, status: "all" });
    assert.equal(incl.data.length, 1);
    const noCard = await stripe.customers.create({ email: "nocard@example.com" });
    const err = await rejection(
      stripe.subscriptions.create({ customer: noCard.id, items: [{ price: starter.id }] }),
    );
    assert.match(err.message, /no attached payment source or default payment method/);
  });

  check(
    "checkout mode=subscription: page, declined card, visa, completed event, redirect",
    async () => {
      const customer = await stripe.customers.create({ email: "checkout@example.com" });
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: starter.id, quantity: 1 }],
        success_url: "http://127.0.0.1:8787/billing/done?session={CHECKOUT_SESSION_ID}",
        cancel_url: "http://127.0.0.1:8787/billing",
        client_reference_id: "acct_42",
        metadata: { account: "acct_42" },
        subscription_data: { metadata: { account: "acct_42" } },
      });
      assert.equal(session.url, `${server.url}/c/pay/${session.id}`);
      assert.equal(session.status, "open");
      const html = await (await fetch(String(session.url))).text();
      assert.match(html, /value="pm_card_chargeDeclined"/);
      const declined = await submit(String(session.url), {
        payment_method: "pm_card_chargeDeclined",
      });
      assert.match(declined, /error=/);
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, "open");
      // …0341 saves fine but the subscription's first payment declines: the page says so.
      assert.match(html, /value="pm_card_chargeCustomerFail"/);
      const later = await submit(String(session.url), {
        payment_method: "pm_card_chargeCustomerFail",
      });
      assert.match(decodeURIComponent(later), /Your card was declined\./);
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, "open");
      const mark = await settled();
      const done = await submit(String(session.url), { payment_method: "pm_card_visa" });
      assert.equal(done, `http://127.0.0.1:8787/billing/done?session=${session.id}`);
      const complete = await stripe.checkout.sessions.retrieve(session.id, {
        expand: ["subscription"],
      });
      assert.equal(complete.status, "complete");
      assert.equal(complete.payment_status, "paid");
      const sub = /** @type {Stripe.Subscription} */ (complete.subscription);
      assert.equal(sub.status, "active");
      assert.deepEqual(sub.metadata, { account: "acct_42" });
      assert.match(String(sub.default_payment_method), /^pm_/);
      const after = await stripe.customers.retrieve(customer.id);
      assert.equal(
        /** @type {Stripe.Customer} */ (after).invoice_settings.default_payment_method,
        null,
        "Checkout sets the card on the subscription only",
      );
      await eventually(() => since(mark).includes("checkout.session.completed"), "completed");
      const types = since(mark, forCustomer(customer.id)).filter(
        (t) => !t.startsWith("payment_intent"),
      );
      assert.deepEqual(types, [
        "payment_method.attached",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
      ]);
      const event = received
        .slice(mark)
        .find((r) => r.type === "checkout.session.completed")?.event;
      assert.equal(event.data.object.subscription, sub.id);
      assert.equal(event.data.object.invoice, complete.invoice);
      assert.equal(event.data.object.customer, customer.id);
      assert.equal(event.data.object.client_reference_id, "acct_42");
      const expired = await rejection(stripe.checkout.sessions.expire(session.id));
      assert.equal(expired.statusCode, 400);
    },
  );

  check(
    "checkout sessions listed by customer and status=open; expire: expired event, page refuses",
    async () => {
      const customer = await stripe.customers.create({ email: "two-tabs@example.com" });
      const open = () =>
        stripe.checkout.sessions.create({
          mode: "subscription",
          customer: customer.id,
          line_items: [{ price: starter.id, quantity: 1 }],
          success_url: "http://127.0.0.1:8787/done",
        });
      const first = await open();
      const second = await open();
      const listed = await stripe.checkout.sessions.list({
        customer: customer.id,
        status: "open",
      });
      assert.deepEqual(listed.data.map((s) => s.id).sort(), [first.id, second.id].sort());
      const mark = await settled();
      const expired = await stripe.checkout.sessions.expire(first.id);
      assert.equal(expired.status, "expired");
      assert.equal(expired.url, null);
      await eventually(() => since(mark).includes("checkout.session.expired"), "expired event");
      const event = received.slice(mark).find((r) => r.type === "checkout.session.expired")?.event;
      assert.equal(event.data.object.id, first.id);
      assert.deepEqual(
        (await stripe.checkout.sessions.list({ customer: customer.id, status: "open" })).data.map(
          (s) => s.id,
        ),
        [second.id],
      );
      assert.deepEqual(
        (
          await stripe.checkout.sessions.list({ customer: customer.id, status: "expired" })
        ).data.map((s) => s.id),
        [first.id],
      );
      // Expiring again is an error (only an open session can be expired).
      const again = await rejection(stripe.checkout.sessions.expire(first.id));
      assert.equal(again.statusCode, 400);
      // The hosted page of the expired session says so and completes nothing.
      const html = await (await fetch(String(first.url))).text();
      assert.match(html, /This Checkout Session is <span id="status">expired<\/span>/);
      const refused = await submit(String(first.url), { payment_method: "pm_card_visa" });
      assert.match(decodeURIComponent(refused), /This Checkout Session is expired\./);
      assert.equal((await stripe.subscriptions.list({ customer: customer.id })).data.length, 0);
      assert.equal((await stripe.checkout.sessions.retrieve(first.id)).status, "expired");
    },
  );

  check("checkout mode=setup: SetupIntent succeeded with the card attached", async () => {
    const customer = await stripe.customers.create({ email: "setup@example.com" });
    const session = await stripe.checkout.sessions.create({
      mode: "setup",
      customer: customer.id,
      currency: "usd",
      success_url: "http://127.0.0.1:8787/cards?s={CHECKOUT_SESSION_ID}",
      cancel_url: "http://127.0.0.1:8787/cards",
      setup_intent_data: { metadata: { purpose: "card" } },
    });
    assert.match(String(session.setup_intent), /^seti_/);
    // A decline card is declined when it is saved: the page shows it, the session stays open.
    const declined = await submit(String(session.url), {
      payment_method: "pm_card_chargeDeclinedInsufficientFunds",
    });
    assert.match(decodeURIComponent(declined), /insufficient funds/);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, "open");
    assert.equal((await stripe.paymentMethods.list({ customer: customer.id })).data.length, 0);
    const mark = await settled();
    await submit(String(session.url), { payment_method: "pm_card_mastercard" });
    const complete = await stripe.checkout.sessions.retrieve(session.id, {
      expand: ["setup_intent"],
    });
    assert.equal(complete.status, "complete");
    assert.equal(complete.payment_status, "no_payment_required");
    const si = /** @type {Stripe.SetupIntent} */ (complete.setup_intent);
    assert.equal(si.status, "succeeded");
    assert.deepEqual(si.metadata, { purpose: "card" });
    const pm = await stripe.paymentMethods.retrieve(String(si.payment_method));
    assert.equal(pm.customer, customer.id);
    await eventually(() => since(mark).includes("checkout.session.completed"), "setup completed");
    assert.deepEqual(since(mark), [
      "payment_method.attached",
      "setup_intent.succeeded",
      "checkout.session.completed",
    ]);
    const other = await stripe.checkout.sessions.create({
      mode: "setup",
      currency: "usd",
      success_url: "http://127.0.0.1:8787/x",
    });
    const expired = await stripe.checkout.sessions.expire(other.id);
    assert.equal(expired.status, "expired");
    const listed = await stripe.checkout.sessions.list({ customer: customer.id });
    assert.deepEqual(
      listed.data.map((s) => s.id),
      [session.id],
    );
    // …0341 is saved in setup mode (it only fails when charged).
    const later = await stripe.checkout.sessions.create({
      mode: "setup",
      customer: customer.id,
      currency: "usd",
      success_url: "http://127.0.0.1:8787/cards",
    });
    await submit(String(later.url), { payment_method: "pm_card_chargeCustomerFail" });
    const saved = await stripe.checkout.sessions.retrieve(later.id, { expand: ["setup_intent"] });
    assert.equal(saved.status, "complete");
    const savedPm = String(/** @type {Stripe.SetupIntent} */ (saved.setup_intent).payment_method);
    assert.equal((await stripe.paymentMethods.retrieve(savedPm)).card?.last4, "0341");
  });

  check("setup intents: create+confirm, decline, requires_action", async () => {
    const customer = await stripe.customers.create({ email: "si@example.com" });
    const si = await stripe.setupIntents.create({
      customer: customer.id,
      payment_method: "pm_card_visa",
      confirm: true,
    });
    assert.equal(si.status, "succeeded");
    const pending = await stripe.setupIntents.create({ customer: customer.id });
    const action = await stripe.setupIntents.confirm(pending.id, {
      payment_method: "pm_card_authenticationRequiredOnSetup",
    });
    assert.equal(action.status, "requires_action");
    const err = await rejection(
      stripe.setupIntents.create({
        customer: customer.id,
        payment_method: "pm_card_chargeDeclined",
        confirm: true,
      }),
    );
    assert.equal(err.code, "card_declined");
    const later = await stripe.setupIntents.create({
      customer: customer.id,
      payment_method: "pm_card_chargeCustomerFail",
      confirm: true,
    });
    assert.equal(later.status, "succeeded");
  });

  check(
    "portal configuration and page: switch plan, cancel at period end, add card, invoices",
    async () => {
      const config = await stripe.billingPortal.configurations.create({
        business_profile: { headline: "Tollgate billing" },
        default_return_url: "http://127.0.0.1:8787/account",
        features: {
          subscription_update: {
            enabled: true,
            default_allowed_updates: ["price"],
            proration_behavior: "none",
            products: [
              { product: product.id, prices: [starter.id] },
              { product: String(pro.product), prices: [pro.id] },
            ],
          },
          payment_method_update: { enabled: true },
          invoice_history: { enabled: true },
          subscription_cancel: { enabled: true, mode: "at_period_end" },
        },
        metadata: { env: "local" },
      });
      assert.match(config.id, /^bpc_/);
      assert.equal(config.features.subscription_update.products?.length, 2);
      const listed = await stripe.billingPortal.configurations.list();
      assert.ok(listed.data.some((c) => c.id === config.id));
      const bad = await rejection(
        stripe.billingPortal.configurations.create({
          features: {
            subscription_update: {
              enabled: true,
              products: [{ product: "prod_nope", prices: [] }],
            },
          },
        }),
      );
      assert.equal(bad.code, "resource_missing");
      const session = await stripe.billingPortal.sessions.create({
        customer: subscriber.id,
        configuration: config.id,
      });
      assert.equal(session.return_url, "http://127.0.0.1:8787/account");
      const html = await (await fetch(session.url)).text();
      assert.match(html, new RegExp(`value="${starter.id}"`));
      assert.match(html, /href="\/i\/in_/);
      const mark = await settled();
      const base = session.url;
      await submit(`${base}/subscriptions/${subscription.id}/update`, { price: starter.id });
      let sub = await stripe.subscriptions.retrieve(subscription.id);
      assert.equal(sub.items.data[0]?.price.id, starter.id);
      await submit(`${base}/subscriptions/${subscription.id}/cancel`, {});
      sub = await stripe.subscriptions.retrieve(subscription.id);
      assert.equal(sub.cancel_at_period_end, true);
      const declined = await submit(`${base}/payment_methods`, {
        payment_method: "pm_card_chargeDeclined",
      });
      assert.match(decodeURIComponent(declined), /Your card was declined\./);
      await submit(`${base}/payment_methods`, { payment_method: "pm_card_mastercard" });
      const customer = /** @type {Stripe.Customer} */ (
        await stripe.customers.retrieve(subscriber.id)
      );
      const card = await stripe.paymentMethods.retrieve(
        String(customer.invoice_settings.default_payment_method),
      );
      assert.equal(card.card?.last4, "4444");
      await eventually(() => since(mark).includes("customer.updated"), "portal events");
      assert.deepEqual(since(mark), [
        "customer.subscription.updated",
        "customer.subscription.updated",
        "payment_method.attached",
        "customer.updated",
      ]);
      const renew = await fetch(`${server.url}/_local/subscriptions/${subscription.id}/renew`, {
        method: "POST",
      });
      const body = /** @type {any} */ (await renew.json());
      assert.equal(body.subscription.status, "canceled");
      assert.equal(body.invoice, null);
    },
  );

  check(
    "webhook endpoints: secret on create only, filtered delivery, disable; /v1/events",
    async () => {
      /** @type {any[]} */
      const got = [];
      const verifier = new Stripe("sk_test_local");
      let secret = "";
      const receiver = http.createServer((req, res) => {
        /** @type {Buffer[]} */
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
          const payload = Buffer.concat(chunks).toString("utf8");
          got.push(
            verifier.webhooks.constructEvent(
              payload,
              String(req.headers["stripe-signature"]),
              secret,
            ),
          );
          res.writeHead(200).end("{}");
        });
      });
      await new Promise((resolve) => receiver.listen(0, "127.0.0.1", () => resolve(undefined)));
      const address = receiver.address();
      const port = typeof address === "object" && address ? address.port : 0;
      try {
        const endpoint = await stripe.webhookEndpoints.create({
          url: `http://127.0.0.1:${port}/hook`,
          enabled_events: ["customer.created"],
        });
        secret = String(endpoint.secret);
        assert.match(secret, /^whsec_/);
        const fetched = await stripe.webhookEndpoints.retrieve(endpoint.id);
        assert.equal(fetched.secret, undefined);
        const c = await stripe.customers.create({
          email: "hook@example.com",
          metadata: { x: "1" },
        });
        await stripe.customers.update(c.id, { name: "Hook" });
        await eventually(() => got.length === 1, "endpoint got customer.created");
        assert.equal(got[0].type, "customer.created");
        assert.equal(got[0].data.object.id, c.id);
        await stripe.webhookEndpoints.update(endpoint.id, { disabled: true });
        await stripe.customers.create({ email: "hook2@example.com" });
        const list = await stripe.webhookEndpoints.list();
        assert.equal(list.data[0]?.status, "disabled");
        const events = await stripe.events.list({ type: "customer.*", limit: 3 });
        assert.equal(events.data[0]?.type, "customer.created");
        assert.equal(events.has_more, true);
        const one = await stripe.events.retrieve(got[0].id);
        assert.equal(one.type, "customer.created");
        assert.equal(one.pending_webhooks, 2);
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(got.length, 1, "a disabled endpoint gets nothing");
        await stripe.webhookEndpoints.del(endpoint.id);
      } finally {
        await new Promise((resolve) => receiver.close(() => resolve(undefined)));
      }
    },
  );

  check("faults, request log and idempotency cover the new endpoints", async () => {
    await fetch(`${server.url}/_test/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ faults: [{ method: "POST", path: "/v1/invoices", kind: "500" }] }),
    });
    const customer = await stripe.customers.create({ email: "idem@example.com" });
    const err = await rejection(stripe.invoices.create({ customer: customer.id }));
    assert.equal(err.statusCode, 500);
    const a = await stripe.invoices.create({ customer: customer.id }, { idempotencyKey: "inv-1" });
    const b = await stripe.invoices.create({ customer: customer.id }, { idempotencyKey: "inv-1" });
    assert.equal(a.id, b.id);
    assert.equal(b.lastResponse.headers["idempotent-replayed"], "true");
    const log = /** @type {any} */ (
      await (await fetch(`${server.url}/_test/requests?path=/v1/invoices`)).json()
    );
    assert.deepEqual(
      log.data.slice(-3).map((/** @type {any} */ r) => [r.status, r.fault, r.replayed]),
      [
        [500, "500", false],
        [200, null, false],
        [200, null, true],
      ],
    );
  });
}
