// @ts-check
/**
 * A local, in-memory, Stripe-compatible HTTP server for development and tests.
 *
 * It speaks Stripe's v1 wire format (form-encoded requests with bracket nesting, JSON
 * responses, Stripe error objects, `Request-Id`, idempotency keys) for the small subset of
 * the API Tollgate uses, so the real `stripe` SDK can be pointed at it with
 * `{ host, port, protocol: "http" }`. Test-only control endpoints live under `/_test/`.
 * Only Node built-ins are used; all state lives in memory per server instance.
 */
import { createHash, createHmac, randomInt } from "node:crypto";
import http from "node:http";

/** The API version stamped on events; webhook consumers compare it, the server ignores it. */
export const API_VERSION = "2025-01-27.acacia";

const MAX_BODY_BYTES = 1024 * 1024;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const WEBHOOK_TIMEOUT_MS = 10_000;
/** Stripe forgets idempotency keys after 24 hours. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** The request log keeps the newest entries only, so a long benchmark cannot exhaust memory. */
const MAX_LOGGED_REQUESTS = 20_000;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** @typedef {Record<string, any>} Json A decoded parameter tree or an API object. */

/**
 * @typedef {object} ServerOptions
 * @property {number} [port] 0 (the default) picks a free port.
 * @property {string} [host] Defaults to 127.0.0.1.
 * @property {{ url: string, secret: string }} [webhook] Where to send events the server emits.
 * @property {boolean} [quiet] Suppress log lines (webhook delivery failures, internal errors).
 */

/**
 * @typedef {{ kind: "succeed" }
 *   | { kind: "decline", code: string, decline_code: string, message: string, param?: string }
 *   | { kind: "authentication_required" }} CardBehavior
 */

/**
 * @typedef {object} FaultRule
 * @property {string} method "*" matches any method.
 * @property {string} path Exact path, or a prefix when it ends with "*".
 * @property {"500" | "drop_before" | "drop_after" | "delay"} kind
 * @property {number} times Remaining matches; the rule is removed when it reaches 0.
 * @property {number} ms Only used by "delay".
 * @property {Record<string, string> | null} match Only requests whose decoded parameters
 *   hold these values (keys may use brackets: `metadata[recharge_id]`). Lets parallel tests
 *   fault only their own customer's requests.
 */

/**
 * @typedef {object} RequestLogEntry
 * @property {string} method
 * @property {string} path
 * @property {string | null} idempotency_key
 * @property {Json} params Decoded parameters; {} when the body could not be decoded.
 * @property {number | null} status null when the connection was dropped.
 * @property {boolean} replayed
 * @property {string | null} fault
 * @property {string} request_id
 * @property {string} at ISO timestamp of arrival.
 */

/**
 * @typedef {object} IdempotencyRecord
 * @property {"executing" | "done"} phase
 * @property {string} method
 * @property {string} path
 * @property {string} fingerprint Canonical JSON of the parameters.
 * @property {number} status
 * @property {string} body
 * @property {string} requestId Id of the request that did the work (sent as Original-Request).
 * @property {number} savedAt Date.now() when the key was first used.
 */

/**
 * @typedef {object} WebhookDelivery
 * @property {string} event_id
 * @property {string} type
 * @property {string} url
 * @property {number | null} status
 * @property {string | null} error
 * @property {string} at
 */

/**
 * @typedef {object} State
 * @property {Map<string, Json>} customers
 * @property {Map<string, Json>} paymentMethods
 * @property {Map<string, CardBehavior>} cardBehaviors How each payment method's charges end.
 * @property {Map<string, Json>} paymentIntents
 * @property {Map<string, Json>} charges
 * @property {Map<string, Json>} portalSessions
 * @property {Map<string, IdempotencyRecord>} idempotency Keyed by API key + idempotency key.
 * @property {RequestLogEntry[]} requests
 * @property {FaultRule[]} faults
 * @property {WebhookDelivery[]} webhookDeliveries
 */

/**
 * @typedef {object} App Everything a request handler may touch for one server instance.
 * @property {State} state
 * @property {string} baseUrl
 * @property {{ url: string, secret: string } | null} webhook
 * @property {boolean} quiet
 * @property {boolean} closed
 * @property {AbortController} abort Cancels in-flight webhook deliveries on close.
 * @property {Promise<void>} deliveryChain Keeps emitted events in order.
 * @property {Set<ReturnType<typeof setTimeout>>} timers Pending "delay" faults.
 */

/**
 * @typedef {object} Ctx What an API handler receives.
 * @property {App} app
 * @property {State} state
 * @property {Json} params
 * @property {Record<string, string>} pathParams
 * @property {string} requestId
 * @property {string | null} idempotencyKey
 * @property {(type: string, object: Json, previous?: Json) => void} emit
 */

/** @typedef {{ status?: number, body: Json }} HandlerResult */

/**
 * @typedef {object} Route
 * @property {string} method
 * @property {RegExp} pattern
 * @property {string[]} names Path parameter names, in order.
 * @property {(ctx: Ctx) => HandlerResult} handler
 * @property {string[]} expandable Paths accepted in `expand[]`.
 */

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

/**
 * Stripe-style id: prefix + random base62.
 * @param {string} prefix
 * @param {number} [length]
 */
export function newId(prefix, length = 24) {
  let out = prefix;
  for (let i = 0; i < length; i++) out += BASE62[randomInt(62)];
  return out;
}

const now = () => Math.floor(Date.now() / 1000);

/** @param {unknown} value */
const isPlainObject = (value) =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Deep copy of a JSON-shaped value, so responses and logs never alias live state.
 * @template T
 * @param {T} value
 * @returns {T}
 */
const clone = (value) => structuredClone(value);

/**
 * JSON with sorted keys: two parameter sets are "the same" for idempotency when this matches.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isPlainObject(value)) {
    const obj = /** @type {Json} */ (value);
    const keys = Object.keys(obj).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** @param {string} text */
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** An error that becomes a Stripe error response: `{ "error": {...} }` with an HTTP status. */
export class StripeHttpError extends Error {
  /**
   * @param {number} status
   * @param {Json} error The object under `error` in the response.
   */
  constructor(status, error) {
    super(String(error.message));
    this.status = status;
    this.error = error;
  }
}

/**
 * @param {string} message
 * @param {{ param?: string, code?: string }} [extra]
 */
function invalidRequest(message, extra = {}) {
  /** @type {Json} */
  const error = { type: "invalid_request_error", message };
  if (extra.code) {
    error.code = extra.code;
    error.doc_url = `https://stripe.com/docs/error-codes/${extra.code.replaceAll("_", "-")}`;
  }
  if (extra.param) error.param = extra.param;
  return new StripeHttpError(400, error);
}

/**
 * Stripe's 404 for an id that does not exist.
 * @param {string} label e.g. "customer", "PaymentMethod", "payment_intent"
 * @param {string} id
 * @param {string} param
 */
function noSuch(label, id, param) {
  return new StripeHttpError(404, {
    type: "invalid_request_error",
    code: "resource_missing",
    doc_url: "https://stripe.com/docs/error-codes/resource-missing",
    param,
    message: `No such ${label}: '${id}'`,
  });
}

/** @param {string} param */
const missingParam = (param) =>
  invalidRequest(`Missing required param: ${param}.`, { code: "parameter_missing", param });

// ---------------------------------------------------------------------------------------------
// Form decoding (Stripe's v1 wire format)
// ---------------------------------------------------------------------------------------------

/**
 * Percent-decodes one key or value; `+` means space in form encoding.
 * @param {string} text
 */
function decodeComponent(text) {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    throw invalidRequest(`Invalid request: malformed percent-encoding in '${text}'.`);
  }
}

/**
 * Splits `a[b][]` into ["a", "b", ""]. A key whose brackets do not close cleanly is kept
 * whole, which is how lenient form parsers treat it.
 * @param {string} key
 * @returns {string[]}
 */
function splitKey(key) {
  const open = key.indexOf("[");
  if (open <= 0) return [key];
  const head = key.slice(0, open);
  const rest = key.slice(open);
  const segments = [...rest.matchAll(/\[([^\]]*)\]/g)];
  if (segments.map((m) => m[0]).join("") !== rest) return [key];
  return [head, ...segments.map((m) => m[1] ?? "")];
}

/**
 * Sets `value` at `segments` inside `root`, creating containers on the way. An empty
 * segment (`a[]`) appends. Containers are plain objects here; `arrayify` turns the
 * integer-keyed ones into arrays afterwards, so `a[]` and `a[0]` end up identical.
 * @param {Json} root
 * @param {string[]} segments
 * @param {string} value
 */
function assignPath(root, segments, value) {
  let node = root;
  for (let i = 0; i < segments.length; i++) {
    let segment = segments[i] ?? "";
    if (segment === "") segment = String(Object.keys(node).length);
    if (i === segments.length - 1) {
      node[segment] = value;
      return;
    }
    if (!isPlainObject(node[segment])) node[segment] = {};
    node = node[segment];
  }
}

/**
 * Converts objects whose keys are all integers into arrays (ordered by index). Metadata is
 * exempt: its keys are free-form, and `metadata[0]=x` must stay a key named "0".
 * @param {unknown} value
 * @param {string} [key]
 * @returns {any}
 */
function arrayify(value, key) {
  if (!isPlainObject(value)) return value;
  const obj = /** @type {Json} */ (value);
  const keys = Object.keys(obj);
  for (const k of keys) obj[k] = arrayify(obj[k], k);
  const isList = key !== "metadata" && keys.length > 0 && keys.every((k) => /^\d+$/.test(k));
  if (!isList) return obj;
  return keys.sort((a, b) => Number(a) - Number(b)).map((k) => obj[k]);
}

/**
 * Parses `application/x-www-form-urlencoded` text with Stripe's bracket nesting:
 * `metadata[k]=v`, `expand[]=a`, `expand[0]=a`, `items[0][price]=p`.
 * @param {string} text
 * @returns {Json}
 */
export function parseForm(text) {
  /** @type {Json} */
  const root = {};
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = decodeComponent(eq === -1 ? "" : pair.slice(eq + 1));
    if (key !== "") assignPath(root, splitKey(key), value);
  }
  return arrayify(root);
}

// ---------------------------------------------------------------------------------------------
// Parameter readers: Stripe sends every scalar as a string, "" meaning "unset".
// ---------------------------------------------------------------------------------------------

/**
 * Rejects parameters the endpoint does not have, as Stripe does (`parameter_unknown`).
 * The allow-lists include real Stripe parameters this server accepts but ignores.
 * @param {Json} params
 * @param {string[]} allowed
 * @param {string} [prefix]
 */
function rejectUnknown(params, allowed, prefix = "") {
  for (const key of Object.keys(params)) {
    if (!allowed.includes(key)) {
      const name = prefix ? `${prefix}[${key}]` : key;
      throw invalidRequest(`Received unknown parameter: ${name}`, {
        code: "parameter_unknown",
        param: name,
      });
    }
  }
}

/** @param {unknown} value */
const describe = (value) => (typeof value === "string" ? value : JSON.stringify(value));

/**
 * @param {Json} params
 * @param {string} name
 * @param {{ required?: boolean, label?: string }} [opts]
 * @returns {string | null | undefined} undefined when absent, null when sent as "" (unset).
 */
function readString(params, name, opts = {}) {
  const label = opts.label ?? name;
  const value = params[name];
  if (value === undefined) {
    if (opts.required) throw missingParam(label);
    return undefined;
  }
  if (typeof value !== "string") {
    throw invalidRequest(`Invalid string: ${describe(value)}`, { param: label });
  }
  if (value === "") {
    if (opts.required) {
      throw invalidRequest(
        `You passed an empty string for '${label}'. We assume empty values are an attempt to unset a parameter; however '${label}' cannot be unset. You should remove '${label}' from your request or supply a non-empty value.`,
        { code: "parameter_invalid_empty", param: label },
      );
    }
    return null;
  }
  return value;
}

/**
 * @param {Json} params
 * @param {string} name
 * @returns {number | undefined}
 */
function readInteger(params, name, required = false) {
  const value = readString(params, name, { required });
  if (value === undefined) return undefined;
  if (value === null) {
    if (required) throw missingParam(name);
    return undefined;
  }
  if (!/^-?\d+$/.test(value)) {
    throw invalidRequest(`Invalid integer: ${value}`, {
      code: "parameter_invalid_integer",
      param: name,
    });
  }
  return Number(value);
}

/**
 * @param {Json} params
 * @param {string} name
 * @returns {boolean | undefined}
 */
function readBoolean(params, name) {
  const value = readString(params, name);
  if (value === undefined || value === null) return undefined;
  if (value === "true") return true;
  if (value === "false") return false;
  throw invalidRequest(`Invalid boolean: ${value}`, { param: name });
}

/**
 * Metadata updates merge key by key; a key set to "" is deleted and `metadata=""` clears all.
 * @param {Json} params
 * @returns {Record<string, string | null> | null | undefined} null = clear everything.
 */
function readMetadata(params) {
  const value = params.metadata;
  if (value === undefined) return undefined;
  if (value === "") return null;
  if (!isPlainObject(value)) {
    throw invalidRequest("Invalid object", { param: "metadata" });
  }
  /** @type {Record<string, string | null>} */
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw invalidRequest(`Invalid string: ${describe(v)}`, { param: `metadata[${key}]` });
    }
    if (key.length > 40) {
      throw invalidRequest("Metadata keys can have at most 40 characters.", {
        param: `metadata[${key}]`,
      });
    }
    if (v.length > 500) {
      throw invalidRequest("Metadata values can have at most 500 characters.", {
        param: `metadata[${key}]`,
      });
    }
    out[key] = v === "" ? null : v;
  }
  return out;
}

/**
 * Applies a metadata update to an existing metadata object.
 * @param {Json} current
 * @param {Record<string, string | null> | null} update
 * @returns {Json}
 */
function mergeMetadata(current, update) {
  if (update === null) return {};
  const next = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  if (Object.keys(next).length > 50) {
    throw invalidRequest("You can have at most 50 metadata keys.", { param: "metadata" });
  }
  return next;
}

/**
 * `expand[]` paths, validated before any work is done (an invalid expand must not leave a
 * half-executed request behind).
 * @param {Json} params
 * @param {string[]} expandable
 * @returns {string[]}
 */
function readExpand(params, expandable) {
  const value = params.expand;
  if (value === undefined || value === "") return [];
  const list = Array.isArray(value) ? value : [value];
  for (const path of list) {
    if (typeof path !== "string") {
      throw invalidRequest(`Invalid string: ${describe(path)}`, { param: "expand" });
    }
    if (!expandable.includes(path)) {
      throw invalidRequest(`This property cannot be expanded (${path}).`, { param: "expand" });
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Test cards
// ---------------------------------------------------------------------------------------------

/** @type {Record<string, { brand: string, last4: string, behavior: CardBehavior }>} */
const CARD_TEMPLATES = {
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
  pm_card_authenticationRequired: {
    brand: "visa",
    last4: "3184",
    behavior: { kind: "authentication_required" },
  },
  pm_card_authenticationRequiredOnSetup: {
    brand: "visa",
    last4: "3155",
    behavior: { kind: "authentication_required" },
  },
};

/** @param {string} id */
const isTemplate = (id) => Object.hasOwn(CARD_TEMPLATES, id);

/**
 * Creates and stores a concrete payment method from a test template id. Real Stripe mints a
 * fresh `pm_…` every time a template id is used, and so do we.
 * @param {State} state
 * @param {string} templateId
 * @param {string | null} customer
 */
function materializeTemplate(state, templateId, customer) {
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
    livemode: false,
    metadata: {},
    type: "card",
  };
  state.paymentMethods.set(id, pm);
  state.cardBehaviors.set(id, template.behavior);
  return pm;
}

// ---------------------------------------------------------------------------------------------
// Lookups and lists
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {string} id
 * @param {string} param
 */
function getCustomerOr404(state, id, param) {
  const customer = state.customers.get(id);
  if (!customer) throw noSuch("customer", id, param);
  return customer;
}

/**
 * @param {State} state
 * @param {string} id
 * @param {string} param
 */
function getPaymentMethodOr404(state, id, param) {
  const pm = state.paymentMethods.get(id);
  if (!pm) throw noSuch("PaymentMethod", id, param);
  return pm;
}

/**
 * Resolves any id this server knows, for `expand[]`.
 * @param {State} state
 * @param {string} id
 * @returns {Json | undefined}
 */
function findById(state, id) {
  return (
    state.customers.get(id) ??
    state.paymentMethods.get(id) ??
    state.paymentIntents.get(id) ??
    state.charges.get(id)
  );
}

/**
 * Replaces ids with the objects they name, along dotted paths such as
 * `invoice_settings.default_payment_method` or `data.customer` (lists).
 * @param {State} state
 * @param {Json} target A response body (already a copy).
 * @param {string[]} paths
 */
function applyExpand(state, target, paths) {
  for (const path of paths) expandPath(state, target, path.split("."));
}

/**
 * @param {State} state
 * @param {any} node
 * @param {string[]} segments
 */
function expandPath(state, node, segments) {
  if (Array.isArray(node)) {
    for (const item of node) expandPath(state, item, segments);
    return;
  }
  if (!isPlainObject(node)) return;
  const [head, ...rest] = segments;
  if (head === undefined) return;
  if (rest.length > 0) {
    expandPath(state, node[head], rest);
    return;
  }
  const value = node[head];
  if (typeof value === "string") {
    const found = findById(state, value);
    if (found) node[head] = clone(found);
  }
}

/**
 * Stripe list pagination over items already sorted newest first.
 * @param {Json[]} items
 * @param {Json} params
 * @param {string} url
 */
function paginate(items, params, url) {
  const limit = readInteger(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      "This value must be greater than or equal to 1 and less than or equal to 100.",
      {
        code: "parameter_invalid_integer",
        param: "limit",
      },
    );
  }
  const startingAfter = readString(params, "starting_after");
  const endingBefore = readString(params, "ending_before");
  let start = 0;
  let end = items.length;
  if (startingAfter) {
    const index = items.findIndex((item) => item.id === startingAfter);
    if (index === -1) throw noSuch("object", startingAfter, "starting_after");
    start = index + 1;
  } else if (endingBefore) {
    const index = items.findIndex((item) => item.id === endingBefore);
    if (index === -1) throw noSuch("object", endingBefore, "ending_before");
    end = index;
    start = Math.max(0, end - limit);
  }
  const page = items.slice(start, Math.min(end, start + limit));
  const hasMore = endingBefore && !startingAfter ? start > 0 : start + limit < end;
  return { object: "list", data: page.map(clone), has_more: hasMore, url };
}

// ---------------------------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------------------------

const CUSTOMER_COMMON_PARAMS = [
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
const CUSTOMER_CREATE_PARAMS = [
  ...CUSTOMER_COMMON_PARAMS,
  "payment_method",
  "source",
  "tax_id_data",
  "test_clock",
];
const CUSTOMER_UPDATE_PARAMS = [...CUSTOMER_COMMON_PARAMS, "default_source", "source"];
const INVOICE_SETTINGS_PARAMS = [
  "custom_fields",
  "default_payment_method",
  "footer",
  "rendering_options",
];
const CUSTOMER_SIMPLE_FIELDS = ["email", "name", "description", "phone"];

/**
 * Reads `invoice_settings[default_payment_method]`.
 * @param {Json} params
 * @returns {string | null | undefined}
 */
function readDefaultPaymentMethod(params) {
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
function assertAttachedTo(state, customerId, pmId) {
  const pm = state.paymentMethods.get(pmId);
  if (!pm || pm.customer !== customerId) {
    throw invalidRequest(
      `The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`,
      { param: "invoice_settings[default_payment_method]" },
    );
  }
}

/** @param {Ctx} ctx */
function createCustomer(ctx) {
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
    balance: 0,
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
function retrieveCustomer(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getCustomerOr404(ctx.state, ctx.pathParams.id ?? "", "id") };
}

/** @param {Ctx} ctx */
function updateCustomer(ctx) {
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
function metadataDiff(before, after) {
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

const alreadyAttached = () =>
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
function attach(ctx, pmId, customerId) {
  const { state } = ctx;
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
function attachPaymentMethod(ctx) {
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
function detachPaymentMethod(ctx) {
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
function retrievePaymentMethod(ctx) {
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
function listPaymentMethodsOf(state, customerId, params, url) {
  const type = readString(params, "type");
  const items = [...state.paymentMethods.values()]
    .filter((pm) => pm.customer === customerId && (!type || pm.type === type))
    .reverse();
  return paginate(items, params, url);
}

const PM_LIST_PARAMS = [
  "allow_redisplay",
  "ending_before",
  "expand",
  "limit",
  "starting_after",
  "type",
];

/** @param {Ctx} ctx */
function listPaymentMethods(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [...PM_LIST_PARAMS, "customer"]);
  const customerId = readString(params, "customer") ?? null;
  if (customerId) getCustomerOr404(state, customerId, "customer");
  return { body: listPaymentMethodsOf(state, customerId, params, "/v1/payment_methods") };
}

/** @param {Ctx} ctx */
function listCustomerPaymentMethods(ctx) {
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

const PI_CREATE_PARAMS = [
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
const PI_EXPANDABLE = ["customer", "payment_method", "latest_charge"];

/**
 * `off_session` is a boolean or, in Stripe, one of "one_off" / "recurring".
 * @param {Json} params
 */
function readOffSession(params) {
  const value = params.off_session;
  if (value === "one_off" || value === "recurring") return true;
  return readBoolean(params, "off_session") ?? false;
}

/**
 * @param {Json} params
 * @returns {string[]}
 */
function readPaymentMethodTypes(params) {
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
function readPaymentIntentParams(ctx) {
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
function assertUsableBy(state, pmId, customerId) {
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

/** @param {Ctx} ctx */
function createPaymentIntent(ctx) {
  const { state } = ctx;
  const p = readPaymentIntentParams(ctx);
  const pm = p.pmId
    ? isTemplate(p.pmId)
      ? materializeTemplate(state, p.pmId, null)
      : state.paymentMethods.get(p.pmId)
    : null;
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
    description: p.description,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    metadata: p.metadata,
    next_action: null,
    on_behalf_of: null,
    payment_method: pm ? pm.id : null,
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
    status: pm ? "requires_confirmation" : "requires_payment_method",
    transfer_data: null,
    transfer_group: null,
  };
  state.paymentIntents.set(id, pi);
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
function confirmPaymentIntent(ctx, pi, pm, offSession) {
  const behavior = ctx.state.cardBehaviors.get(pm.id) ?? { kind: "succeed" };
  if (behavior.kind === "succeed") return succeedPayment(ctx, pi, pm);
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
function succeedPayment(ctx, pi, pm) {
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
function failPayment(ctx, pi, pm, failure) {
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
function createCharge(state, pi, pm, failure) {
  const id = newId("ch_");
  const captured = !failure && pi.capture_method !== "manual";
  const charge = {
    id,
    object: "charge",
    amount: pi.amount,
    amount_captured: captured ? pi.amount : 0,
    amount_refunded: 0,
    balance_transaction: captured ? newId("txn_") : null,
    billing_details: clone(pm.billing_details),
    captured,
    created: now(),
    currency: pi.currency,
    customer: pi.customer,
    description: pi.description,
    disputed: false,
    failure_code: failure ? failure.code : null,
    failure_message: failure ? failure.message : null,
    livemode: false,
    metadata: clone(pi.metadata),
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
    receipt_url: null,
    refunded: false,
    status: failure ? "failed" : "succeeded",
  };
  state.charges.set(id, charge);
  return charge;
}

/** @param {Ctx} ctx */
function retrievePaymentIntent(ctx) {
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
function readCreatedFilter(params) {
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
function listPaymentIntents(ctx) {
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

const SEARCH_FIELDS = ["customer", "status", "currency", "amount"];

/**
 * Parses the subset of Stripe's search language the app needs: clauses joined by ` AND `,
 * each `metadata['key']:'value'` or `field:'value'` (single or double quotes).
 * @param {string} query
 * @returns {(pi: Json) => boolean}
 */
export function parseSearchQuery(query) {
  const clauses = query.trim().split(/\s+AND\s+/);
  const tests = clauses.map((clause) => {
    const meta = clause.match(/^metadata\[(['"])(.+?)\1\]:(['"])(.*)\3$/);
    if (meta) {
      const key = meta[2] ?? "";
      const value = meta[4] ?? "";
      return (/** @type {Json} */ pi) => pi.metadata[key] === value;
    }
    const field = clause.match(/^([a-z_]+):(?:(['"])(.*)\2|(-?\d+))$/);
    if (!field) {
      throw invalidRequest(
        `We were unable to parse your search query. Try using the format \`metadata["key"]:"value"\` to query for metadata or \`key:"value"\` to query for other fields. (Query: ${query})`,
        { param: "query" },
      );
    }
    const name = field[1] ?? "";
    const value = field[3] ?? field[4] ?? "";
    if (!SEARCH_FIELDS.includes(name)) {
      throw invalidRequest(
        `Field \`${name}\` is an unsupported search field for resource \`payment_intents\`. See http://stripe.com/docs/search#query-fields-for-payment-intents for a list of supported fields.`,
        { param: "query" },
      );
    }
    return (/** @type {Json} */ pi) => String(pi[name]) === value;
  });
  return (pi) => tests.every((test) => test(pi));
}

/** @param {Ctx} ctx */
function searchPaymentIntents(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, ["expand", "limit", "page", "query"]);
  const query = /** @type {string} */ (readString(params, "query", { required: true }));
  const matches = parseSearchQuery(query);
  const limit = readInteger(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      "This value must be greater than or equal to 1 and less than or equal to 100.",
      {
        code: "parameter_invalid_integer",
        param: "limit",
      },
    );
  }
  const found = [...state.paymentIntents.values()].filter(matches).reverse();
  return {
    body: {
      object: "search_result",
      data: found.slice(0, limit).map(clone),
      has_more: found.length > limit,
      next_page: null,
      url: "/v1/payment_intents/search",
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Billing portal
// ---------------------------------------------------------------------------------------------

/** @param {Ctx} ctx */
function createPortalSession(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "configuration",
    "customer",
    "expand",
    "flow_data",
    "locale",
    "on_behalf_of",
    "return_url",
  ]);
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  getCustomerOr404(state, customerId, "customer");
  const returnUrl = readString(params, "return_url") ?? null;
  const id = newId("bps_");
  const session = {
    id,
    object: "billing_portal.session",
    configuration: readString(params, "configuration") ?? "bpc_local",
    created: now(),
    customer: customerId,
    flow: null,
    livemode: false,
    locale: readString(params, "locale") ?? null,
    on_behalf_of: null,
    return_url: returnUrl,
    url: `${ctx.app.baseUrl}/p/session/${id}`,
  };
  state.portalSessions.set(id, session);
  return { body: session };
}

/**
 * The page a portal session URL points at. Not Stripe's portal: just enough for a browser
 * test to land somewhere and come back.
 * @param {App} app
 * @param {string} id
 * @param {http.ServerResponse} res
 */
function servePortalPage(app, id, res) {
  const session = app.state.portalSessions.get(id);
  if (!session) {
    sendHtml(res, 404, "<!doctype html><title>Not found</title><h1>Unknown portal session</h1>");
    return;
  }
  const customer = app.state.customers.get(session.customer);
  const cards = [...app.state.paymentMethods.values()]
    .filter((pm) => pm.customer === session.customer)
    .map((pm) => `<li>${escapeHtml(`${pm.card.brand} •••• ${pm.card.last4} (${pm.id})`)}</li>`)
    .join("");
  const back = session.return_url
    ? `<p><a id="return" href="${escapeHtml(session.return_url)}">Return to ${escapeHtml(session.return_url)}</a></p>`
    : "";
  sendHtml(
    res,
    200,
    `<!doctype html><html><head><meta charset="utf-8"><title>Customer portal (local Stripe server)</title></head>` +
      `<body><h1>Customer portal (local Stripe server)</h1>` +
      `<p>Customer: ${escapeHtml(customer?.email ?? session.customer)}</p>` +
      `<ul>${cards}</ul>${back}</body></html>`,
  );
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/**
 * @param {string} method
 * @param {string} template e.g. "/v1/customers/:id"
 * @param {(ctx: Ctx) => HandlerResult} handler
 * @param {string[]} [expandable]
 * @returns {Route}
 */
function route(method, template, handler, expandable = []) {
  /** @type {string[]} */
  const names = [];
  const source = template.replace(/:([a-z]+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  return { method, pattern: new RegExp(`^${source}$`), names, handler, expandable };
}

/** @param {string[]} paths */
const inList = (paths) => paths.map((p) => `data.${p}`);

const ROUTES = [
  route("POST", "/v1/customers", createCustomer, ["invoice_settings.default_payment_method"]),
  route("GET", "/v1/customers/:id", retrieveCustomer, ["invoice_settings.default_payment_method"]),
  route("POST", "/v1/customers/:id", updateCustomer, ["invoice_settings.default_payment_method"]),
  route(
    "GET",
    "/v1/customers/:id/payment_methods",
    listCustomerPaymentMethods,
    inList(["customer"]),
  ),
  route("GET", "/v1/payment_methods", listPaymentMethods, inList(["customer"])),
  route("GET", "/v1/payment_methods/:id", retrievePaymentMethod, ["customer"]),
  route("POST", "/v1/payment_methods/:id/attach", attachPaymentMethod, ["customer"]),
  route("POST", "/v1/payment_methods/:id/detach", detachPaymentMethod, ["customer"]),
  route("POST", "/v1/payment_intents", createPaymentIntent, PI_EXPANDABLE),
  route("GET", "/v1/payment_intents", listPaymentIntents, inList(PI_EXPANDABLE)),
  route("GET", "/v1/payment_intents/search", searchPaymentIntents, inList(PI_EXPANDABLE)),
  route("GET", "/v1/payment_intents/:id", retrievePaymentIntent, PI_EXPANDABLE),
  route("POST", "/v1/billing_portal/sessions", createPortalSession),
];

/**
 * Path segments are percent-encoded but, unlike form values, `+` stays literal. A malformed
 * escape is kept as-is and simply names an object that does not exist.
 * @param {string} segment
 */
function decodePathSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * @param {string} method
 * @param {string} path
 * @returns {{ route: Route, pathParams: Record<string, string> } | null}
 */
function matchRoute(method, path) {
  for (const candidate of ROUTES) {
    if (candidate.method !== method) continue;
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    /** @type {Record<string, string>} */
    const pathParams = {};
    candidate.names.forEach((name, i) => {
      pathParams[name] = decodePathSegment(match[i + 1] ?? "");
    });
    return { route: candidate, pathParams };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------------

/**
 * @param {http.IncomingMessage} req
 * @returns {Promise<string>}
 */
function readBody(req) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(
          new StripeHttpError(413, {
            type: "invalid_request_error",
            message: "Request body too large.",
          }),
        );
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {string} body
 * @param {Record<string, string>} headers
 */
function send(res, status, body, headers) {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-cache, no-store",
    ...headers,
  });
  res.end(body);
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {unknown} value
 */
function sendJson(res, status, value) {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, {});
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {string} html
 */
function sendHtml(res, status, html) {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": Buffer.byteLength(html),
  });
  res.end(html);
}

/** @param {Json} body Stripe pretty-prints its JSON; so do we. */
const stripeJson = (body) => `${JSON.stringify(body, null, 2)}\n`;

/**
 * Reads the secret key from `Authorization: Bearer sk_…` (or Basic auth with the key as
 * username, which Stripe also accepts).
 * @param {http.IncomingMessage} req
 * @returns {string}
 */
function authenticate(req) {
  const header = req.headers.authorization ?? "";
  let key = "";
  const bearer = header.match(/^Bearer\s+(.+)$/i);
  const basic = header.match(/^Basic\s+(.+)$/i);
  if (bearer) key = (bearer[1] ?? "").trim();
  else if (basic)
    key =
      Buffer.from(basic[1] ?? "", "base64")
        .toString("utf8")
        .split(":")[0] ?? "";
  if (!key) {
    throw new StripeHttpError(401, {
      type: "invalid_request_error",
      message:
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
    });
  }
  if (!key.startsWith("sk_")) {
    const masked =
      key.length > 12 ? `${key.slice(0, 8)}${"*".repeat(key.length - 12)}${key.slice(-4)}` : key;
    throw new StripeHttpError(401, {
      type: "invalid_request_error",
      message: `Invalid API Key provided: ${masked}`,
    });
  }
  return key;
}

/**
 * Query parameters plus (for POST) the form body. JSON bodies are refused as Stripe's v1
 * API does not accept them, which catches clients configured for the wrong format.
 * @param {URL} url
 * @param {string} body
 * @param {string | undefined} contentType
 */
function parseApiParams(url, body, contentType) {
  const params = parseForm(url.search.slice(1));
  if (body.trim() === "") return params;
  const type = (contentType ?? "application/x-www-form-urlencoded").split(";")[0]?.trim();
  if (type !== "application/x-www-form-urlencoded") {
    throw invalidRequest(
      `Invalid request: unsupported Content-Type ${type}. If error persists and you need assistance, please contact support@stripe.com.`,
    );
  }
  return { ...params, ...parseForm(body) };
}

/**
 * The decoded parameter at a form key such as `customer` or `metadata[recharge_id]`.
 * @param {Json | null} params
 * @param {string} key
 * @returns {unknown}
 */
function paramAt(params, key) {
  /** @type {any} */
  let node = params;
  for (const segment of splitKey(key)) {
    if (node === null || typeof node !== "object") return undefined;
    node = node[segment];
  }
  return node;
}

/**
 * @param {FaultRule} rule
 * @param {string} method
 * @param {string} path
 * @param {Json | null} params
 */
function faultMatches(rule, method, path, params) {
  if (rule.method !== "*" && rule.method !== method) return false;
  const pathOk = rule.path.endsWith("*")
    ? path.startsWith(rule.path.slice(0, -1))
    : rule.path === path;
  if (!pathOk) return false;
  return Object.entries(rule.match ?? {}).every(
    ([key, expected]) => String(paramAt(params, key)) === expected,
  );
}

/**
 * Takes one use of the first fault rule matching this request, if any.
 * @param {State} state
 * @param {string} method
 * @param {string} path
 * @param {Json | null} params Decoded parameters, null when they could not be parsed.
 * @returns {FaultRule | null}
 */
function takeFault(state, method, path, params) {
  const index = state.faults.findIndex((rule) => faultMatches(rule, method, path, params));
  const rule = state.faults[index];
  if (!rule) return null;
  rule.times -= 1;
  if (rule.times <= 0) state.faults.splice(index, 1);
  return { ...rule };
}

/**
 * @param {App} app
 * @param {number} ms
 */
function sleep(app, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      app.timers.delete(timer);
      resolve(undefined);
    }, ms);
    app.timers.add(timer);
  });
}

/**
 * Runs a handler and turns thrown Stripe errors into responses.
 * @param {App} app
 * @param {Route} matched
 * @param {Ctx} ctx
 * @returns {{ status: number, body: Json }}
 */
function execute(app, matched, ctx) {
  try {
    const expand = readExpand(ctx.params, matched.expandable);
    const result = matched.handler(ctx);
    const body = clone(result.body);
    if (expand.length > 0 && !body.error) applyExpand(ctx.state, body, expand);
    return { status: result.status ?? 200, body };
  } catch (err) {
    if (err instanceof StripeHttpError) return { status: err.status, body: { error: err.error } };
    log(app, `internal error: ${err instanceof Error ? err.stack : String(err)}`);
    return {
      status: 500,
      body: {
        error: {
          type: "api_error",
          message: "An unknown error occurred in the local Stripe server.",
        },
      },
    };
  }
}

/**
 * Stripe saves the outcome of any request that started executing: successes and card
 * errors. Validation failures (400/404 before anything ran) and server errors are not saved,
 * so the same key can be retried.
 * @param {number} status
 */
const isSavedOutcome = (status) => status < 400 || status === 402;

/**
 * One Stripe API request, end to end: log, faults, auth, routing, idempotency, execution,
 * response, then webhook events.
 * @param {App} app
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 * @param {URL} url
 */
async function handleApi(app, req, res, url) {
  const { state } = app;
  const method = (req.method ?? "GET").toUpperCase();
  const path = url.pathname;
  const requestId = newId("req_", 14);
  const rawKey = req.headers["idempotency-key"];
  const idempotencyKey = method === "POST" && typeof rawKey === "string" && rawKey ? rawKey : null;
  /** @type {RequestLogEntry} */
  const entry = {
    method,
    path,
    idempotency_key: idempotencyKey,
    params: {},
    status: null,
    replayed: false,
    fault: null,
    request_id: requestId,
    at: new Date().toISOString(),
  };
  state.requests.push(entry);
  if (state.requests.length > MAX_LOGGED_REQUESTS) state.requests.shift();

  /** @type {Record<string, string>} */
  const headers = {
    "Request-Id": requestId,
    "Stripe-Version": String(req.headers["stripe-version"] ?? API_VERSION),
  };
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  /**
   * @param {number} status
   * @param {string} body
   */
  const respond = (status, body) => {
    entry.status = status;
    send(res, status, body, headers);
  };
  /** @param {StripeHttpError} err */
  const respondError = (err) => {
    if (err.status === 401) headers["WWW-Authenticate"] = 'Basic realm="Stripe"';
    respond(err.status, stripeJson({ error: err.error }));
  };

  let body;
  try {
    body = await readBody(req);
  } catch (err) {
    if (err instanceof StripeHttpError) respondError(err);
    else res.destroy();
    return;
  }

  // Faults model the network and Stripe's front door, so they act before anything else.
  const decoded = safeParams(url, body, req.headers["content-type"]);
  entry.params = decoded ?? {}; // log readers index into params; never hand them null
  const fault = takeFault(state, method, path, decoded);
  entry.fault = fault ? fault.kind : null;
  if (fault?.kind === "drop_before") {
    req.socket.destroy();
    return;
  }
  if (fault?.kind === "500") {
    respond(
      500,
      stripeJson({
        error: {
          type: "api_error",
          message: "An unknown error occurred (injected by the local Stripe server's fault rules).",
        },
      }),
    );
    return;
  }

  let params;
  let apiKey;
  try {
    apiKey = authenticate(req);
    params = parseApiParams(url, body, req.headers["content-type"]);
    entry.params = clone(params);
  } catch (err) {
    if (!(err instanceof StripeHttpError)) throw err;
    respondError(err);
    return;
  }

  const matched = matchRoute(method, path);
  if (!matched) {
    respond(
      404,
      stripeJson({
        error: {
          type: "invalid_request_error",
          message: `Unrecognized request URL (${method}: ${path}).`,
        },
      }),
    );
    return;
  }

  // Idempotency: replay, reject a mismatch or a concurrent use, or reserve the key.
  const storeKey = idempotencyKey ? `${apiKey}\u0000${idempotencyKey}` : null;
  const fingerprint = canonicalJson(params);
  if (storeKey && idempotencyKey) {
    if (idempotencyKey.length > 255) {
      respondError(invalidRequest("Idempotency-Key must be at most 255 characters long."));
      return;
    }
    let previous = state.idempotency.get(storeKey);
    if (previous && Date.now() - previous.savedAt > IDEMPOTENCY_TTL_MS) {
      state.idempotency.delete(storeKey);
      previous = undefined;
    }
    if (previous) {
      const problem = idempotencyProblem(previous, method, path, fingerprint, idempotencyKey);
      if (problem) {
        respondError(problem);
        return;
      }
      entry.replayed = true;
      headers["Idempotent-Replayed"] = "true";
      headers["Original-Request"] = previous.requestId;
      if (fault?.kind === "delay") await sleep(app, fault.ms);
      if (fault?.kind === "drop_after") {
        req.socket.destroy();
        return;
      }
      respond(previous.status, previous.body);
      return;
    }
    state.idempotency.set(storeKey, {
      phase: "executing",
      method,
      path,
      fingerprint,
      status: 0,
      body: "",
      requestId,
      savedAt: Date.now(),
    });
  }

  if (fault?.kind === "delay") await sleep(app, fault.ms);
  if (app.closed) return;

  /** @type {Json[]} */
  const events = [];
  /** @type {Ctx} */
  const ctx = {
    app,
    state,
    params,
    pathParams: matched.pathParams,
    requestId,
    idempotencyKey,
    emit: (type, object, previousAttributes) =>
      events.push(
        buildEvent(type, object, previousAttributes, {
          id: requestId,
          idempotency_key: idempotencyKey,
        }),
      ),
  };
  const outcome = execute(app, matched.route, ctx);
  const text = stripeJson(outcome.body);

  if (storeKey) {
    if (isSavedOutcome(outcome.status)) {
      state.idempotency.set(storeKey, {
        phase: "done",
        method,
        path,
        fingerprint,
        status: outcome.status,
        body: text,
        requestId,
        savedAt: Date.now(),
      });
    } else {
      state.idempotency.delete(storeKey);
    }
  }

  if (fault?.kind === "drop_after") {
    entry.status = outcome.status;
    req.socket.destroy();
  } else {
    respond(outcome.status, text);
  }
  for (const event of events) queueDelivery(app, event);
}

/**
 * Why a stored idempotency record cannot serve this request, or null when it can be replayed.
 * @param {IdempotencyRecord} previous
 * @param {string} method
 * @param {string} path
 * @param {string} fingerprint
 * @param {string} key
 * @returns {StripeHttpError | null}
 */
function idempotencyProblem(previous, method, path, fingerprint, key) {
  if (previous.phase === "executing") {
    return new StripeHttpError(409, {
      type: "idempotency_error",
      message: `There is currently another in-progress request using this idempotent key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`,
    });
  }
  if (previous.method !== method || previous.path !== path) {
    return new StripeHttpError(400, {
      type: "idempotency_error",
      message: `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${previous.method} ${previous.path}' vs '${method} ${path}'). Try using a key other than '${key}' if you meant to execute a different request.`,
    });
  }
  if (previous.fingerprint !== fingerprint) {
    return new StripeHttpError(400, {
      type: "idempotency_error",
      message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
    });
  }
  return null;
}

/**
 * Best-effort parameter decoding for the request log when the request failed early.
 * @param {URL} url
 * @param {string} body
 * @param {string | undefined} contentType
 */
function safeParams(url, body, contentType) {
  try {
    return parseApiParams(url, body, contentType);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/**
 * A Stripe Event wrapping a snapshot of `object`.
 * @param {string} type
 * @param {Json} object
 * @param {Json | undefined} previousAttributes
 * @param {{ id: string | null, idempotency_key: string | null }} request
 * @param {{ id?: string, created?: number }} [overrides]
 */
export function buildEvent(type, object, previousAttributes, request, overrides = {}) {
  /** @type {Json} */
  const data = { object: clone(object) };
  if (previousAttributes) data.previous_attributes = clone(previousAttributes);
  return {
    id: overrides.id ?? newId("evt_"),
    object: "event",
    api_version: API_VERSION,
    created: overrides.created ?? now(),
    data,
    livemode: false,
    pending_webhooks: 1,
    request,
    type,
  };
}

/**
 * Stripe's signature header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`.
 * @param {string} payload
 * @param {string} secret
 * @param {number} [timestamp]
 */
export function signPayload(payload, secret, timestamp = now()) {
  const signature = createHmac("sha256", secret).update(`${timestamp}.${payload}`).digest("hex");
  return `t=${timestamp},v1=${signature}`;
}

/**
 * POSTs one signed event and records the delivery.
 * @param {App} app
 * @param {Json} event
 * @param {string} url
 * @param {string} secret
 * @returns {Promise<{ status: number, body: string }>}
 */
async function deliverEvent(app, event, url, secret) {
  const payload = JSON.stringify(event, null, 2);
  /** @type {WebhookDelivery} */
  const record = {
    event_id: event.id,
    type: event.type,
    url,
    status: null,
    error: null,
    at: new Date().toISOString(),
  };
  app.state.webhookDeliveries.push(record);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signPayload(payload, secret),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
      },
      body: payload,
      signal: AbortSignal.any([app.abort.signal, AbortSignal.timeout(WEBHOOK_TIMEOUT_MS)]),
    });
    const body = await response.text();
    record.status = response.status;
    return { status: response.status, body };
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
    throw err;
  }
}

/**
 * Sends an event the API emitted, after the response, one at a time so receivers see events
 * in the order they happened. Failures are logged, never retried.
 * @param {App} app
 * @param {Json} event
 */
function queueDelivery(app, event) {
  const target = app.webhook;
  if (!target) return;
  app.deliveryChain = app.deliveryChain.then(async () => {
    if (app.closed) return;
    try {
      const { status } = await deliverEvent(app, event, target.url, target.secret);
      if (status >= 300) log(app, `webhook ${event.type} ${event.id} -> HTTP ${status}`);
    } catch (err) {
      if (!app.closed) log(app, `webhook ${event.type} ${event.id} failed: ${String(err)}`);
    }
  });
}

/**
 * @param {App} app
 * @param {string} message
 */
function log(app, message) {
  if (!app.quiet) console.error(`[stripe-server] ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Test control endpoints (/_test/*)
// ---------------------------------------------------------------------------------------------

const FAULT_KINDS = ["500", "drop_before", "drop_after", "delay"];

/**
 * @param {unknown} raw
 * @returns {FaultRule}
 */
function readFaultRule(raw) {
  if (!isPlainObject(raw)) throw invalidRequest("Each fault must be an object.");
  const rule = /** @type {Json} */ (raw);
  const kind = String(rule.kind);
  if (!FAULT_KINDS.includes(kind)) {
    throw invalidRequest(`Unknown fault kind '${kind}'; use one of ${FAULT_KINDS.join(", ")}.`);
  }
  if (typeof rule.path !== "string" || !rule.path.startsWith("/")) {
    throw invalidRequest(
      "A fault needs a path such as /v1/payment_intents (a trailing * matches a prefix).",
    );
  }
  const times = rule.times ?? 1;
  const ms = rule.ms ?? 0;
  const match = rule.match ?? null;
  if (match !== null && !isPlainObject(match)) {
    throw invalidRequest("match must be an object of parameter name to value.");
  }
  if (!Number.isInteger(times) || times < 1)
    throw invalidRequest("times must be a positive integer.");
  if (!Number.isInteger(ms) || ms < 0) throw invalidRequest("ms must be a non-negative integer.");
  return {
    method: typeof rule.method === "string" ? rule.method.toUpperCase() : "*",
    path: rule.path,
    kind: /** @type {FaultRule["kind"]} */ (kind),
    times,
    ms,
    match: match && Object.fromEntries(Object.entries(match).map(([k, v]) => [k, String(v)])),
  };
}

/** @param {State} state */
function snapshot(state) {
  const list = (/** @type {Map<string, Json>} */ map) => [...map.values()].map(clone);
  return {
    counts: {
      customers: state.customers.size,
      payment_methods: state.paymentMethods.size,
      payment_intents: state.paymentIntents.size,
      charges: state.charges.size,
      billing_portal_sessions: state.portalSessions.size,
      idempotency_keys: state.idempotency.size,
      requests: state.requests.length,
      webhook_deliveries: state.webhookDeliveries.length,
    },
    customers: list(state.customers),
    payment_methods: list(state.paymentMethods),
    payment_intents: list(state.paymentIntents),
    charges: list(state.charges),
    billing_portal_sessions: list(state.portalSessions),
    webhook_deliveries: clone(state.webhookDeliveries),
    faults: clone(state.faults),
  };
}

/** @param {State} state */
function resetState(state) {
  for (const map of [
    state.customers,
    state.paymentMethods,
    state.cardBehaviors,
    state.paymentIntents,
    state.charges,
    state.portalSessions,
    state.idempotency,
  ]) {
    map.clear();
  }
  state.requests.length = 0;
  state.faults.length = 0;
  state.webhookDeliveries.length = 0;
}

/**
 * Sends an arbitrary event (e.g. `invoice.paid`) to the webhook endpoint, signed.
 * @param {App} app
 * @param {Json} input `{ type, data: { object, previous_attributes? }, id?, created?, url?, secret? }`
 */
async function sendTestWebhook(app, input) {
  if (typeof input.type !== "string" || !input.type) throw invalidRequest("type is required.");
  if (!isPlainObject(input.data) || !isPlainObject(input.data.object)) {
    throw invalidRequest("data.object must be an object.");
  }
  const url = input.url ?? app.webhook?.url;
  const secret = input.secret ?? app.webhook?.secret;
  if (typeof url !== "string" || typeof secret !== "string") {
    throw invalidRequest("No webhook url/secret configured; pass url and secret in the body.");
  }
  const event = buildEvent(
    input.type,
    input.data.object,
    input.data.previous_attributes,
    { id: null, idempotency_key: null },
    { id: input.id, created: input.created },
  );
  const result = await deliverEvent(app, event, url, secret);
  return { event, status: result.status, body: result.body };
}

/**
 * @param {http.IncomingMessage} req
 * @returns {Promise<Json>}
 */
async function readJson(req) {
  const text = await readBody(req);
  if (text.trim() === "") return {};
  try {
    const value = JSON.parse(text);
    if (!isPlainObject(value)) throw new Error("not an object");
    return value;
  } catch {
    throw invalidRequest("The body must be a JSON object.");
  }
}

/**
 * @param {App} app
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 * @param {URL} url
 */
async function handleControl(app, req, res, url) {
  const { state } = app;
  const key = `${req.method} ${url.pathname}`;
  try {
    switch (key) {
      case "POST /_test/faults": {
        const input = await readJson(req);
        if (!Array.isArray(input.faults)) throw invalidRequest("faults must be an array.");
        state.faults.push(...input.faults.map(readFaultRule));
        return sendJson(res, 200, { faults: state.faults });
      }
      case "GET /_test/faults":
        return sendJson(res, 200, { faults: state.faults });
      case "DELETE /_test/faults":
        state.faults.length = 0;
        return sendJson(res, 200, { faults: [] });
      case "GET /_test/requests": {
        const filter = url.searchParams.get("path");
        const data = state.requests.filter(
          (r) =>
            !filter ||
            (filter.endsWith("*") ? r.path.startsWith(filter.slice(0, -1)) : r.path === filter),
        );
        return sendJson(res, 200, { data });
      }
      case "DELETE /_test/requests":
        state.requests.length = 0;
        return sendJson(res, 200, { data: [] });
      case "GET /_test/state":
        return sendJson(res, 200, snapshot(state));
      case "POST /_test/reset":
        resetState(state);
        return sendJson(res, 200, { ok: true });
      case "POST /_test/webhooks":
        return sendJson(res, 200, await sendTestWebhook(app, await readJson(req)));
      default:
        return sendJson(res, 404, {
          error: { type: "invalid_request_error", message: `Unknown test endpoint: ${key}` },
        });
    }
  } catch (err) {
    if (err instanceof StripeHttpError) return sendJson(res, err.status, { error: err.error });
    const message = err instanceof Error ? err.message : String(err);
    return sendJson(res, 502, { error: { type: "api_error", message } });
  }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/**
 * @param {App} app
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
async function handleRequest(app, req, res) {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname.startsWith("/_test/")) return handleControl(app, req, res, url);
  const portal = url.pathname.match(/^\/p\/session\/([^/]+)$/);
  if (portal && req.method === "GET") return servePortalPage(app, portal[1] ?? "", res);
  return handleApi(app, req, res, url);
}

/** @returns {State} */
function createState() {
  return {
    customers: new Map(),
    paymentMethods: new Map(),
    cardBehaviors: new Map(),
    paymentIntents: new Map(),
    charges: new Map(),
    portalSessions: new Map(),
    idempotency: new Map(),
    requests: [],
    faults: [],
    webhookDeliveries: [],
  };
}

/**
 * Starts a server. Resolves once it is listening.
 * @param {ServerOptions} [options]
 * @returns {Promise<{ url: string, port: number, state: State, close: () => Promise<void>,
 *   sendWebhook: (input: Json) => Promise<{ event: Json, status: number, body: string }> }>}
 */
export async function startStripeServer(options = {}) {
  const host = options.host ?? "127.0.0.1";
  if (options.webhook && (!options.webhook.url || !options.webhook.secret)) {
    throw new Error("options.webhook needs both url and secret");
  }
  /** @type {App} */
  const app = {
    state: createState(),
    baseUrl: "",
    webhook: options.webhook ?? null,
    quiet: options.quiet ?? false,
    closed: false,
    abort: new AbortController(),
    deliveryChain: Promise.resolve(),
    timers: new Set(),
  };
  const server = http.createServer((req, res) => {
    handleRequest(app, req, res).catch((err) => {
      log(app, `unhandled: ${err instanceof Error ? err.stack : String(err)}`);
      if (!res.headersSent && !res.destroyed) {
        sendJson(res, 500, { error: { type: "api_error", message: "Internal error." } });
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve(undefined);
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const urlHost =
    host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  app.baseUrl = `http://${urlHost}:${port}`;

  let closing = /** @type {Promise<void> | null} */ (null);
  const close = () => {
    closing ??= new Promise((resolve) => {
      app.closed = true;
      app.abort.abort();
      for (const timer of app.timers) clearTimeout(timer);
      app.timers.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  return {
    url: app.baseUrl,
    port,
    state: app.state,
    close,
    sendWebhook: (input) => sendTestWebhook(app, input),
  };
}
