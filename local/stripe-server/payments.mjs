// @ts-check
/**
 * Test cards, customers, payment methods and payment intents.
 */
import { createHash } from "node:crypto";
import {
  canonicalJson,
  clone,
  compileSearch,
  getCustomerOr404,
  getPaymentMethodOr404,
  invalidRequest,
  isPlainObject,
  mergeMetadata,
  newestFirst,
  newId,
  noSuch,
  now,
  paginate,
  readBoolean,
  readInteger,
  readMetadata,
  readString,
  rejectUnknown,
  StripeHttpError,
  searchResult,
} from "./lib.mjs";
/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").CardBehavior} CardBehavior */
/** @typedef {import("./lib.mjs").State} State */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").HandlerResult} HandlerResult */

// ---------------------------------------------------------------------------------------------
// Test cards
// ---------------------------------------------------------------------------------------------

/** @type {Record<string, { brand: string, last4: string, behavior: CardBehavior }>} */
export const CARD_TEMPLATES = {
  pm_card_visa: { brand: "visa", last4: "4242", behavior: { kind: "succeed" } },
  pm_card_mastercard: { brand: "mastercard", last4: "4444", behavior: { kind: "succeed" } },
  pm_card_chargeDeclined: {
    brand: "visa",
    last4: "0002",
    behavior: {
      kind: "decline",
      code: "card_declined",
      decline_code: "generic_decline",
      message: "Your card was declined.",
    },
  },
  pm_card_chargeDeclinedInsufficientFunds: {
    brand: "visa",
    last4: "9995",
    behavior: {
      kind: "decline",
      code: "card_declined",
      decline_code: "insufficient_funds",
      message: "Your card has insufficient funds.",
    },
  },
  pm_card_chargeDeclinedExpiredCard: {
    brand: "visa",
    last4: "0069",
    behavior: {
      kind: "decline",
      code: "expired_card",
      decline_code: "expired_card",
      message: "Your card has expired.",
      param: "exp_month",
    },
  },
  // Stripe's one test card that attaches to a customer and then declines every charge (the
  // decline cards above are declined already when they are attached).
  pm_card_chargeCustomerFail: {
    brand: "visa",
    last4: "0341",
    behavior: {
      kind: "decline",
      code: "card_declined",
      decline_code: "generic_decline",
      message: "Your card was declined.",
      attach: "succeed",
    },
  },
  pm_card_authenticationRequired: {
    brand: "visa",
    last4: "3184",
    behavior: { kind: "authentication_required" },
  },
  // "Requires authentication for one-time payments. However, if you set up this card and use
  // the saved card for subsequent off-session payments, no further authentication is needed."
  pm_card_authenticationRequiredOnSetup: {
    brand: "visa",
    last4: "3155",
    behavior: { kind: "authentication_required", untilSetUp: true },
  },
};

/**
 * Records that a card was set up with the customer present (a SetupIntent, Checkout): …3155
 * then pays off-session without authentication; other cards are unchanged.
 * @param {State} state
 * @param {string} pmId
 */
export function markSetUp(state, pmId) {
  const behavior = state.cardBehaviors.get(pmId);
  if (behavior?.kind === "authentication_required" && behavior.untilSetUp) {
    state.cardBehaviors.set(pmId, { ...behavior, setUp: true });
  }
}

/** @param {string} id */
export const isTemplate = (id) => Object.hasOwn(CARD_TEMPLATES, id);

/**
 * How charges on a payment method (or a test template id) end.
 * @param {State} state
 * @param {string} id
 * @returns {CardBehavior}
 */
export function getCardBehavior(state, id) {
  return CARD_TEMPLATES[id]?.behavior ?? state.cardBehaviors.get(id) ?? { kind: "succeed" };
}

/**
 * Whether the issuer declines the card already when it is saved to a customer (attach, a
 * SetupIntent, Checkout in setup mode, the portal): every decline test card but
 * `pm_card_chargeCustomerFail`, as in Stripe.
 * @param {CardBehavior} behavior
 */
export const declinesAtAttach = (behavior) =>
  behavior.kind === "decline" && behavior.attach !== "succeed";

/**
 * Stripe's 402 `card_error` for a card declined while it is attached.
 * @param {Ctx} ctx
 * @param {CardBehavior} behavior A decline.
 */
export function attachDeclined(ctx, behavior) {
  if (behavior.kind !== "decline") throw new Error("not a decline");
  return new StripeHttpError(402, {
    type: "card_error",
    code: behavior.code,
    decline_code: behavior.decline_code,
    doc_url: `https://stripe.com/docs/error-codes/${behavior.code.replaceAll("_", "-")}`,
    message: behavior.message,
    param: behavior.param ?? "",
    request_log_url: `https://dashboard.stripe.com/test/logs/${ctx.requestId}`,
  });
}

/**
 * Creates and stores a concrete payment method from a test template id. Real Stripe mints a
 * fresh `pm_…` every time a template id is used, and so do we.
 * @param {State} state
 * @param {string} templateId
 * @param {string | null} customer
 */
export function materializeTemplate(state, templateId, customer) {
  const template = CARD_TEMPLATES[templateId];
  if (!template) throw new Error(`not a template: ${templateId}`);
  const id = newId("pm_");
  // Same card number => same fingerprint, as in Stripe (lets apps detect duplicate cards).
  const fingerprint = createHash("sha256")
    .update(`${template.brand}:${template.last4}`)
    .digest("base64url")
    .slice(0, 16);
  const pm = {
    id,
    object: "payment_method",
    allow_redisplay: "unspecified",
    billing_details: {
      address: {
        city: null,
        country: null,
        line1: null,
        line2: null,
        postal_code: null,
        state: null,
      },
      email: null,
      name: null,
      phone: null,
    },
    card: {
      brand: template.brand,
      checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: "pass" },
      country: "US",
      display_brand: template.brand,
      exp_month: 12,
      exp_year: new Date().getUTCFullYear() + 3,
      fingerprint,
      funding: "credit",
      generated_from: null,
      last4: template.last4,
      networks: { available: [template.brand], preferred: null },
      three_d_secure_usage: { supported: true },
      wallet: null,
    },
    created: now(),
    customer,
    customer_account: null,
    livemode: false,
    metadata: {},
    type: "card",
  };
  state.paymentMethods.set(id, pm);
  state.cardBehaviors.set(id, template.behavior);
  return pm;
}

// ---------------------------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------------------------

export const CUSTOMER_COMMON_PARAMS = [
  "address",
  "balance",
  "cash_balance",
  "description",
  "email",
  "expand",
  "invoice_prefix",
  "invoice_settings",
  "metadata",
  "name",
  "next_invoice_sequence",
  "phone",
  "preferred_locales",
  "shipping",
  "tax",
  "tax_exempt",
];
export const CUSTOMER_CREATE_PARAMS = [
  ...CUSTOMER_COMMON_PARAMS,
  "payment_method",
  "source",
  "tax_id_data",
  "test_clock",
];
export const CUSTOMER_UPDATE_PARAMS = [...CUSTOMER_COMMON_PARAMS, "default_source", "source"];
export const INVOICE_SETTINGS_PARAMS = [
  "custom_fields",
  "default_payment_method",
  "footer",
  "rendering_options",
];
export const CUSTOMER_SIMPLE_FIELDS = ["email", "name", "description", "phone"];

/**
 * Reads `invoice_settings[default_payment_method]`.
 * @param {Json} params
 * @returns {string | null | undefined}
 */
export function readDefaultPaymentMethod(params) {
  const settings = params.invoice_settings;
  if (settings === undefined || settings === "") return undefined;
  if (!isPlainObject(settings))
    throw invalidRequest("Invalid object", { param: "invoice_settings" });
  rejectUnknown(settings, INVOICE_SETTINGS_PARAMS, "invoice_settings");
  return readString(settings, "default_payment_method", {
    label: "invoice_settings[default_payment_method]",
  });
}

/**
 * A default payment method must already be attached to the customer.
 * @param {State} state
 * @param {string} customerId
 * @param {string} pmId
 */
export function assertAttachedTo(state, customerId, pmId) {
  const pm = state.paymentMethods.get(pmId);
  if (!pm || pm.customer !== customerId) {
    throw invalidRequest(
      `The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`,
      { param: "invoice_settings[default_payment_method]" },
    );
  }
}

/** @param {Ctx} ctx */
export function createCustomer(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, CUSTOMER_CREATE_PARAMS);
  /** @type {Record<string, string | null>} */
  const fields = {};
  for (const name of CUSTOMER_SIMPLE_FIELDS) fields[name] = readString(params, name) ?? null;
  const metadata = mergeMetadata({}, readMetadata(params) ?? {});
  const pmParam = readString(params, "payment_method") ?? null;
  const defaultPm = readDefaultPaymentMethod(params) ?? null;
  // Validate the payment method before creating anything, so a bad one leaves no customer.
  if (pmParam && !isTemplate(pmParam)) {
    const pm = getPaymentMethodOr404(state, pmParam, "payment_method");
    if (pm.customer) throw alreadyAttached();
  }
  // A card the issuer declines when it is saved fails the request: no customer is created.
  if (pmParam && declinesAtAttach(getCardBehavior(state, pmParam))) {
    throw attachDeclined(ctx, getCardBehavior(state, pmParam));
  }
  if (defaultPm && defaultPm !== pmParam) {
    throw invalidRequest(
      `The customer does not have a payment method with the ID ${defaultPm}. The payment method must be attached to the customer.`,
      { param: "invoice_settings[default_payment_method]" },
    );
  }

  const id = newId("cus_");
  const customer = {
    id,
    object: "customer",
    address: null,
    balance: readInteger(params, "balance") ?? 0,
    created: now(),
    currency: null,
    default_source: null,
    delinquent: false,
    description: fields.description,
    discount: null,
    email: fields.email,
    invoice_prefix: newId("", 8).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: null,
      rendering_options: null,
    },
    livemode: false,
    metadata,
    name: fields.name,
    next_invoice_sequence: 1,
    phone: fields.phone,
    preferred_locales: [],
    shipping: null,
    tax_exempt: "none",
    test_clock: null,
  };
  state.customers.set(id, customer);
  ctx.emit("customer.created", customer);
  if (pmParam) {
    const pm = attach(ctx, pmParam, id);
    if (defaultPm) customer.invoice_settings.default_payment_method = pm.id;
  }
  return { body: customer };
}

/** @param {Ctx} ctx */
export function retrieveCustomer(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getCustomerOr404(ctx.state, ctx.pathParams.id ?? "", "id") };
}

/** @param {Ctx} ctx */
export function updateCustomer(ctx) {
  const { state, params } = ctx;
  const customer = getCustomerOr404(state, ctx.pathParams.id ?? "", "id");
  rejectUnknown(params, CUSTOMER_UPDATE_PARAMS);
  /** @type {Record<string, string | null>} */
  const fields = {};
  for (const name of CUSTOMER_SIMPLE_FIELDS) {
    const value = readString(params, name);
    if (value !== undefined) fields[name] = value;
  }
  const metadataUpdate = readMetadata(params);
  const defaultPm = readDefaultPaymentMethod(params);
  if (defaultPm) assertAttachedTo(state, customer.id, defaultPm);
  const nextMetadata =
    metadataUpdate === undefined ? undefined : mergeMetadata(customer.metadata, metadataUpdate);

  // Everything is valid: apply, recording what changed for the event's previous_attributes.
  /** @type {Json} */
  const previous = {};
  for (const [name, value] of Object.entries(fields)) {
    if (customer[name] !== value) {
      previous[name] = customer[name];
      customer[name] = value;
    }
  }
  if (nextMetadata && canonicalJson(nextMetadata) !== canonicalJson(customer.metadata)) {
    previous.metadata = metadataDiff(customer.metadata, nextMetadata);
    customer.metadata = nextMetadata;
  }
  const balance = readInteger(params, "balance");
  if (balance !== undefined && balance !== customer.balance) {
    previous.balance = customer.balance;
    customer.balance = balance;
  }
  if (defaultPm !== undefined && customer.invoice_settings.default_payment_method !== defaultPm) {
    previous.invoice_settings = {
      default_payment_method: customer.invoice_settings.default_payment_method,
    };
    customer.invoice_settings.default_payment_method = defaultPm;
  }
  if (Object.keys(previous).length > 0) ctx.emit("customer.updated", customer, previous);
  return { body: customer };
}

/**
 * previous_attributes for metadata: the old value of every key that changed (null if new).
 * @param {Json} before
 * @param {Json} after
 */
export function metadataDiff(before, after) {
  /** @type {Json} */
  const diff = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (before[key] !== after[key]) diff[key] = before[key] ?? null;
  }
  return diff;
}

// ---------------------------------------------------------------------------------------------
// Payment methods
// ---------------------------------------------------------------------------------------------

export const alreadyAttached = () =>
  invalidRequest("The payment method you provided has already been attached to a customer.", {
    param: "payment_method",
  });

/**
 * Attaches a payment method (or a fresh copy of a template) to a customer. Idempotent for a
 * pm that is already attached to that customer.
 * @param {Ctx} ctx
 * @param {string} pmId
 * @param {string} customerId
 */
export function attach(ctx, pmId, customerId) {
  const { state } = ctx;
  const existing = isTemplate(pmId) ? null : state.paymentMethods.get(pmId);
  if (existing?.customer !== customerId) {
    // Attaching checks the card with the issuer: decline test cards fail here, nothing changes.
    const behavior = getCardBehavior(state, pmId);
    if (declinesAtAttach(behavior)) throw attachDeclined(ctx, behavior);
  }
  if (isTemplate(pmId)) {
    const pm = materializeTemplate(state, pmId, customerId);
    ctx.emit("payment_method.attached", pm);
    return pm;
  }
  const pm = getPaymentMethodOr404(state, pmId, "payment_method");
  if (pm.customer === customerId) return pm;
  if (pm.customer) throw alreadyAttached();
  pm.customer = customerId;
  ctx.emit("payment_method.attached", pm);
  return pm;
}

/** @param {Ctx} ctx */
export function attachPaymentMethod(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, ["customer", "expand"]);
  const pmId = ctx.pathParams.id ?? "";
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  getCustomerOr404(state, customerId, "customer");
  if (!isTemplate(pmId)) {
    const pm = getPaymentMethodOr404(state, pmId, "payment_method");
    if (pm.customer && pm.customer !== customerId) throw alreadyAttached();
  }
  return { body: attach(ctx, pmId, customerId) };
}

/** @param {Ctx} ctx */
export function detachPaymentMethod(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, ["expand"]);
  const pmId = ctx.pathParams.id ?? "";
  const pm = getPaymentMethodOr404(state, pmId, "payment_method");
  const customerId = pm.customer;
  if (!customerId) {
    throw invalidRequest(
      `The payment method ${pmId} is not attached to a customer so detachment is impossible.`,
      { param: "payment_method" },
    );
  }
  // Stripe clears a customer's default when its default payment method is detached.
  const customer = state.customers.get(customerId);
  if (customer && customer.invoice_settings.default_payment_method === pmId) {
    customer.invoice_settings.default_payment_method = null;
    ctx.emit("customer.updated", customer, {
      invoice_settings: { default_payment_method: pmId },
    });
  }
  pm.customer = null;
  ctx.emit("payment_method.detached", pm, { customer: customerId });
  return { body: pm };
}

/** @param {Ctx} ctx */
export function retrievePaymentMethod(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  const pmId = ctx.pathParams.id ?? "";
  if (isTemplate(pmId)) return { body: materializeTemplate(ctx.state, pmId, null) };
  return { body: getPaymentMethodOr404(ctx.state, pmId, "payment_method") };
}

/**
 * @param {State} state
 * @param {string | null} customerId null = payment methods not attached to anyone.
 * @param {Json} params
 * @param {string} url
 */
export function listPaymentMethodsOf(state, customerId, params, url) {
  const type = readString(params, "type");
  const items = [...state.paymentMethods.values()]
    .filter((pm) => pm.customer === customerId && (!type || pm.type === type))
    .reverse();
  return paginate(items, params, url);
}

export const PM_LIST_PARAMS = [
  "allow_redisplay",
  "ending_before",
  "expand",
  "limit",
  "starting_after",
  "type",
];

/** @param {Ctx} ctx */
export function listPaymentMethods(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [...PM_LIST_PARAMS, "customer"]);
  const customerId = readString(params, "customer") ?? null;
  if (customerId) getCustomerOr404(state, customerId, "customer");
  return { body: listPaymentMethodsOf(state, customerId, params, "/v1/payment_methods") };
}

/** @param {Ctx} ctx */
export function listCustomerPaymentMethods(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, PM_LIST_PARAMS);
  const customerId = ctx.pathParams.id ?? "";
  getCustomerOr404(state, customerId, "customer");
  const url = `/v1/customers/${customerId}/payment_methods`;
  return { body: listPaymentMethodsOf(state, customerId, params, url) };
}

// ---------------------------------------------------------------------------------------------
// Payment intents
// ---------------------------------------------------------------------------------------------

export const PI_CREATE_PARAMS = [
  "amount",
  "application_fee_amount",
  "automatic_payment_methods",
  "capture_method",
  "confirm",
  "confirmation_method",
  "confirmation_token",
  "currency",
  "customer",
  "description",
  "error_on_requires_action",
  "expand",
  "mandate",
  "mandate_data",
  "metadata",
  "off_session",
  "on_behalf_of",
  "payment_method",
  "payment_method_configuration",
  "payment_method_data",
  "payment_method_options",
  "payment_method_types",
  "radar_options",
  "receipt_email",
  "return_url",
  "setup_future_usage",
  "shipping",
  "statement_descriptor",
  "statement_descriptor_suffix",
  "transfer_data",
  "transfer_group",
  "use_stripe_sdk",
];
export const PI_EXPANDABLE = ["customer", "payment_method", "latest_charge"];

/**
 * `off_session` is a boolean or, in Stripe, one of "one_off" / "recurring".
 * @param {Json} params
 */
export function readOffSession(params) {
  const value = params.off_session;
  if (value === "one_off" || value === "recurring") return true;
  return readBoolean(params, "off_session") ?? false;
}

/**
 * @param {Json} params
 * @returns {string[]}
 */
export function readPaymentMethodTypes(params) {
  const value = params.payment_method_types;
  if (value === undefined || value === "") return ["card"];
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === "string")) {
    throw invalidRequest("Invalid array", { param: "payment_method_types" });
  }
  return list;
}

/**
 * Validates everything about a PaymentIntent create request before anything is stored.
 * @param {Ctx} ctx
 */
export function readPaymentIntentParams(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, PI_CREATE_PARAMS);
  const amount = /** @type {number} */ (readInteger(params, "amount", true));
  if (amount < 1) {
    throw invalidRequest("This value must be greater than or equal to 1.", {
      code: "parameter_invalid_integer",
      param: "amount",
    });
  }
  if (amount > 99_999_999) {
    throw invalidRequest("Amount must be no more than 99,999,999.", {
      code: "amount_too_large",
      param: "amount",
    });
  }
  const currency = /** @type {string} */ (readString(params, "currency", { required: true }));
  if (!/^[a-z]{3}$/i.test(currency)) {
    throw invalidRequest(`Invalid currency: ${currency.toLowerCase()}.`, { param: "currency" });
  }
  const customerId = readString(params, "customer") ?? null;
  if (customerId) getCustomerOr404(state, customerId, "customer");
  const pmId = readString(params, "payment_method") ?? null;
  if (pmId && !isTemplate(pmId)) assertUsableBy(state, pmId, customerId);
  const confirm = readBoolean(params, "confirm") ?? false;
  const offSession = readOffSession(params);
  if (offSession && !confirm) {
    throw invalidRequest("`off_session` can only be set when `confirm` is set to true.", {
      param: "off_session",
    });
  }
  if (confirm && !pmId) {
    throw invalidRequest(
      "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method.",
      { param: "payment_method" },
    );
  }
  const captureMethod = readString(params, "capture_method") ?? "automatic_async";
  if (!["automatic", "automatic_async", "manual"].includes(captureMethod)) {
    throw invalidRequest(`Invalid capture_method: ${captureMethod}`, { param: "capture_method" });
  }
  const setupFutureUsage = readString(params, "setup_future_usage") ?? null;
  if (setupFutureUsage && !["on_session", "off_session"].includes(setupFutureUsage)) {
    throw invalidRequest(`Invalid setup_future_usage: ${setupFutureUsage}`, {
      param: "setup_future_usage",
    });
  }
  const automatic = params.automatic_payment_methods;
  const automaticEnabled = isPlainObject(automatic)
    ? (readBoolean(automatic, "enabled") ?? false)
    : false;
  return {
    amount,
    currency: currency.toLowerCase(),
    customerId,
    pmId,
    confirm,
    offSession,
    captureMethod,
    setupFutureUsage,
    automaticEnabled,
    description: readString(params, "description") ?? null,
    receiptEmail: readString(params, "receipt_email") ?? null,
    statementDescriptor: readString(params, "statement_descriptor") ?? null,
    statementDescriptorSuffix: readString(params, "statement_descriptor_suffix") ?? null,
    paymentMethodTypes: readPaymentMethodTypes(params),
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
  };
}

/**
 * A saved payment method can only be charged together with the customer it belongs to.
 * @param {State} state
 * @param {string} pmId
 * @param {string | null} customerId
 */
export function assertUsableBy(state, pmId, customerId) {
  const pm = getPaymentMethodOr404(state, pmId, "payment_method");
  if (customerId && pm.customer !== customerId) {
    throw invalidRequest(
      `The provided PaymentMethod ${pmId} does not belong to the Customer ${customerId}. Attach it to this customer before using it, or provide the customer it is attached to.`,
      { param: "payment_method" },
    );
  }
  if (!customerId && pm.customer) {
    throw invalidRequest(
      `The provided PaymentMethod ${pmId} is attached to Customer ${pm.customer}. Please include the Customer in the \`customer\` parameter on the PaymentIntent.`,
      { param: "customer" },
    );
  }
}

/**
 * Creates and stores a PaymentIntent (not confirmed). Billing uses it for invoices too.
 * @param {State} state
 * @param {{ amount: number, currency: string, customerId: string | null, captureMethod: string,
 *   setupFutureUsage: string | null, automaticEnabled: boolean, description: string | null,
 *   receiptEmail: string | null, statementDescriptor: string | null,
 *   statementDescriptorSuffix: string | null, paymentMethodTypes: string[], metadata: Json }} p
 * @param {string | null} pmId
 */
export function storePaymentIntent(state, p, pmId) {
  const id = newId("pi_");
  const pi = {
    id,
    object: "payment_intent",
    amount: p.amount,
    amount_capturable: 0,
    amount_details: { tip: {} },
    amount_received: 0,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: p.automaticEnabled
      ? { allow_redirects: "always", enabled: true }
      : null,
    canceled_at: null,
    cancellation_reason: null,
    capture_method: p.captureMethod,
    client_secret: `${id}_secret_${newId("", 25)}`,
    confirmation_method: "automatic",
    created: now(),
    currency: p.currency,
    customer: p.customerId,
    customer_account: null,
    description: p.description,
    excluded_payment_method_types: null,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    managed_payments: null,
    metadata: p.metadata,
    next_action: null,
    on_behalf_of: null,
    payment_method: pmId,
    payment_method_configuration_details: null,
    payment_method_options: {
      card: {
        installments: null,
        mandate_options: null,
        network: null,
        request_three_d_secure: "automatic",
      },
    },
    payment_method_types: p.paymentMethodTypes,
    processing: null,
    receipt_email: p.receiptEmail,
    review: null,
    setup_future_usage: p.setupFutureUsage,
    shipping: null,
    source: null,
    statement_descriptor: p.statementDescriptor,
    statement_descriptor_suffix: p.statementDescriptorSuffix,
    status: pmId ? "requires_confirmation" : "requires_payment_method",
    transfer_data: null,
    transfer_group: null,
  };
  state.paymentIntents.set(id, pi);
  return pi;
}

/** @param {Ctx} ctx */
export function createPaymentIntent(ctx) {
  const { state } = ctx;
  const p = readPaymentIntentParams(ctx);
  const pm = p.pmId
    ? isTemplate(p.pmId)
      ? materializeTemplate(state, p.pmId, null)
      : state.paymentMethods.get(p.pmId)
    : null;
  const pi = storePaymentIntent(state, p, pm ? pm.id : null);
  if (!p.confirm || !pm) return { body: pi };
  return confirmPaymentIntent(ctx, pi, pm, p.offSession);
}

/**
 * Runs the card's behaviour. Failures leave the PaymentIntent stored (as in Stripe) with
 * status `requires_payment_method` and answer 402 with the intent inside the error.
 * @param {Ctx} ctx
 * @param {Json} pi
 * @param {Json} pm
 * @param {boolean} offSession
 * @returns {HandlerResult}
 */
export function confirmPaymentIntent(ctx, pi, pm, offSession) {
  const behavior = ctx.state.cardBehaviors.get(pm.id) ?? { kind: "succeed" };
  const setUp = behavior.kind === "authentication_required" && behavior.setUp && offSession;
  if (behavior.kind === "succeed" || setUp) return succeedPayment(ctx, pi, pm);
  if (behavior.kind === "decline") {
    const charge = createCharge(ctx.state, pi, pm, behavior);
    return failPayment(ctx, pi, pm, { ...behavior, charge: charge.id });
  }
  if (offSession) {
    // No charge is attempted: the issuer demands 3DS, which cannot happen off-session.
    return failPayment(ctx, pi, pm, {
      code: "authentication_required",
      decline_code: "authentication_required",
      message: "Your card was declined. This transaction requires authentication.",
    });
  }
  pi.status = "requires_action";
  pi.next_action = {
    type: "use_stripe_sdk",
    use_stripe_sdk: {
      type: "three_d_secure_redirect",
      source: newId("src_"),
      stripe_js: `https://hooks.stripe.com/redirect/authenticate/${pi.id}`, // not served locally
    },
  };
  return { body: pi };
}

/**
 * @param {Ctx} ctx
 * @param {Json} pi
 * @param {Json} pm
 * @returns {HandlerResult}
 */
export function succeedPayment(ctx, pi, pm) {
  const charge = createCharge(ctx.state, pi, pm, null);
  pi.latest_charge = charge.id;
  if (pi.capture_method === "manual") {
    pi.status = "requires_capture";
    pi.amount_capturable = pi.amount;
  } else {
    pi.status = "succeeded";
    pi.amount_received = pi.amount;
  }
  // setup_future_usage saves the card on the customer once the payment works.
  if (pi.setup_future_usage && pi.customer && !pm.customer) {
    pm.customer = pi.customer;
    ctx.emit("payment_method.attached", pm);
  }
  if (pi.status === "succeeded") ctx.emit("payment_intent.succeeded", pi);
  return { body: pi };
}

/**
 * @param {Ctx} ctx
 * @param {Json} pi
 * @param {Json} pm
 * @param {{ code: string, decline_code: string, message: string, param?: string, charge?: string }} failure
 * @returns {HandlerResult}
 */
export function failPayment(ctx, pi, pm, failure) {
  /** @type {Json} */
  const error = {
    ...(failure.charge ? { charge: failure.charge } : {}),
    code: failure.code,
    decline_code: failure.decline_code,
    doc_url: `https://stripe.com/docs/error-codes/${failure.code.replaceAll("_", "-")}`,
    message: failure.message,
    ...(failure.param ? { param: failure.param } : {}),
    payment_method: clone(pm),
    type: "card_error",
  };
  pi.status = "requires_payment_method";
  pi.last_payment_error = error;
  pi.latest_charge = failure.charge ?? null;
  ctx.emit("payment_intent.payment_failed", pi);
  return {
    status: 402,
    body: {
      error: {
        ...error,
        payment_intent: clone(pi),
        request_log_url: `https://dashboard.stripe.com/test/logs/${ctx.requestId}`,
      },
    },
  };
}

/**
 * Stores the Charge a confirmation attempt produces (succeeded, or failed for declines).
 * @param {State} state
 * @param {Json} pi
 * @param {Json} pm
 * @param {{ code: string, decline_code: string, message: string } | null} failure
 */
export function createCharge(state, pi, pm, failure) {
  const id = newId("ch_");
  const captured = !failure && pi.capture_method !== "manual";
  const charge = {
    id,
    object: "charge",
    amount: pi.amount,
    amount_captured: captured ? pi.amount : 0,
    amount_refunded: 0,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: captured ? newId("txn_") : null,
    billing_details: clone(pm.billing_details),
    calculated_statement_descriptor: "LOCAL STRIPE",
    captured,
    created: now(),
    currency: pi.currency,
    customer: pi.customer,
    description: pi.description,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: failure ? failure.code : null,
    failure_message: failure ? failure.message : null,
    fraud_details: {},
    livemode: false,
    metadata: clone(pi.metadata),
    on_behalf_of: null,
    outcome: failure
      ? {
          network_status: "declined_by_network",
          reason: failure.decline_code,
          risk_level: "normal",
          seller_message: "The bank did not return any further details with this decline.",
          type: "issuer_declined",
        }
      : {
          network_status: "approved_by_network",
          reason: null,
          risk_level: "normal",
          seller_message: "Payment complete.",
          type: "authorized",
        },
    paid: !failure,
    payment_intent: pi.id,
    payment_method: pm.id,
    payment_method_details: {
      card: {
        brand: pm.card.brand,
        checks: clone(pm.card.checks),
        country: pm.card.country,
        exp_month: pm.card.exp_month,
        exp_year: pm.card.exp_year,
        fingerprint: pm.card.fingerprint,
        funding: pm.card.funding,
        last4: pm.card.last4,
        network: pm.card.brand,
      },
      type: "card",
    },
    receipt_email: pi.receipt_email,
    receipt_number: null,
    receipt_url: null,
    refunded: false,
    refunds: {
      object: "list",
      data: [],
      has_more: false,
      total_count: 0,
      url: `/v1/charges/${id}/refunds`,
    },
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: failure ? "failed" : "succeeded",
    transfer_data: null,
    transfer_group: null,
  };
  state.charges.set(id, charge);
  return charge;
}

/** @param {Ctx} ctx */
export function retrievePaymentIntent(ctx) {
  rejectUnknown(ctx.params, ["client_secret", "expand"]);
  const id = ctx.pathParams.id ?? "";
  const pi = ctx.state.paymentIntents.get(id);
  if (!pi) throw noSuch("payment_intent", id, "intent");
  return { body: pi };
}

/**
 * `created` filter: an integer, or `created[gt|gte|lt|lte]`.
 * @param {Json} params
 * @returns {(created: number) => boolean}
 */
export function readCreatedFilter(params) {
  const value = params.created;
  if (value === undefined) return () => true;
  if (!isPlainObject(value)) {
    const exact = readInteger(params, "created");
    return (created) => exact === undefined || created === exact;
  }
  rejectUnknown(value, ["gt", "gte", "lt", "lte"], "created");
  const gt = readInteger(value, "gt");
  const gte = readInteger(value, "gte");
  const lt = readInteger(value, "lt");
  const lte = readInteger(value, "lte");
  return (created) =>
    (gt === undefined || created > gt) &&
    (gte === undefined || created >= gte) &&
    (lt === undefined || created < lt) &&
    (lte === undefined || created <= lte);
}

/** @param {Ctx} ctx */
export function listPaymentIntents(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "created",
    "customer",
    "ending_before",
    "expand",
    "limit",
    "starting_after",
  ]);
  const customerId = readString(params, "customer") ?? null;
  const createdOk = readCreatedFilter(params);
  const items = [...state.paymentIntents.values()]
    .filter((pi) => (!customerId || pi.customer === customerId) && createdOk(pi.created))
    .reverse();
  return { body: paginate(items, params, "/v1/payment_intents") };
}

/** @type {Record<string, (pi: Json) => unknown>} */
const SEARCH_FIELDS = {
  amount: (pi) => pi.amount,
  currency: (pi) => pi.currency,
  customer: (pi) => pi.customer,
  status: (pi) => pi.status,
};

/**
 * Parses a PaymentIntent search query (see `compileSearch`).
 * @param {string} query
 * @returns {(pi: Json) => boolean}
 */
export const parseSearchQuery = (query) => compileSearch(query, "payment_intents", SEARCH_FIELDS);

/** @param {Ctx} ctx */
export function searchPaymentIntents(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, ["expand", "limit", "page", "query"]);
  const query = /** @type {string} */ (readString(params, "query", { required: true }));
  const found = newestFirst(state.paymentIntents, parseSearchQuery(query));
  return { body: searchResult(ctx, found, "/v1/payment_intents/search") };
}
