// @ts-check
/**
 * Selftest checks for plan changes, as Stripe bills them: prorations, `always_invoice`,
 * portal downgrades scheduled at period end, `past_due`, cancellation at period end, refunds.
 * Registered by selftest.mjs, which owns the runner and the server.
 */
import assert from "node:assert/strict";
import Stripe from "stripe";

/** @typedef {import("./selftest-billing.mjs").Kit} Kit */

/** @param {Kit} kit */
export function registerPlanChecks(kit) {
  const { check, stripe, server, received, rejection, eventually } = kit;

  /** @type {Stripe.Price} */ let starter;
  /** @type {Stripe.Price} */ let pro;

  /** Renews a subscription now through the server's test control. */
  const renew = async (/** @type {string} */ id) =>
    /** @type {{ subscription: Stripe.Subscription, invoice: Stripe.Invoice | null }} */ (
      /** @type {unknown} */ (
        await stripe.rawRequest("POST", `/_local/subscriptions/${id}/renew`, {})
      )
    );
  /** A customer with a card (its default) on a Starter subscription. */
  const subscribed = async (/** @type {string} */ card = "pm_card_visa") => {
    const customer = await stripe.customers.create({ email: "plans@example.com" });
    const pm = await stripe.paymentMethods.attach(card, { customer: customer.id });
    await stripe.customers.update(customer.id, {
      invoice_settings: { default_payment_method: pm.id },
    });
    const sub = await stripe.subscriptions.create({
      customer: customer.id,
      items: [{ price: starter.id }],
    });
    return { customer, sub, item: String(sub.items.data[0]?.id) };
  };
  /** Every event the webhook got for this customer or its objects, as types. */
  const eventsOf = (/** @type {string} */ customer) =>
    received
      .filter(
        (r) => r.event.data.object.customer === customer || r.event.data.object.id === customer,
      )
      .map((r) => r.event);
  const invoicesOf = async (/** @type {string} */ subscription) =>
    (await stripe.invoices.list({ subscription })).data;

  check("plan prices: Starter $19 and Pro $39 a month", async () => {
    const product = await stripe.products.create({ name: "Plans" });
    starter = await stripe.prices.create({
      product: product.id,
      unit_amount: 1900,
      currency: "usd",
      recurring: { interval: "month" },
    });
    pro = await stripe.prices.create({
      product: product.id,
      unit_amount: 3900,
      currency: "usd",
      recurring: { interval: "month" },
    });
  });

  check("upgrade with always_invoice: prorations invoiced and paid at once", async () => {
    const { customer, sub, item } = await subscribed();
    const start = Number(sub.items.data[0]?.current_period_start);
    const end = Number(sub.items.data[0]?.current_period_end);
    // Half the period left: 19.50 - 9.50 = 10.00 more, to the second.
    const at = start + Math.floor((end - start) / 2);
    const fraction = (end - at) / (end - start);
    const updated = await stripe.subscriptions.update(sub.id, {
      items: [{ id: item, price: pro.id }],
      proration_behavior: "always_invoice",
      proration_date: at,
      expand: ["latest_invoice"],
    });
    assert.equal(updated.items.data[0]?.price.id, pro.id);
    const invoice = /** @type {Stripe.Invoice} */ (updated.latest_invoice);
    assert.equal(invoice.billing_reason, "subscription_update");
    assert.equal(invoice.status, "paid");
    const amounts = invoice.lines.data.map((l) => l.amount);
    assert.deepEqual(amounts, [-Math.round(1900 * fraction), Math.round(3900 * fraction)]);
    assert.ok(invoice.lines.data.every((l) => l.parent?.invoice_item_details?.proration));
    assert.equal(invoice.total, amounts[0] + amounts[1]);
    assert.equal(invoice.amount_paid, invoice.total);
    assert.match(String(invoice.lines.data[0]?.description), /^Unused time on Plans after /);
    const pending = await stripe.invoiceItems.list({ customer: customer.id, pending: true });
    assert.equal(pending.data.length, 0);
    await eventually(
      () =>
        eventsOf(customer.id).some(
          (e) => e.type === "invoice.paid" && e.data.object.id === invoice.id,
        ),
      "upgrade invoice paid",
    );
    const types = eventsOf(customer.id)
      .filter((e) => e.created >= updated.created)
      .map((e) => e.type);
    const change = eventsOf(customer.id).find(
      (e) => e.type === "customer.subscription.updated" && e.data.previous_attributes?.items,
    );
    assert.equal(change?.data.previous_attributes.items.data[0].price.id, starter.id);
    for (const type of [
      "invoiceitem.created",
      "invoice.created",
      "invoice.finalized",
      "invoice.paid",
    ]) {
      assert.ok(types.includes(type), `${type} emitted`);
    }
  });

  check("create_prorations: pending items ride on the next invoice", async () => {
    const { customer, sub, item } = await subscribed();
    const at = Number(sub.items.data[0]?.current_period_start);
    await stripe.subscriptions.update(sub.id, {
      items: [{ id: item, price: pro.id }],
      proration_behavior: "create_prorations",
      proration_date: at,
    });
    const pending = await stripe.invoiceItems.list({ customer: customer.id, pending: true });
    assert.deepEqual(
      pending.data.map((i) => i.amount).sort((a, b) => a - b),
      [-1900, 3900],
    );
    assert.equal((await invoicesOf(sub.id)).length, 1, "nothing invoiced yet");
    const { invoice } = await renew(sub.id);
    assert.equal(invoice?.billing_reason, "subscription_cycle");
    assert.equal(invoice?.status, "paid");
    assert.equal(invoice?.total, 3900 + 3900 - 1900);
    const pendingAfter = await stripe.invoiceItems.list({ customer: customer.id, pending: true });
    assert.equal(pendingAfter.data.length, 0);
  });

  check(
    "up and back within a minute (always_invoice): a paid charge, then a balance credit",
    async () => {
      const { customer, sub, item } = await subscribed();
      const at = Number(sub.items.data[0]?.current_period_start);
      const up = await stripe.subscriptions.update(sub.id, {
        items: [{ id: item, price: pro.id }],
        proration_behavior: "always_invoice",
        proration_date: at,
        expand: ["latest_invoice"],
      });
      const down = await stripe.subscriptions.update(sub.id, {
        items: [{ id: item, price: starter.id }],
        proration_behavior: "always_invoice",
        proration_date: at,
        expand: ["latest_invoice"],
      });
      const first = /** @type {Stripe.Invoice} */ (up.latest_invoice);
      const second = /** @type {Stripe.Invoice} */ (down.latest_invoice);
      assert.equal(first.total, 2000);
      assert.equal(first.amount_paid, 2000);
      assert.equal(second.billing_reason, "subscription_update");
      assert.equal(second.total, -2000);
      assert.equal(second.amount_due, 0);
      assert.equal(second.status, "paid");
      assert.equal(second.ending_balance, -2000);
      const after = /** @type {Stripe.Customer} */ (await stripe.customers.retrieve(customer.id));
      assert.equal(after.balance, -2000, "the credit stays on the customer");
      // The next renewal uses the credit first.
      const { invoice } = await renew(sub.id);
      assert.equal(invoice?.total, 1900);
      assert.equal(invoice?.amount_due, 0);
      assert.equal(invoice?.status, "paid");
      const later = /** @type {Stripe.Customer} */ (await stripe.customers.retrieve(customer.id));
      assert.equal(later.balance, -100);
    },
  );

  check("portal: upgrade invoiced at once, downgrade scheduled to period end", async () => {
    const product = String(starter.product);
    const config = await stripe.billingPortal.configurations.create({
      features: {
        subscription_update: {
          enabled: true,
          default_allowed_updates: ["price"],
          proration_behavior: "always_invoice",
          schedule_at_period_end: { conditions: [{ type: "decreasing_item_amount" }] },
          products: [{ product, prices: [starter.id, pro.id] }],
        },
      },
    });
    assert.deepEqual(config.features.subscription_update.schedule_at_period_end.conditions, [
      { type: "decreasing_item_amount" },
    ]);
    const { customer, sub } = await subscribed();
    const session = await stripe.billingPortal.sessions.create({
      customer: customer.id,
      configuration: config.id,
    });
    const switchTo = async (/** @type {string} */ price) => {
      const res = await fetch(`${session.url}/subscriptions/${sub.id}/update`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ price }).toString(),
        redirect: "manual",
      });
      assert.equal(res.status, 303);
      assert.doesNotMatch(String(res.headers.get("location")), /error=/);
    };
    await switchTo(pro.id);
    let current = await stripe.subscriptions.retrieve(sub.id, { expand: ["latest_invoice"] });
    const upgrade = /** @type {Stripe.Invoice} */ (current.latest_invoice);
    assert.equal(current.items.data[0]?.price.id, pro.id);
    assert.equal(upgrade.billing_reason, "subscription_update");
    assert.equal(upgrade.status, "paid");
    assert.ok(upgrade.total > 1900 && upgrade.total <= 2000, `net proration ${upgrade.total}`);

    await switchTo(starter.id);
    current = await stripe.subscriptions.retrieve(sub.id, { expand: ["schedule"] });
    assert.equal(current.items.data[0]?.price.id, pro.id, "keeps Pro until the period ends");
    const scheduleId = String(/** @type {Stripe.SubscriptionSchedule} */ (current.schedule).id);
    const schedule = await stripe.subscriptionSchedules.retrieve(scheduleId);
    assert.equal(schedule.status, "active");
    assert.equal(schedule.subscription, sub.id);
    assert.equal(schedule.end_behavior, "release");
    assert.equal(schedule.phases[1]?.items[0]?.price, starter.id);
    assert.equal(schedule.phases[1]?.start_date, current.items.data[0]?.current_period_end);
    const listed = await stripe.subscriptionSchedules.list({ customer: customer.id });
    assert.deepEqual(
      listed.data.map((s) => s.id),
      [scheduleId],
    );
    assert.equal((await invoicesOf(sub.id)).length, 2, "a downgrade bills nothing now");
    const cancelAtEnd = await rejection(
      stripe.subscriptions.update(sub.id, { cancel_at_period_end: true }),
    );
    assert.match(cancelAtEnd.message, /managed by the subscription schedule/);

    const first = await renew(sub.id);
    assert.equal(first.subscription.items.data[0]?.price.id, starter.id);
    assert.deepEqual(
      first.invoice?.lines.data.map((l) => l.amount),
      [1900],
    );
    assert.equal(first.invoice?.status, "paid");
    const second = await renew(sub.id);
    assert.equal(second.subscription.schedule, null, "released after its last phase");
    assert.equal((await stripe.subscriptionSchedules.retrieve(scheduleId)).status, "released");
    assert.equal(second.invoice?.total, 1900);
    await eventually(
      () =>
        [
          "subscription_schedule.created",
          "subscription_schedule.updated",
          "subscription_schedule.released",
        ].every((t) => received.some((r) => r.type === t && r.event.data.object.id === scheduleId)),
      "schedule events",
    );

    // A scheduled downgrade released through the API leaves the subscription on its price.
    await switchTo(pro.id);
    await switchTo(starter.id);
    const again = String((await stripe.subscriptions.retrieve(sub.id)).schedule);
    const released = await stripe.subscriptionSchedules.release(again);
    assert.equal(released.status, "released");
    assert.equal(released.released_subscription, sub.id);
    assert.equal((await renew(sub.id)).invoice?.total, 3900);

    // An upgrade the card cannot pay is refused on the page; the plan stays.
    const broke = await subscribed();
    const failing = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: broke.customer.id,
    });
    await stripe.subscriptions.update(broke.sub.id, { default_payment_method: failing.id });
    const brokeSession = await stripe.billingPortal.sessions.create({
      customer: broke.customer.id,
      configuration: config.id,
    });
    const refused = await fetch(`${brokeSession.url}/subscriptions/${broke.sub.id}/update`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ price: pro.id }).toString(),
      redirect: "manual",
    });
    assert.match(decodeURIComponent(String(refused.headers.get("location"))), /declined/);
    const kept = await stripe.subscriptions.retrieve(broke.sub.id);
    assert.equal(kept.items.data[0]?.price.id, starter.id);
    assert.equal((await invoicesOf(broke.sub.id)).length, 1);
  });

  check("past_due: a failed renewal, then an upgrade leaves a second open invoice", async () => {
    const { customer, sub, item } = await subscribed("pm_card_visa");
    const failing = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: customer.id,
    });
    await stripe.customers.update(customer.id, {
      invoice_settings: { default_payment_method: failing.id },
    });
    const renewal = await renew(sub.id);
    assert.equal(renewal.subscription.status, "past_due");
    assert.equal(renewal.invoice?.status, "open");
    const upgraded = await stripe.subscriptions.update(sub.id, {
      items: [{ id: item, price: pro.id }],
      proration_behavior: "always_invoice",
      expand: ["latest_invoice"],
    });
    const invoice = /** @type {Stripe.Invoice} */ (upgraded.latest_invoice);
    assert.equal(upgraded.status, "past_due");
    assert.equal(invoice.billing_reason, "subscription_update");
    assert.equal(invoice.status, "open");
    assert.equal(invoice.attempt_count, 1);
    assert.equal(invoice.amount_paid, 0);
    const open = await stripe.invoices.list({ subscription: sub.id, status: "open" });
    assert.equal(open.data.length, 2);
    await eventually(
      () =>
        eventsOf(customer.id).some(
          (e) => e.type === "invoice.payment_failed" && e.data.object.id === invoice.id,
        ),
      "upgrade payment failed",
    );
  });

  check("an upgrade whose payment fails makes an active subscription past_due", async () => {
    const { customer, sub, item } = await subscribed();
    const failing = await stripe.paymentMethods.attach("pm_card_chargeCustomerFail", {
      customer: customer.id,
    });
    await stripe.subscriptions.update(sub.id, { default_payment_method: failing.id });
    const refused = await rejection(
      stripe.subscriptions.update(sub.id, {
        items: [{ id: item, price: pro.id }],
        proration_behavior: "always_invoice",
        payment_behavior: "error_if_incomplete",
      }),
    );
    assert.equal(refused.statusCode, 402);
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).items.data[0]?.price.id, starter.id);
    const updated = await stripe.subscriptions.update(sub.id, {
      items: [{ id: item, price: pro.id }],
      proration_behavior: "always_invoice",
      expand: ["latest_invoice"],
    });
    assert.equal(updated.status, "past_due");
    assert.equal(/** @type {Stripe.Invoice} */ (updated.latest_invoice).status, "open");
  });

  check(
    "cancel at period end: no renewal, deleted event; pending prorations billed last",
    async () => {
      const { customer, sub } = await subscribed();
      await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true });
      const ended = await renew(sub.id);
      assert.equal(ended.subscription.status, "canceled");
      assert.equal(ended.invoice, null);
      assert.equal((await invoicesOf(sub.id)).length, 1, "no renewal invoice");
      await eventually(
        () => eventsOf(customer.id).some((e) => e.type === "customer.subscription.deleted"),
        "deleted",
      );
      const other = await subscribed();
      const at = Number(other.sub.items.data[0]?.current_period_start);
      await stripe.subscriptions.update(other.sub.id, {
        items: [{ id: other.item, price: pro.id }],
        proration_date: at,
        cancel_at_period_end: true,
      });
      const last = await renew(other.sub.id);
      assert.equal(last.subscription.status, "canceled");
      assert.deepEqual(
        last.invoice?.lines.data.map((l) => l.amount),
        [-1900, 3900],
      );
      assert.ok(last.invoice?.lines.data.every((l) => l.parent?.type === "invoice_item_details"));
    },
  );

  check("refunds by PaymentIntent or charge; cancel with prorate and invoice_now", async () => {
    const { customer, sub } = await subscribed();
    const invoice = (await invoicesOf(sub.id))[0];
    const payments = await stripe.invoicePayments.list({ invoice: String(invoice?.id) });
    const pi = String(payments.data[0]?.payment.payment_intent);
    const partial = await stripe.refunds.create({ payment_intent: pi, amount: 500 });
    assert.equal(partial.status, "succeeded");
    assert.equal(partial.amount, 500);
    const charge = String(partial.charge);
    const rest = await stripe.refunds.create({ charge, reason: "duplicate" });
    assert.equal(rest.amount, 1400);
    const refunded = await stripe.charges.retrieve(charge);
    assert.equal(refunded.amount_refunded, 1900);
    assert.equal(refunded.refunded, true);
    const again = await rejection(stripe.refunds.create({ charge }));
    assert.equal(again.code, "charge_already_refunded");
    assert.deepEqual(
      (await stripe.refunds.list({ payment_intent: pi })).data.map((r) => r.id),
      [rest.id, partial.id],
    );
    await eventually(
      () =>
        received.filter((r) => r.type === "charge.refunded" && r.event.data.object.id === charge)
          .length === 2 && received.some((r) => r.type === "refund.created"),
      "refund events",
    );
    // The duplicate is canceled at once and its unused time credited on a final invoice.
    const canceled = await stripe.subscriptions.cancel(sub.id, {
      prorate: true,
      invoice_now: true,
    });
    assert.equal(canceled.status, "canceled");
    const invoices = await invoicesOf(sub.id);
    assert.equal(invoices.length, 2);
    assert.ok(Number(invoices[0]?.total) < 0 && Number(invoices[0]?.total) >= -1900);
    const after = /** @type {Stripe.Customer} */ (await stripe.customers.retrieve(customer.id));
    assert.equal(after.balance, invoices[0]?.total);
    // Without invoice_now or prorate, pending prorations go with the subscription.
    const other = await subscribed();
    await stripe.subscriptions.update(other.sub.id, { items: [{ id: other.item, price: pro.id }] });
    await stripe.subscriptions.cancel(other.sub.id);
    const pending = await stripe.invoiceItems.list({ customer: other.customer.id, pending: true });
    assert.equal(pending.data.length, 0);
  });

  check("shapes: every object carries the top-level fields of Stripe's fixture", async () => {
    /** @type {Record<string, string[]>} */
    const fixture = JSON.parse(
      await (await import("node:fs/promises")).readFile(
        new URL("./fixture-keys.json", import.meta.url),
        "utf8",
      ),
    ).keys;
    const state = await (await fetch(`${server.url}/_test/state`)).json();
    /** @type {Map<string, Set<string>>} */
    const missing = new Map();
    /** @type {Set<string>} */
    const seen = new Set();
    const walk = (/** @type {unknown} */ value) => {
      if (Array.isArray(value)) return value.forEach(walk);
      if (!value || typeof value !== "object") return;
      const object = /** @type {Record<string, unknown>} */ (value);
      const type = typeof object.object === "string" ? object.object : null;
      if (type && fixture[type]) {
        seen.add(type);
        for (const key of fixture[type]) {
          if (!(key in object)) missing.set(type, (missing.get(type) ?? new Set()).add(key));
        }
      }
      Object.values(object).forEach(walk);
    };
    walk(state);
    const session = await stripe.billingPortal.sessions.create({
      customer: String(state.customers[0].id),
    });
    walk(session);
    walk((await stripe.events.list({ limit: 100 })).data);
    const endpoint = await stripe.webhookEndpoints.create({
      url: "http://127.0.0.1:9/unused",
      enabled_events: ["customer.created"],
    });
    walk(endpoint);
    await stripe.webhookEndpoints.del(endpoint.id);
    assert.deepEqual(
      Object.fromEntries([...missing].map(([type, keys]) => [type, [...keys]])),
      {},
      "fields missing per object type",
    );
    for (const type of [
      "subscription",
      "subscription_item",
      "invoice",
      "line_item",
      "invoiceitem",
      "subscription_schedule",
      "refund",
      "charge",
      "payment_intent",
      "customer",
      "checkout.session",
      "price",
      "product",
      "event",
      "billing_portal.configuration",
      "billing_portal.session",
      "payment_method",
      "setup_intent",
      "invoice_payment",
      "webhook_endpoint",
    ]) {
      assert.ok(seen.has(type), `no ${type} was checked`);
    }
  });
}
