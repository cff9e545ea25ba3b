// @ts-check
/**
 * SetupIntents and Checkout Sessions (mode=subscription and mode=setup). A session's `url`
 * points at the local hosted page (pages.mjs), which calls `completeCheckout` here.
 */
import { getPrice, startSubscription } from "./billing.mjs";
import {
  clone,
  getCustomerOr404,
  getOr404,
  invalidRequest,
  isPlainObject,
  mergeMetadata,
  newestFirst,
  newId,
  now,
  paginate,
  readBoolean,
  readEnum,
  readInteger,
  readMetadata,
  readObject,
  readString,
  rejectUnknown,
} from "./lib.mjs";
import {
  attach,
  declinesAtAttach,
  getCardBehavior,
  isTemplate,
  markSetUp,
  materializeTemplate,
  readCreatedFilter,
} from "./payments.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").State} State */

// ---------------------------------------------------------------------------------------------
// SetupIntents
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {{ customer: string | null, metadata: Json, usage: string, description: string | null }} f
 * @returns {Json}
 */
export function storeSetupIntent(state, f) {
  const id = newId("seti_");
  /** @type {Json} */
  const si = {
    id,
    object: "setup_intent",
    application: null,
    automatic_payment_methods: null,
    cancellation_reason: null,
    client_secret: `${id}_secret_${newId("", 25)}`,
    created: now(),
    customer: f.customer,
    description: f.description,
    excluded_payment_method_types: null,
    flow_directions: null,
    last_setup_error: null,
    latest_attempt: null,
    livemode: false,
    mandate: null,
    metadata: f.metadata,
    next_action: null,
    on_behalf_of: null,
    payment_method: null,
    payment_method_configuration_details: null,
    payment_method_options: {
      card: { mandate_options: null, network: null, request_three_d_secure: "automatic" },
    },
    payment_method_types: ["card"],
    single_use_mandate: null,
    status: "requires_payment_method",
    usage: f.usage,
  };
  state.setupIntents.set(id, si);
  return si;
}

/**
 * Confirms a SetupIntent with a card. `present` = the customer is there to authenticate.
 * A declining card fails the setup (402); a card needing authentication waits in
 * `requires_action` unless the customer is present.
 * @param {Ctx} ctx
 * @param {Json} si
 * @param {string} pmId A concrete pm or a test template id.
 * @param {{ present?: boolean }} [opts]
 * @returns {{ status?: number, body: Json }}
 */
export function confirmSetupIntent(ctx, si, pmId, opts = {}) {
  const { state } = ctx;
  if (si.status === "succeeded" || si.status === "canceled") {
    throw invalidRequest(
      `You cannot confirm this SetupIntent because it has a status of ${si.status}.`,
      { code: "setup_intent_unexpected_state" },
    );
  }
  const pm = isTemplate(pmId)
    ? materializeTemplate(state, pmId, null)
    : getOr404(state.paymentMethods, pmId, "PaymentMethod", "payment_method");
  si.payment_method = pm.id;
  const behavior = getCardBehavior(state, pm.id);
  if (behavior.kind === "decline" && declinesAtAttach(behavior)) {
    const error = {
      code: behavior.code,
      decline_code: behavior.decline_code,
      doc_url: `https://stripe.com/docs/error-codes/${behavior.code.replaceAll("_", "-")}`,
      message: behavior.message,
      payment_method: clone(pm),
      type: "card_error",
    };
    si.status = "requires_payment_method";
    si.last_setup_error = error;
    si.payment_method = null;
    ctx.emit("setup_intent.setup_failed", si);
    return { status: 402, body: { error: { ...error, setup_intent: clone(si) } } };
  }
  if (behavior.kind === "authentication_required" && !opts.present) {
    si.status = "requires_action";
    si.next_action = {
      type: "use_stripe_sdk",
      use_stripe_sdk: { type: "three_d_secure_redirect", stripe_js: "" },
    };
    ctx.emit("setup_intent.requires_action", si);
    return { body: si };
  }
  if (si.customer && pm.customer !== si.customer) attach(ctx, pm.id, si.customer);
  markSetUp(state, pm.id);
  si.status = "succeeded";
  si.next_action = null;
  si.last_setup_error = null;
  ctx.emit("setup_intent.succeeded", si);
  return { body: si };
}

const SI_PARAMS = [
  "attach_to_self",
  "automatic_payment_methods",
  "confirm",
  "confirmation_token",
  "customer",
  "customer_account",
  "description",
  "excluded_payment_method_types",
  "expand",
  "flow_directions",
  "mandate_data",
  "metadata",
  "on_behalf_of",
  "payment_method",
  "payment_method_configuration",
  "payment_method_data",
  "payment_method_options",
  "payment_method_types",
  "return_url",
  "single_use",
  "usage",
  "use_stripe_sdk",
];

/** @param {Ctx} ctx */
function createSetupIntent(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, SI_PARAMS);
  const customer = readString(params, "customer") ?? null;
  if (customer) getCustomerOr404(state, customer, "customer");
  const pmId = readString(params, "payment_method") ?? null;
  if (pmId && !isTemplate(pmId)) {
    getOr404(state.paymentMethods, pmId, "PaymentMethod", "payment_method");
  }
  const confirm = readBoolean(params, "confirm") ?? false;
  if (confirm && !pmId) {
    throw invalidRequest(
      "You cannot confirm this SetupIntent because it's missing a payment method.",
      { param: "payment_method" },
    );
  }
  const si = storeSetupIntent(state, {
    customer,
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
    usage: readEnum(params, "usage", ["off_session", "on_session"]) ?? "off_session",
    description: readString(params, "description") ?? null,
  });
  ctx.emit("setup_intent.created", si);
  if (pmId && !confirm) {
    si.payment_method = isTemplate(pmId) ? materializeTemplate(state, pmId, null).id : pmId;
    si.status = "requires_confirmation";
  }
  if (confirm && pmId) return confirmSetupIntent(ctx, si, pmId);
  return { body: si };
}

/** @param {Ctx} ctx */
const setupIntentFromPath = (ctx) =>
  getOr404(ctx.state.setupIntents, ctx.pathParams.id ?? "", "setupintent", "intent");

/** @param {Ctx} ctx */
function retrieveSetupIntent(ctx) {
  rejectUnknown(ctx.params, ["client_secret", "expand"]);
  return { body: setupIntentFromPath(ctx) };
}

/** @param {Ctx} ctx */
function updateSetupIntent(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "attach_to_self",
    "customer",
    "description",
    "excluded_payment_method_types",
    "expand",
    "flow_directions",
    "metadata",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
  ]);
  const si = setupIntentFromPath(ctx);
  const metadata = readMetadata(params);
  if (metadata !== undefined) si.metadata = mergeMetadata(si.metadata, metadata);
  const description = readString(params, "description");
  if (description !== undefined) si.description = description;
  return { body: si };
}

/** @param {Ctx} ctx */
function confirmSetupIntentEndpoint(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "client_secret",
    "confirmation_token",
    "expand",
    "mandate_data",
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "return_url",
    "use_stripe_sdk",
  ]);
  const si = setupIntentFromPath(ctx);
  const pmId = readString(params, "payment_method") ?? si.payment_method;
  if (!pmId) {
    throw invalidRequest(
      "You cannot confirm this SetupIntent because it's missing a payment method.",
      { param: "payment_method" },
    );
  }
  return confirmSetupIntent(ctx, si, pmId);
}

/** @param {Ctx} ctx */
function listSetupIntents(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "attach_to_self",
    "created",
    "customer",
    "ending_before",
    "expand",
    "limit",
    "payment_method",
    "starting_after",
  ]);
  const customer = readString(params, "customer");
  const pm = readString(params, "payment_method");
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.setupIntents,
    (si) =>
      (!customer || si.customer === customer) &&
      (!pm || si.payment_method === pm) &&
      createdOk(si.created),
  );
  return { body: paginate(items, params, "/v1/setup_intents") };
}

// ---------------------------------------------------------------------------------------------
// Checkout Sessions
// ---------------------------------------------------------------------------------------------

const CHECKOUT_PARAMS = [
  "adaptive_pricing",
  "after_expiration",
  "allow_promotion_codes",
  "automatic_tax",
  "billing_address_collection",
  "branding_settings",
  "cancel_url",
  "client_reference_id",
  "consent_collection",
  "currency",
  "custom_fields",
  "custom_text",
  "customer",
  "customer_account",
  "customer_creation",
  "customer_email",
  "customer_update",
  "discounts",
  "excluded_payment_method_types",
  "expand",
  "expires_at",
  "invoice_creation",
  "line_items",
  "locale",
  "metadata",
  "mode",
  "name_collection",
  "optional_items",
  "origin_context",
  "payment_intent_data",
  "payment_method_collection",
  "payment_method_configuration",
  "payment_method_data",
  "payment_method_options",
  "payment_method_types",
  "permissions",
  "phone_number_collection",
  "redirect_on_completion",
  "return_url",
  "saved_payment_method_options",
  "setup_intent_data",
  "shipping_address_collection",
  "shipping_options",
  "submit_type",
  "subscription_data",
  "success_url",
  "tax_id_collection",
  "ui_mode",
  "wallet_options",
];

/**
 * @param {Json} params
 * @param {State} state
 */
function readLineItems(params, state) {
  const value = params.line_items;
  if (value === undefined || value === "") return [];
  if (!Array.isArray(value)) throw invalidRequest("Invalid array", { param: "line_items" });
  return value.map((raw, i) => {
    if (!isPlainObject(raw)) throw invalidRequest("Invalid object", { param: `line_items[${i}]` });
    rejectUnknown(
      raw,
      ["adjustable_quantity", "dynamic_tax_rates", "price", "price_data", "quantity", "tax_rates"],
      `line_items[${i}]`,
    );
    const priceId = /** @type {string} */ (
      readString(raw, "price", { required: true, label: `line_items[${i}][price]` })
    );
    const price = getPrice(state, priceId, `line_items[${i}][price]`);
    const quantity = readInteger(raw, "quantity") ?? 1;
    return { price, quantity };
  });
}

/** @param {Ctx} ctx */
function createCheckoutSession(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, CHECKOUT_PARAMS);
  const mode = /** @type {string} */ (
    readEnum(params, "mode", ["payment", "setup", "subscription"], { required: true })
  );
  if (mode === "payment") {
    throw invalidRequest("mode=payment is not modelled by the local Stripe server.", {
      param: "mode",
    });
  }
  const uiMode = readString(params, "ui_mode") ?? "hosted";
  const successUrl = readString(params, "success_url") ?? null;
  if (uiMode === "hosted" && !successUrl) {
    throw invalidRequest("Missing required param: success_url.", {
      code: "parameter_missing",
      param: "success_url",
    });
  }
  const customerId = readString(params, "customer") ?? null;
  const customer = customerId ? getCustomerOr404(state, customerId, "customer") : null;
  const customerEmail = readString(params, "customer_email") ?? null;
  if (customer && customerEmail) {
    throw invalidRequest(
      "You may only specify one of these parameters: customer, customer_email.",
      {
        param: "customer_email",
      },
    );
  }
  const lineItems = readLineItems(params, state);
  let currency = readString(params, "currency")?.toLowerCase() ?? null;
  const subscriptionData = readObject(params, "subscription_data", [
    "application_fee_percent",
    "billing_cycle_anchor",
    "billing_mode",
    "default_tax_rates",
    "description",
    "invoice_settings",
    "metadata",
    "on_behalf_of",
    "proration_behavior",
    "transfer_data",
    "trial_end",
    "trial_period_days",
    "trial_settings",
  ]);
  const setupIntentData = readObject(params, "setup_intent_data", [
    "description",
    "metadata",
    "on_behalf_of",
  ]);
  if (mode === "subscription") {
    if (lineItems.length === 0) {
      throw invalidRequest(
        "You must provide at least one recurring price in `subscription` mode when using prices.",
        {
          param: "line_items",
        },
      );
    }
    for (const [i, item] of lineItems.entries()) {
      if (!item.price.recurring) {
        throw invalidRequest(
          `You specified \`subscription\` mode but passed a one-time price (${item.price.id}). You must provide at least one recurring price in \`subscription\` mode when using prices.`,
          { param: `line_items[${i}][price]` },
        );
      }
    }
    currency = lineItems[0]?.price.currency ?? currency;
  } else {
    if (lineItems.length > 0) {
      throw invalidRequest("You cannot pass `line_items` in `setup` mode.", {
        param: "line_items",
      });
    }
    if (!currency && !params.payment_method_types) {
      throw invalidRequest(
        "You must provide `currency` or `payment_method_types` in `setup` mode.",
        { param: "currency" },
      );
    }
  }
  const subscriptionMetadata = mergeMetadata({}, readMetadata(subscriptionData) ?? {});
  const setupMetadata = mergeMetadata({}, readMetadata(setupIntentData) ?? {});
  const metadata = mergeMetadata({}, readMetadata(params) ?? {});
  const pmCollection =
    readEnum(params, "payment_method_collection", ["always", "if_required"]) ?? "always";
  const saved = readObject(params, "saved_payment_method_options", [
    "allow_redisplay_filters",
    "payment_method_remove",
    "payment_method_save",
  ]);
  const expiresAt = readInteger(params, "expires_at") ?? now() + 24 * 3600;
  const amount = lineItems.reduce((sum, item) => sum + item.price.unit_amount * item.quantity, 0);
  const id = newId("cs_test_", 58);
  const session = {
    id,
    object: "checkout.session",
    adaptive_pricing: null,
    after_expiration: null,
    allow_promotion_codes: null,
    amount_subtotal: mode === "setup" ? null : amount,
    amount_total: mode === "setup" ? null : amount,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: null,
    cancel_url: readString(params, "cancel_url") ?? null,
    client_reference_id: readString(params, "client_reference_id") ?? null,
    client_secret: null,
    collected_information: null,
    consent: null,
    consent_collection: null,
    created: now(),
    currency,
    currency_conversion: null,
    custom_fields: [],
    custom_text: {
      after_submit: null,
      shipping_address: null,
      submit: null,
      terms_of_service_acceptance: null,
    },
    customer: customerId,
    customer_account: null,
    customer_creation: customerId ? null : mode === "subscription" ? "always" : "if_required",
    customer_details: customer
      ? {
          address: null,
          business_name: null,
          email: customer.email,
          individual_name: null,
          name: customer.name,
          phone: customer.phone,
          tax_exempt: "none",
          tax_ids: [],
        }
      : null,
    customer_email: customerEmail,
    discounts: [],
    expires_at: expiresAt,
    integration_identifier: null,
    invoice: null,
    invoice_creation: null,
    livemode: false,
    locale: readString(params, "locale") ?? null,
    managed_payments: null,
    metadata,
    mode,
    origin_context: null,
    payment_intent: null,
    payment_link: null,
    payment_method_collection: mode === "subscription" ? pmCollection : null,
    payment_method_configuration_details: null,
    payment_method_options: { card: { request_three_d_secure: "automatic" } },
    payment_method_types: ["card"],
    payment_status: mode === "setup" ? "no_payment_required" : "unpaid",
    permissions: null,
    phone_number_collection: { enabled: false },
    recovered_from: null,
    saved_payment_method_options: customerId
      ? {
          allow_redisplay_filters: ["always"],
          payment_method_remove: readString(saved, "payment_method_remove") ?? null,
          payment_method_save: readString(saved, "payment_method_save") ?? null,
        }
      : null,
    setup_intent: /** @type {string | null} */ (null),
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: "open",
    submit_type: null,
    subscription: null,
    success_url: successUrl,
    total_details:
      mode === "setup" ? null : { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: uiMode,
    url: `${ctx.app.baseUrl}/c/pay/${id}`,
    wallet_options: null,
  };
  state.checkoutSessions.set(id, session);
  state.checkoutDetails.set(id, {
    lineItems: lineItems.map((item) => ({ price: item.price.id, quantity: item.quantity })),
    subscriptionMetadata,
    subscriptionDescription: readString(subscriptionData, "description") ?? null,
  });
  if (mode === "setup") {
    const si = storeSetupIntent(state, {
      customer: customerId,
      metadata: setupMetadata,
      usage: "off_session",
      description: readString(setupIntentData, "description") ?? null,
    });
    session.setup_intent = si.id;
    ctx.emit("setup_intent.created", si);
  }
  return { body: session };
}

/** @param {Ctx} ctx */
const sessionFromPath = (ctx) =>
  getOr404(ctx.state.checkoutSessions, ctx.pathParams.id ?? "", "checkout.session", "session");

/** @param {Ctx} ctx */
function retrieveCheckoutSession(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: sessionFromPath(ctx) };
}

/** @param {Ctx} ctx */
function listCheckoutSessions(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "created",
    "customer",
    "customer_account",
    "customer_details",
    "ending_before",
    "expand",
    "limit",
    "payment_intent",
    "payment_link",
    "starting_after",
    "status",
    "subscription",
  ]);
  const customer = readString(params, "customer");
  const status = readEnum(params, "status", ["complete", "expired", "open"]);
  const subscription = readString(params, "subscription");
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.checkoutSessions,
    (s) =>
      (!customer || s.customer === customer) &&
      (!status || s.status === status) &&
      (!subscription || s.subscription === subscription) &&
      createdOk(s.created),
  );
  return { body: paginate(items, params, "/v1/checkout/sessions") };
}

/** @param {Ctx} ctx */
function listCheckoutLineItems(ctx) {
  rejectUnknown(ctx.params, ["ending_before", "expand", "limit", "starting_after"]);
  const session = sessionFromPath(ctx);
  const details = ctx.state.checkoutDetails.get(session.id);
  const data = (details?.lineItems ?? []).map((/** @type {Json} */ item) => {
    const price = /** @type {Json} */ (ctx.state.prices.get(item.price));
    const amount = price.unit_amount * item.quantity;
    return {
      id: `li_${session.id.slice(8, 32)}${item.price.slice(-4)}`,
      object: "item",
      amount_discount: 0,
      amount_subtotal: amount,
      amount_tax: 0,
      amount_total: amount,
      currency: price.currency,
      description: ctx.state.products.get(price.product)?.name ?? price.product,
      price: clone(price),
      quantity: item.quantity,
    };
  });
  return { body: paginate(data, ctx.params, `/v1/checkout/sessions/${session.id}/line_items`) };
}

/** @param {Ctx} ctx */
function expireCheckoutSession(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  const session = sessionFromPath(ctx);
  if (session.status !== "open") {
    throw invalidRequest(
      `Only Checkout Sessions with a status of \`open\` can be expired. This Checkout Session has a status of \`${session.status}\`.`,
    );
  }
  session.status = "expired";
  session.url = null;
  ctx.emit("checkout.session.expired", session);
  return { body: session };
}

/**
 * What the hosted Checkout page does when the customer submits a card. Nothing changes when
 * the card declines (the page shows the error).
 * @param {Ctx} ctx
 * @param {Json} session
 * @param {string} card A test template id such as pm_card_visa.
 * @param {{ email?: string | null }} [form]
 * @returns {{ ok: true } | { ok: false, message: string }}
 */
export function completeCheckout(ctx, session, card, form = {}) {
  const { state } = ctx;
  if (session.status !== "open") {
    return { ok: false, message: `This Checkout Session is ${session.status}.` };
  }
  if (session.expires_at < now()) {
    session.status = "expired";
    ctx.emit("checkout.session.expired", session);
    return { ok: false, message: "This Checkout Session has expired." };
  }
  if (!isTemplate(card)) return { ok: false, message: `Unknown test card ${card}.` };
  const behavior = getCardBehavior(state, card);
  // Decline cards fail when the card is saved, in every mode; pm_card_chargeCustomerFail saves
  // fine (setup mode completes) but the subscription's first payment declines. Either way the
  // page shows the error and the session stays open.
  if (behavior.kind === "decline" && (session.mode !== "setup" || declinesAtAttach(behavior))) {
    return { ok: false, message: behavior.message };
  }

  let customer = session.customer ? state.customers.get(session.customer) : null;
  const email = form.email || session.customer_email || null;
  if (!customer && session.mode === "subscription") {
    customer = createCheckoutCustomer(ctx, email);
    session.customer = customer.id;
  }
  session.customer_details = {
    address: null,
    business_name: null,
    email: customer?.email ?? email,
    individual_name: null,
    name: customer?.name ?? null,
    phone: customer?.phone ?? null,
    tax_exempt: "none",
    tax_ids: [],
  };

  if (session.mode === "setup") {
    const si = /** @type {Json} */ (state.setupIntents.get(session.setup_intent));
    const result = confirmSetupIntent(ctx, si, card, { present: true });
    if (result.status === 402) return { ok: false, message: result.body.error.message };
  } else {
    const details = /** @type {Json} */ (state.checkoutDetails.get(session.id));
    const pm = attach(ctx, card, /** @type {Json} */ (customer).id);
    const { subscription, invoice, failure } = startSubscription(ctx, {
      customer: /** @type {Json} */ (customer),
      items: details.lineItems.map((/** @type {Json} */ item) => ({
        price: state.prices.get(item.price),
        quantity: item.quantity,
        metadata: {},
      })),
      // Checkout sets the card on the subscription only, not as the customer's default.
      defaultPaymentMethod: pm.id,
      paymentBehavior: "allow_incomplete",
      metadata: clone(details.subscriptionMetadata),
      cancelAtPeriodEnd: false,
      collectionMethod: "charge_automatically",
      description: details.subscriptionDescription,
      present: true,
    });
    if (failure) return { ok: false, message: failure.error.message };
    markSetUp(state, pm.id); // Checkout saves the card for the subscription's off-session renewals
    session.subscription = subscription.id;
    session.invoice = invoice.id;
    session.payment_status = "paid";
  }
  session.status = "complete";
  session.url = null;
  ctx.emit("checkout.session.completed", session);
  return { ok: true };
}

/**
 * @param {Ctx} ctx
 * @param {string | null} email
 */
function createCheckoutCustomer(ctx, email) {
  const id = newId("cus_", 14);
  const customer = {
    id,
    object: "customer",
    address: null,
    balance: 0,
    created: now(),
    currency: null,
    default_source: null,
    delinquent: false,
    description: null,
    discount: null,
    email,
    invoice_prefix: newId("", 8).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: null,
      rendering_options: null,
    },
    livemode: false,
    metadata: {},
    name: null,
    next_invoice_sequence: 1,
    phone: null,
    preferred_locales: [],
    shipping: null,
    tax_exempt: "none",
    test_clock: null,
  };
  ctx.state.customers.set(id, customer);
  ctx.emit("customer.created", customer);
  return customer;
}

const SESSION_EXPAND = ["customer", "subscription", "invoice", "setup_intent"];
const SI_EXPAND = ["customer", "payment_method"];

/** @param {string[]} paths */
const inList = (paths) => paths.map((p) => `data.${p}`);

export const CHECKOUT_ROUTES = /** @type {const} */ ([
  ["POST", "/v1/setup_intents", createSetupIntent, SI_EXPAND],
  ["GET", "/v1/setup_intents", listSetupIntents, inList(SI_EXPAND)],
  ["GET", "/v1/setup_intents/:id", retrieveSetupIntent, SI_EXPAND],
  ["POST", "/v1/setup_intents/:id", updateSetupIntent, SI_EXPAND],
  ["POST", "/v1/setup_intents/:id/confirm", confirmSetupIntentEndpoint, SI_EXPAND],
  ["POST", "/v1/checkout/sessions", createCheckoutSession, SESSION_EXPAND],
  ["GET", "/v1/checkout/sessions", listCheckoutSessions, inList(SESSION_EXPAND)],
  ["GET", "/v1/checkout/sessions/:id", retrieveCheckoutSession, SESSION_EXPAND],
  ["GET", "/v1/checkout/sessions/:id/line_items", listCheckoutLineItems, ["data.price.product"]],
  ["POST", "/v1/checkout/sessions/:id/expire", expireCheckoutSession, SESSION_EXPAND],
]);
