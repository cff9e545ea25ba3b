// @ts-check
/**
 * The hosted pages a person (or a test using fetch) visits: the hosted invoice page and its
 * PDF, the Checkout page and the customer portal. No auth, plain HTML forms posted as
 * `application/x-www-form-urlencoded`; every action answers 303 back to a page.
 */
import {
  addInterval,
  attemptInvoicePayment,
  changePlan,
  currentPeriodEnd,
  endSubscription,
  formatMoney,
  invoicePaymentIntent,
  prorationNow,
  refuseIfUnpayable,
  setCancelAtPeriodEnd,
} from "./billing.mjs";
import { completeCheckout } from "./checkout.mjs";
import { clone, escapeHtml, StripeHttpError } from "./lib.mjs";
import {
  attach,
  CARD_TEMPLATES,
  declinesAtAttach,
  isTemplate,
  materializeTemplate,
} from "./payments.mjs";
import { releaseSchedule, scheduleAtPeriodEnd } from "./schedules.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").State} State */

/**
 * @typedef {{ status: number, html?: string, location?: string,
 *   contentType?: string, body?: string | Buffer }} PageResult
 */

/** The cards a person can pick on the hosted pages. */
export const PAGE_CARDS = [
  "pm_card_visa",
  "pm_card_mastercard",
  "pm_card_chargeDeclined",
  "pm_card_chargeDeclinedInsufficientFunds",
  "pm_card_chargeCustomerFail",
  "pm_card_authenticationRequired",
  "pm_card_authenticationRequiredOnSetup",
];

/**
 * @param {string} title
 * @param {string} body
 */
const page = (title, body) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)} (local Stripe server)</title>` +
  `<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}` +
  `table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}` +
  `.error{color:#b00020}.status{font-weight:bold}</style></head>` +
  `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;

/** @param {string} message */
const notFound = (message) => ({
  status: 404,
  html: page("Not found", `<p>${escapeHtml(message)}</p>`),
});

/**
 * @param {string} name
 * @param {string[]} [cards]
 */
function cardPicker(name, cards = PAGE_CARDS) {
  return cards
    .map((id, i) => {
      const t = CARD_TEMPLATES[id];
      const label = t ? `${t.brand} •••• ${t.last4} (${id})` : id;
      return `<label><input type="radio" name="${name}" value="${id}"${i === 0 ? " checked" : ""}> ${escapeHtml(label)}</label><br>`;
    })
    .join("");
}

/**
 * @param {string | undefined} error
 */
const errorBlock = (error) => (error ? `<p class="error" id="error">${escapeHtml(error)}</p>` : "");

// ---------------------------------------------------------------------------------------------
// Hosted invoice page: GET /i/:id, POST /i/:id/pay, GET /i/:id/pdf
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {Json} invoice
 * @param {string | undefined} error
 * @returns {PageResult}
 */
function invoicePage(state, invoice, error) {
  const rows = invoice.lines.data
    .map(
      (/** @type {Json} */ line) =>
        `<tr><td>${escapeHtml(line.description ?? "")}</td><td>${line.quantity}</td><td>${escapeHtml(formatMoney(line.amount, line.currency))}</td></tr>`,
    )
    .join("");
  const money = (/** @type {number} */ n) => escapeHtml(formatMoney(n, invoice.currency));
  const pi = invoicePaymentIntent(state, invoice);
  let action = "";
  if (invoice.status === "open" || invoice.status === "uncollectible") {
    const needsAction = pi?.status === "requires_action";
    action =
      `<form method="post" action="/i/${invoice.id}/pay" id="pay">` +
      (needsAction
        ? `<p>Your bank asks you to confirm this payment.</p>` +
          `<input type="hidden" name="authenticate" value="true">` +
          `<button type="submit">Authenticate and pay ${money(invoice.amount_remaining)}</button>`
        : `<fieldset><legend>Card</legend>${cardPicker("payment_method")}</fieldset>` +
          `<button type="submit">Pay ${money(invoice.amount_remaining)}</button>`) +
      `</form>`;
  }
  const receipt =
    invoice.status === "paid"
      ? `<h2>Receipt</h2><p id="receipt">Paid ${money(invoice.amount_paid)} on ${new Date(invoice.status_transitions.paid_at * 1000).toISOString().slice(0, 10)}${invoice.number ? ` (receipt for ${escapeHtml(invoice.number)})` : ""}.</p>`
      : "";
  return {
    status: 200,
    html: page(
      `Invoice ${invoice.number ?? invoice.id}`,
      `<p>Status: <span class="status" id="status">${escapeHtml(invoice.status)}</span></p>` +
        errorBlock(error) +
        `<table><tr><th>Description</th><th>Qty</th><th>Amount</th></tr>${rows}</table>` +
        `<p>Subtotal ${money(invoice.subtotal)} · Total ${money(invoice.total)} · ` +
        `Amount due ${money(invoice.amount_due)} · Paid ${money(invoice.amount_paid)} · ` +
        `Remaining ${money(invoice.amount_remaining)}</p>` +
        receipt +
        action +
        `<p><a href="/i/${invoice.id}/pdf">Download PDF</a></p>`,
    ),
  };
}

/**
 * A one-page PDF listing the invoice (real PDF 1.4, Helvetica text).
 * @param {Json} invoice
 */
export function invoicePdf(invoice) {
  const money = (/** @type {number} */ n) => formatMoney(n, invoice.currency);
  const lines = [
    `Invoice ${invoice.number ?? invoice.id}`,
    `Status: ${invoice.status}`,
    `Customer: ${invoice.customer_email ?? invoice.customer}`,
    "",
    ...invoice.lines.data.map(
      (/** @type {Json} */ l) => `${l.description ?? ""}  x${l.quantity}  ${money(l.amount)}`,
    ),
    "",
    `Total: ${money(invoice.total)}`,
    `Amount due: ${money(invoice.amount_due)}`,
    `Amount paid: ${money(invoice.amount_paid)}`,
    `Amount remaining: ${money(invoice.amount_remaining)}`,
  ];
  const esc = (/** @type {string} */ s) =>
    s.replace(/[^\x20-\x7e]/g, "?").replace(/[\\()]/g, (c) => `\\${c}`);
  const text = lines
    .map((l, i) => `BT /F1 12 Tf 56 ${760 - i * 18} Td (${esc(l)}) Tj ET`)
    .join("\n");
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
    `<< /Length ${Buffer.byteLength(text)} >>\nstream\n${text}\nendstream`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let out = "%PDF-1.4\n";
  const offsets = objects.map((body, i) => {
    const offset = Buffer.byteLength(out);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
    return offset;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  out += offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("");
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}

/**
 * The customer pays on the hosted invoice page: with a chosen test card, or by completing the
 * authentication a previous attempt asked for.
 * @param {Ctx} ctx
 * @param {Json} invoice
 * @param {Record<string, string>} form `payment_method` (a test card id) or `authenticate=true`
 * @returns {PageResult}
 */
function payFromPage(ctx, invoice, form) {
  const back = (/** @type {string} */ error) => ({
    status: 303,
    location: `/i/${invoice.id}${error ? `?error=${encodeURIComponent(error)}` : ""}`,
  });
  if (invoice.status !== "open" && invoice.status !== "uncollectible") {
    return back(`This invoice is ${invoice.status}.`);
  }
  const { state } = ctx;
  /** @type {Json | null} */
  let pm = null;
  if (form.authenticate === "true") {
    const pi = invoicePaymentIntent(state, invoice);
    pm = pi?.payment_method ? (state.paymentMethods.get(pi.payment_method) ?? null) : null;
    if (!pm || pi?.status !== "requires_action") return back("Nothing to authenticate.");
  } else {
    const card = form.payment_method ?? "";
    if (!isTemplate(card)) return back(`Choose a test card (got '${card}').`);
    pm = materializeTemplate(state, card, null);
  }
  const result = attemptInvoicePayment(ctx, invoice, pm, { present: true });
  return back(result.ok ? "" : String(result.error.message));
}

// ---------------------------------------------------------------------------------------------
// Checkout: GET /c/pay/:id, POST /c/pay/:id
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {Json} session
 * @param {string | undefined} error
 * @returns {PageResult}
 */
function checkoutPage(state, session, error) {
  if (session.status !== "open") {
    return {
      status: 200,
      html: page(
        "Checkout",
        `<p>This Checkout Session is <span id="status">${escapeHtml(session.status)}</span>.</p>`,
      ),
    };
  }
  const details = state.checkoutDetails.get(session.id);
  const rows = (details?.lineItems ?? [])
    .map((/** @type {Json} */ item) => {
      const price = state.prices.get(item.price);
      const name = state.products.get(price?.product)?.name ?? price?.product;
      const each = price ? formatMoney(price.unit_amount, price.currency) : "";
      return `<tr><td>${escapeHtml(String(name))}</td><td>${item.quantity}</td><td>${escapeHtml(each)} / ${escapeHtml(price?.recurring?.interval ?? "")}</td></tr>`;
    })
    .join("");
  const customer = session.customer ? state.customers.get(session.customer) : null;
  const email = customer
    ? `<p>Customer: ${escapeHtml(customer.email ?? customer.id)}</p>`
    : `<label>Email <input type="email" name="email" value="${escapeHtml(session.customer_email ?? "")}"></label>`;
  const cancel = session.cancel_url
    ? `<p><a id="cancel" href="${escapeHtml(session.cancel_url)}">Cancel</a></p>`
    : "";
  const title = session.mode === "setup" ? "Save a card" : "Subscribe";
  return {
    status: 200,
    html: page(
      title,
      errorBlock(error) +
        (rows ? `<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>${rows}</table>` : "") +
        (session.amount_total !== null
          ? `<p>Total due today: ${escapeHtml(formatMoney(session.amount_total, session.currency))}</p>`
          : "") +
        `<form method="post" action="/c/pay/${session.id}" id="checkout">${email}` +
        `<fieldset><legend>Card</legend>${cardPicker("payment_method")}</fieldset>` +
        `<button type="submit">${session.mode === "setup" ? "Save card" : "Subscribe"}</button></form>${cancel}`,
    ),
  };
}

/**
 * @param {Ctx} ctx
 * @param {Json} session
 * @param {Record<string, string>} form `payment_method` (test card id), `email` (optional)
 * @returns {PageResult}
 */
function submitCheckout(ctx, session, form) {
  const result = completeCheckout(ctx, session, form.payment_method ?? "", { email: form.email });
  if (!result.ok) {
    return {
      status: 303,
      location: `/c/pay/${session.id}?error=${encodeURIComponent(result.message)}`,
    };
  }
  const target = String(session.success_url).replaceAll("{CHECKOUT_SESSION_ID}", session.id);
  return { status: 303, location: target };
}

// ---------------------------------------------------------------------------------------------
// Customer portal: GET /p/session/:id and its forms
// ---------------------------------------------------------------------------------------------

/**
 * The prices a portal configuration lets the customer switch to.
 * @param {State} state
 * @param {Json} config
 * @returns {Json[]}
 */
function switchablePrices(state, config) {
  const update = config.features.subscription_update;
  if (!update.enabled) return [];
  return update.products.flatMap((/** @type {Json} */ p) =>
    p.prices.map((/** @type {string} */ id) => state.prices.get(id)).filter(Boolean),
  );
}

/**
 * @param {State} state
 * @param {Json} session
 * @param {string | undefined} error
 * @returns {PageResult}
 */
function portalPage(state, session, error) {
  const config = state.portalConfigurations.get(session.configuration);
  const customer = state.customers.get(session.customer);
  const base = `/p/session/${session.id}`;
  const defaultPm = customer?.invoice_settings.default_payment_method;
  const cards = [...state.paymentMethods.values()]
    .filter((pm) => pm.customer === session.customer)
    .map(
      (pm) =>
        `<li>${escapeHtml(`${pm.card.brand} •••• ${pm.card.last4} (${pm.id})`)}${pm.id === defaultPm ? " (default)" : ""}</li>`,
    )
    .join("");
  const prices = config ? switchablePrices(state, config) : [];
  const subscriptions = [...state.subscriptions.values()]
    .filter((s) => s.customer === session.customer && s.status !== "canceled")
    .map((s) => {
      const item = s.items.data[0];
      const switchForm =
        prices.length > 0
          ? `<form method="post" action="${base}/subscriptions/${s.id}/update" class="switch">` +
            prices
              .map(
                (p) =>
                  `<label><input type="radio" name="price" value="${p.id}"${p.id === item?.price.id ? " checked" : ""}> ${escapeHtml(`${state.products.get(p.product)?.name ?? p.product} ${formatMoney(p.unit_amount, p.currency)} / ${p.recurring?.interval}`)} (${p.id})</label><br>`,
              )
              .join("") +
            `<button type="submit">Update plan</button></form>`
          : "";
      const cancelForm =
        config?.features.subscription_cancel.enabled && !s.cancel_at_period_end
          ? `<form method="post" action="${base}/subscriptions/${s.id}/cancel"><button type="submit">Cancel plan</button></form>`
          : "";
      const renewForm = s.cancel_at_period_end
        ? `<p>Cancels at the end of the period (${new Date(currentPeriodEnd(s) * 1000).toISOString().slice(0, 10)}).</p>` +
          `<form method="post" action="${base}/subscriptions/${s.id}/renew"><button type="submit">Don't cancel</button></form>`
        : "";
      const next = s.schedule ? state.subscriptionSchedules.get(s.schedule)?.phases[1] : null;
      const scheduled = next
        ? `<p class="scheduled">Switches to ${escapeHtml(next.items[0].price)} on ${new Date(next.start_date * 1000).toISOString().slice(0, 10)}.</p>`
        : "";
      return `<div class="subscription" id="${s.id}"><p>${escapeHtml(s.id)}: <span class="status">${escapeHtml(s.status)}</span>, ${escapeHtml(item?.price.id ?? "")}</p>${scheduled}${switchForm}${cancelForm}${renewForm}</div>`;
    })
    .join("");
  const invoices = config?.features.invoice_history.enabled
    ? [...state.invoices.values()]
        .filter((i) => i.customer === session.customer && i.status !== "draft")
        .reverse()
        .map(
          (i) =>
            `<li><a href="/i/${i.id}">${escapeHtml(i.number ?? i.id)}</a> ${escapeHtml(formatMoney(i.total, i.currency))} ${escapeHtml(i.status)}</li>`,
        )
        .join("")
    : "";
  const addCard = config?.features.payment_method_update.enabled
    ? `<form method="post" action="${base}/payment_methods" id="add-card"><fieldset><legend>Add a card</legend>${cardPicker("payment_method")}</fieldset><button type="submit">Add card</button></form>`
    : "";
  const back = session.return_url
    ? `<p><a id="return" href="${escapeHtml(session.return_url)}">Return to ${escapeHtml(session.return_url)}</a></p>`
    : "";
  return {
    status: 200,
    html: page(
      "Customer portal",
      errorBlock(error) +
        (config?.business_profile?.headline
          ? `<p id="headline">${escapeHtml(config.business_profile.headline)}</p>`
          : "") +
        `<p>Customer: ${escapeHtml(customer?.email ?? session.customer)}</p>` +
        `<h2>Subscriptions</h2>${subscriptions || "<p>None</p>"}` +
        `<h2>Payment methods</h2><ul>${cards}</ul>${addCard}` +
        (config?.features.invoice_history.enabled
          ? `<h2>Invoices</h2><ul id="invoices">${invoices}</ul>`
          : "") +
        back,
    ),
  };
}

/**
 * @param {Ctx} ctx
 * @param {Json} session
 * @param {string} action e.g. "subscriptions/sub_x/update", "payment_methods"
 * @param {Record<string, string>} form
 * @returns {PageResult}
 */
function portalAction(ctx, session, action, form) {
  const { state } = ctx;
  const back = (/** @type {string} */ error = "") => ({
    status: 303,
    location: `/p/session/${session.id}${error ? `?error=${encodeURIComponent(error)}` : ""}`,
  });
  const config = state.portalConfigurations.get(session.configuration);
  if (!config) return back("This portal session has no configuration.");
  if (action === "payment_methods") {
    if (!config.features.payment_method_update.enabled) return back("Not allowed.");
    const card = form.payment_method ?? "";
    if (!isTemplate(card)) return back(`Choose a test card (got '${card}').`);
    const behavior = CARD_TEMPLATES[card]?.behavior;
    if (behavior?.kind === "decline" && declinesAtAttach(behavior)) return back(behavior.message);
    const pm = attach(ctx, card, session.customer);
    const customer = /** @type {Json} */ (state.customers.get(session.customer));
    const before = customer.invoice_settings.default_payment_method;
    customer.invoice_settings.default_payment_method = pm.id;
    ctx.emit("customer.updated", customer, {
      invoice_settings: { default_payment_method: before },
    });
    return back();
  }
  const match = action.match(/^subscriptions\/([^/]+)\/(update|cancel|renew)$/);
  const subscription = match ? state.subscriptions.get(match[1] ?? "") : null;
  if (!match || !subscription || subscription.customer !== session.customer) {
    return { status: 404, html: page("Not found", "<p>Unknown portal action.</p>") };
  }
  if (subscription.status === "canceled") return back("This subscription is canceled.");
  const verb = match[2];
  const schedule = subscription.schedule
    ? state.subscriptionSchedules.get(subscription.schedule)
    : null;
  if (verb === "update") {
    const price = state.prices.get(form.price ?? "");
    if (!price || !switchablePrices(state, config).some((p) => p.id === price.id)) {
      return back(`That price is not offered here (got '${form.price ?? ""}').`);
    }
    const item = subscription.items.data[0];
    const update = config.features.subscription_update;
    const proration = update.proration_behavior;
    const charges = price.unit_amount > item.price.unit_amount && !atPeriodEnd(update, item, price);
    if (charges && proration === "always_invoice") {
      // The portal does not switch when the invoice the switch needs cannot be paid.
      try {
        refuseIfUnpayable(state, subscription);
      } catch (err) {
        return back(err instanceof StripeHttpError ? String(err.error.message) : String(err));
      }
    }
    // Any choice replaces a switch scheduled earlier.
    if (schedule?.status === "active") releaseSchedule(ctx, schedule, subscription, true);
    if (item.price.id === price.id) return back();
    if (atPeriodEnd(update, item, price)) {
      scheduleAtPeriodEnd(ctx, subscription, price, addInterval);
      return back();
    }
    const changes = [{ id: item.id, price }];
    changePlan(ctx, subscription, {
      changes,
      proration,
      at: prorationNow(subscription),
      paymentBehavior: "allow_incomplete",
    });
    return back();
  }
  if (schedule?.status === "active") releaseSchedule(ctx, schedule, subscription, true);
  if (verb === "cancel") {
    if (!config.features.subscription_cancel.enabled) return back("Not allowed.");
    if (config.features.subscription_cancel.mode === "immediately") {
      endSubscription(ctx, subscription, "cancellation_requested");
      return back();
    }
    if (subscription.cancel_at_period_end) return back();
  } else if (!subscription.cancel_at_period_end) {
    return back(); // renew: undo a cancellation at period end
  }
  const previous = {
    cancel_at: subscription.cancel_at,
    cancel_at_period_end: subscription.cancel_at_period_end,
    canceled_at: subscription.canceled_at,
    cancellation_details: clone(subscription.cancellation_details),
  };
  setCancelAtPeriodEnd(subscription, verb === "cancel");
  ctx.emit("customer.subscription.updated", subscription, previous);
  return back();
}

/**
 * Whether the configuration's `schedule_at_period_end` conditions defer this switch to the
 * end of the period (Stripe does it with a subscription schedule).
 * @param {Json} update `features.subscription_update`
 * @param {Json} item The subscription item.
 * @param {Json} price The price chosen.
 */
function atPeriodEnd(update, item, price) {
  const types = update.schedule_at_period_end.conditions.map((/** @type {Json} */ c) => c.type);
  const days = (/** @type {Json} */ p) =>
    ({ day: 1, week: 7, month: 30, year: 365 })[/** @type {"day"} */ (p.recurring.interval)] *
    p.recurring.interval_count;
  return (
    (types.includes("decreasing_item_amount") &&
      price.unit_amount * item.quantity < item.price.unit_amount * item.quantity) ||
    (types.includes("shortening_interval") && days(price) < days(item.price))
  );
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/**
 * Serves a page, or returns null when the path is not a page.
 * @param {Ctx} ctx
 * @param {string} method
 * @param {URL} url
 * @param {Record<string, string>} form Decoded form body (POST).
 * @returns {PageResult | null}
 */
export function handlePage(ctx, method, url, form) {
  const { state } = ctx;
  const path = url.pathname;
  const error = url.searchParams.get("error") ?? undefined;
  let m = path.match(/^\/i\/([^/]+)(\/pay|\/pdf)?$/);
  if (m) {
    const invoice = state.invoices.get(m[1] ?? "");
    if (!invoice || invoice.status === "draft") return notFound("Unknown invoice.");
    if (method === "GET" && !m[2]) return invoicePage(state, invoice, error);
    if (method === "GET" && m[2] === "/pdf") {
      return { status: 200, contentType: "application/pdf", body: invoicePdf(invoice) };
    }
    if (method === "POST" && m[2] === "/pay") return payFromPage(ctx, invoice, form);
    return null;
  }
  m = path.match(/^\/c\/pay\/([^/]+)$/);
  if (m) {
    const session = state.checkoutSessions.get(m[1] ?? "");
    if (!session) return notFound("Unknown Checkout Session.");
    if (method === "GET") return checkoutPage(state, session, error);
    if (method === "POST") return submitCheckout(ctx, session, form);
    return null;
  }
  m = path.match(/^\/p\/session\/([^/]+)(?:\/(.+))?$/);
  if (m) {
    const session = state.portalSessions.get(m[1] ?? "");
    if (!session) {
      return {
        status: 404,
        html: "<!doctype html><title>Not found</title><h1>Unknown portal session</h1>",
      };
    }
    if (method === "GET" && !m[2]) return portalPage(state, session, error);
    if (method === "POST" && m[2]) return portalAction(ctx, session, m[2], form);
    return null;
  }
  return null;
}
