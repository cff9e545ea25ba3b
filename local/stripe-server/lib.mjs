// @ts-check
/**
 * Shared building blocks of the local Stripe server: types, ids, Stripe errors, the v1 form
 * decoder, parameter readers, expansion, pagination and route declarations. Every resource
 * module imports from here; this module imports nothing of the server's.
 */
import { randomInt } from "node:crypto";

/** The API version stamped on events; webhook consumers compare it, the server ignores it. */
export const API_VERSION = "2025-01-27.acacia";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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
 * @property {string} [persistPath] A JSON file holding the whole state: loaded at start when
 *   it exists, saved (write a temporary file, then rename) shortly after every request and
 *   webhook delivery, and on close(). Without it the state lives in memory only.
 * @property {number} [searchLagMs] Stripe's search is eventually consistent ("searchable in
 *   under a minute"): an object is found by search only this long after its `created` second.
 * @property {number} [webhookShuffleMs] Stripe guarantees no delivery order: with this, each
 *   delivery goes on its own after a random delay of up to this many ms (0: one at a time, in order).
 * @property {number} [webhookRetries] Stripe retries a delivery answered with a non-2xx or lost:
 *   this many more attempts, 500 ms × 2^n apart (default 0).
 */

/**
 * @typedef {{ kind: "succeed" }
 *   | { kind: "decline", code: string, decline_code: string, message: string, param?: string,
 *       attach?: "succeed" }
 *   | { kind: "authentication_required", untilSetUp?: boolean, setUp?: boolean }} CardBehavior
 *   `untilSetUp` (…3155): once set up with the customer present (`setUp`), off-session
 *   payments need no authentication.
 */

/**
 * @typedef {object} FaultRule
 * @property {string} method "*" matches any method.
 * @property {string} path Exact path; `*` matches any characters (a trailing one: a prefix).
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
 * @property {string | null} stripe_version The `Stripe-Version` header the client sent.
 * @property {{ type: string, code: string | null } | null} error The answer's error, if any.
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
 * @property {Map<string, Json>} portalConfigurations
 * @property {Map<string, Json>} products
 * @property {Map<string, Json>} prices
 * @property {Map<string, Json>} invoiceItems
 * @property {Map<string, Json>} invoices
 * @property {Map<string, Json>} invoicePayments
 * @property {Map<string, Json>} subscriptions
 * @property {Map<string, Json>} subscriptionSchedules
 * @property {Map<string, Json>} refunds
 * @property {Map<string, Json>} setupIntents
 * @property {Map<string, Json>} checkoutSessions
 * @property {Map<string, Json>} checkoutDetails Line items and subscription_data per session.
 * @property {Map<string, Json>} webhookEndpoints
 * @property {Map<string, string>} webhookSecrets Secret per webhook endpoint id.
 * @property {Map<string, Json>} events Emitted events, oldest first.
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
 * @property {number} pendingDeliveries Deliveries queued or still retrying (for `idle()`).
 * @property {number} searchLagMs
 * @property {number} webhookShuffleMs
 * @property {number} webhookRetries
 * @property {Set<ReturnType<typeof setTimeout>>} timers Pending "delay" faults.
 * @property {() => void} changed Schedules a save of the state (a no-op without persistPath).
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

/** @type {number | null} Set by `POST /_test/clock`; null: the clock runs. */
let frozenAt = null;
export const now = () => frozenAt ?? Math.floor(Date.now() / 1000);
/**
 * Freezes (or thaws) the clock objects and events are stamped with, so a test can make events
 * of one second, which `created` cannot order. One clock per process.
 * @param {boolean} frozen
 */
export const freezeClock = (frozen) => {
  frozenAt = frozen ? Math.floor(Date.now() / 1000) : null;
};

/** @param {unknown} value */
export const isPlainObject = (value) =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Deep copy of a JSON-shaped value, so responses and logs never alias live state.
 * @template T
 * @param {T} value
 * @returns {T}
 */
export const clone = (value) => structuredClone(value);

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
export const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

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
export function invalidRequest(message, extra = {}) {
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
export function noSuch(label, id, param) {
  return new StripeHttpError(404, {
    type: "invalid_request_error",
    code: "resource_missing",
    doc_url: "https://stripe.com/docs/error-codes/resource-missing",
    param,
    message: `No such ${label}: '${id}'`,
  });
}

/** @param {string} param */
export const missingParam = (param) =>
  invalidRequest(`Missing required param: ${param}.`, { code: "parameter_missing", param });

// ---------------------------------------------------------------------------------------------
// Form decoding (Stripe's v1 wire format)
// ---------------------------------------------------------------------------------------------

/**
 * Percent-decodes one key or value; `+` means space in form encoding.
 * @param {string} text
 */
export function decodeComponent(text) {
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
export function splitKey(key) {
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
export function assignPath(root, segments, value) {
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
export function arrayify(value, key) {
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
export function rejectUnknown(params, allowed, prefix = "") {
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
export const describe = (value) => (typeof value === "string" ? value : JSON.stringify(value));

/**
 * @param {Json} params
 * @param {string} name
 * @param {{ required?: boolean, label?: string }} [opts]
 * @returns {string | null | undefined} undefined when absent, null when sent as "" (unset).
 */
export function readString(params, name, opts = {}) {
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
export function readInteger(params, name, required = false) {
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
export function readBoolean(params, name) {
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
export function readMetadata(params) {
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
export function mergeMetadata(current, update) {
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
export function readExpand(params, expandable) {
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
// Lookups and lists
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {string} id
 * @param {string} param
 */
export function getCustomerOr404(state, id, param) {
  const customer = state.customers.get(id);
  if (!customer) throw noSuch("customer", id, param);
  return customer;
}

/**
 * @param {State} state
 * @param {string} id
 * @param {string} param
 */
export function getPaymentMethodOr404(state, id, param) {
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
export function findById(state, id) {
  for (const value of Object.values(state)) {
    if (value instanceof Map && value !== state.idempotency) {
      const found = /** @type {Json | undefined} */ (value.get(id));
      if (found !== undefined && isPlainObject(found) && found.id === id) return found;
    }
  }
  return undefined;
}

/**
 * Replaces ids with the objects they name, along dotted paths such as
 * `invoice_settings.default_payment_method` or `data.customer` (lists).
 * @param {State} state
 * @param {Json} target A response body (already a copy).
 * @param {string[]} paths
 */
export function applyExpand(state, target, paths) {
  for (const path of paths) expandPath(state, target, path.split("."));
}

/**
 * @param {State} state
 * @param {any} node
 * @param {string[]} segments
 */
export function expandPath(state, node, segments) {
  if (Array.isArray(node)) {
    for (const item of node) expandPath(state, item, segments);
    return;
  }
  if (!isPlainObject(node)) return;
  const [head, ...rest] = segments;
  if (head === undefined) return;
  const include = INCLUDABLE[`${node.object}.${head}`];
  if (include && node[head] === undefined) {
    node[head] = clone(include(state, node));
  } else if (typeof node[head] === "string") {
    // Stripe expands every id on the way: `latest_invoice.payments` expands latest_invoice too.
    const found = findById(state, node[head]);
    if (found) node[head] = clone(found);
  }
  if (rest.length > 0) expandPath(state, node[head], rest);
}

/**
 * Fields Stripe leaves out unless they are named in `expand[]` ("includable"), keyed by
 * `object.field`, such as `invoice.payments`. Resource modules register their own.
 * @type {Record<string, (state: State, object: Json) => Json | null>}
 */
export const INCLUDABLE = {};

/**
 * Stripe list pagination over items already sorted newest first.
 * @param {Json[]} items
 * @param {Json} params
 * @param {string} url
 */
export function paginate(items, params, url) {
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
// Routes and HTML
// ---------------------------------------------------------------------------------------------

/**
 * @param {string} method
 * @param {string} template e.g. "/v1/customers/:id"
 * @param {(ctx: Ctx) => HandlerResult} handler
 * @param {string[]} [expandable]
 * @returns {Route}
 */
export function route(method, template, handler, expandable = []) {
  /** @type {string[]} */
  const names = [];
  const source = template.replace(/:([a-z]+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  return { method, pattern: new RegExp(`^${source}$`), names, handler, expandable };
}

/** @param {string[]} paths */
export const inList = (paths) => paths.map((p) => `data.${p}`);

/**
 * @param {import("node:http").ServerResponse} res
 * @param {number} status
 * @param {string} html
 */
export function sendHtml(res, status, html) {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": Buffer.byteLength(html),
  });
  res.end(html);
}

// ---------------------------------------------------------------------------------------------
// Search (Stripe's query language, the subset the app needs)
// ---------------------------------------------------------------------------------------------

/**
 * Compiles a search query: clauses joined by ` AND `, each `metadata['key']:'value'` or
 * `field:'value'` / `field:123` (single or double quotes). `fields` maps each searchable field
 * to a getter, so nested fields (an invoice's subscription) can be searched by their name.
 * @param {string} query
 * @param {string} resource e.g. "invoices", for the error message
 * @param {Record<string, (object: Json) => unknown>} fields
 * @returns {(object: Json) => boolean}
 */
export function compileSearch(query, resource, fields) {
  const clauses = query.trim().split(/\s+AND\s+/);
  const tests = clauses.map((clause) => {
    const meta = clause.match(/^metadata\[(['"])(.+?)\1\]:(['"])(.*)\3$/);
    if (meta) {
      const key = meta[2] ?? "";
      const value = meta[4] ?? "";
      return (/** @type {Json} */ object) => object.metadata?.[key] === value;
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
    const get = fields[name];
    if (!get) {
      throw invalidRequest(
        `Field \`${name}\` is an unsupported search field for resource \`${resource}\`. See http://stripe.com/docs/search#query-fields-for-${resource.replaceAll("_", "-")} for a list of supported fields.`,
        { param: "query" },
      );
    }
    return (/** @type {Json} */ object) => String(get(object)) === value;
  });
  return (object) => tests.every((test) => test(object));
}

/**
 * A search endpoint's answer: a `search_result` over items sorted newest first, leaving out
 * those not indexed yet (`searchLagMs` after their `created` second).
 * @param {Ctx} ctx
 * @param {Json[]} found
 * @param {string} url
 */
export function searchResult(ctx, found, url) {
  const limit = readLimit(ctx.params);
  const lag = ctx.app.searchLagMs;
  const items = lag > 0 ? found.filter((o) => o.created * 1000 <= Date.now() - lag) : found;
  return {
    object: "search_result",
    data: items.slice(0, limit).map(clone),
    has_more: items.length > limit,
    next_page: null,
    url,
  };
}

/**
 * `limit`, 1 to 100, 10 by default.
 * @param {Json} params
 */
export function readLimit(params) {
  const limit = readInteger(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      "This value must be greater than or equal to 1 and less than or equal to 100.",
      { code: "parameter_invalid_integer", param: "limit" },
    );
  }
  return limit;
}

/**
 * A nested object parameter such as `recurring` or `subscription_data`: {} when absent.
 * @param {Json} params
 * @param {string} name
 * @param {string[]} allowed
 * @returns {Json}
 */
export function readObject(params, name, allowed) {
  const value = params[name];
  if (value === undefined || value === "") return {};
  if (!isPlainObject(value)) throw invalidRequest("Invalid object", { param: name });
  rejectUnknown(value, allowed, name);
  return value;
}

/**
 * A string parameter restricted to a set of values.
 * @param {Json} params
 * @param {string} name
 * @param {string[]} values
 * @param {{ label?: string, required?: boolean }} [opts]
 */
export function readEnum(params, name, values, opts = {}) {
  const value = readString(params, name, opts);
  if (value === undefined || value === null) return undefined;
  if (!values.includes(value)) {
    const label = opts.label ?? name;
    throw invalidRequest(`Invalid ${label}: must be one of ${values.join(", ")}`, {
      param: label,
    });
  }
  return value;
}

/**
 * A list of strings (`a[]=x&a[]=y` or `a[0]=x`).
 * @param {Json} params
 * @param {string} name
 * @returns {string[] | undefined}
 */
export function readStringList(params, name) {
  const value = params[name];
  if (value === undefined || value === "") return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === "string")) {
    throw invalidRequest("Invalid array", { param: name });
  }
  return list;
}

/**
 * Looks an object up in one of the state's maps, or answers Stripe's 404.
 * @param {Map<string, Json>} map
 * @param {string} id
 * @param {string} label e.g. "invoice", "price"
 * @param {string} [param]
 */
export function getOr404(map, id, label, param = "id") {
  const found = map.get(id);
  if (!found) throw noSuch(label, id, param);
  return found;
}

/**
 * Newest first: the order of Stripe's lists.
 * @param {Map<string, Json>} map
 * @param {(item: Json) => boolean} [keep]
 */
export const newestFirst = (map, keep = () => true) => [...map.values()].filter(keep).reverse();
