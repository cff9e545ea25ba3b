// @ts-check
/**
 * A Stripe-compatible test server for the acceptance suite, written from Stripe's public API
 * reference (docs.stripe.com/api) and testing docs (docs.stripe.com/testing), independently of
 * the gateway and of local/stripe-server/. It models, in test mode only, the objects and state
 * machines the gateway and `npm run stripe:setup` use: customers, payment methods (the test
 * `pm_card_*` ids and card numbers), setup and payment intents, products, prices, invoices and
 * invoice items, subscriptions, Checkout sessions (with a hosted page), customer-portal
 * configurations and sessions, webhook endpoints and events (signed deliveries).
 *
 * What it does not model is listed in README.md next to this file.
 *
 * Plain Node (node:http, node:crypto), no dependencies.
 */
import { createHmac, randomBytes } from "node:crypto";
import http from "node:http";
import { FormError, parseForm } from "./form.mjs";
import {
  bool,
  expand,
  int,
  LIST,
  list,
  metadata,
  obj,
  oneOf,
  ParamError,
  parseFields,
  range,
  required,
  str,
} from "./params.mjs";
import { matches, parseQuery, QueryError } from "./search.mjs";

export const DEFAULT_API_VERSION = "2026-10-28.endive";

/** Event types a webhook endpoint may subscribe to (a subset of Stripe's list: those modelled here and common neighbours). */
export const KNOWN_EVENTS = new Set([
  "*",
  "checkout.session.completed",
  "checkout.session.expired",
  "checkout.session.async_payment_succeeded",
  "checkout.session.async_payment_failed",
  "customer.created",
  "customer.updated",
  "customer.deleted",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "customer.subscription.paused",
  "customer.subscription.resumed",
  "customer.subscription.trial_will_end",
  "invoice.created",
  "invoice.deleted",
  "invoice.finalized",
  "invoice.finalization_failed",
  "invoice.paid",
  "invoice.payment_action_required",
  "invoice.payment_failed",
  "invoice.payment_succeeded",
  "invoice.updated",
  "invoice.voided",
  "invoice.marked_uncollectible",
  "invoice.upcoming",
  "invoiceitem.created",
  "invoiceitem.deleted",
  "payment_intent.created",
  "payment_intent.succeeded",
  "payment_intent.payment_failed",
  "payment_intent.requires_action",
  "payment_intent.canceled",
  "payment_intent.processing",
  "payment_method.attached",
  "payment_method.detached",
  "payment_method.updated",
  "setup_intent.created",
  "setup_intent.succeeded",
  "setup_intent.setup_failed",
  "setup_intent.requires_action",
  "setup_intent.canceled",
  "price.created",
  "price.updated",
  "price.deleted",
  "product.created",
  "product.updated",
  "product.deleted",
  "billing_portal.configuration.created",
  "billing_portal.configuration.updated",
  "billing_portal.session.created",
  "charge.succeeded",
  "charge.failed",
]);

// ---------------------------------------------------------------------------------------------
// Test cards (docs.stripe.com/testing)
// ---------------------------------------------------------------------------------------------

/**
 * @typedef {"ok" | "auth_always" | "auth_setup" | "attach_ok_charge_fails" | "decline"} Behavior
 * @typedef {{ number: string, brand: string, funding: string, behavior: Behavior,
 *   decline?: string, code?: string, message?: string }} TestCard
 */

const DECLINED = "Your card was declined.";
/** @type {TestCard[]} */
const CARDS = [
  { number: "4242424242424242", brand: "visa", funding: "credit", behavior: "ok" },
  { number: "4000056655665556", brand: "visa", funding: "debit", behavior: "ok" },
  { number: "5555555555554444", brand: "mastercard", funding: "credit", behavior: "ok" },
  { number: "378282246310005", brand: "amex", funding: "credit", behavior: "ok" },
  // Declines: attaching them to a customer already fails (only …0341 attaches, then fails).
  {
    number: "4000000000000002",
    brand: "visa",
    funding: "credit",
    behavior: "decline",
    decline: "generic_decline",
    code: "card_declined",
    message: DECLINED,
  },
  {
    number: "4000000000009995",
    brand: "visa",
    funding: "credit",
    behavior: "decline",
    decline: "insufficient_funds",
    code: "card_declined",
    message: "Your card has insufficient funds.",
  },
  {
    number: "4000000000000069",
    brand: "visa",
    funding: "credit",
    behavior: "decline",
    decline: "expired_card",
    code: "expired_card",
    message: "Your card has expired.",
  },
  {
    number: "4000000000000127",
    brand: "visa",
    funding: "credit",
    behavior: "decline",
    decline: "incorrect_cvc",
    code: "incorrect_cvc",
    message: "Your card's security code is incorrect.",
  },
  {
    number: "4000000000000119",
    brand: "visa",
    funding: "credit",
    behavior: "decline",
    decline: "processing_error",
    code: "processing_error",
    message: "An error occurred while processing your card. Try again in a little bit.",
  },
  {
    number: "4000000000000341",
    brand: "visa",
    funding: "credit",
    behavior: "attach_ok_charge_fails",
    decline: "generic_decline",
    code: "card_declined",
    message: DECLINED,
  },
  // 3D Secure: …3184 asks for authentication on every payment, on or off session; …3155 only
  // until it has been set up for off-session use (then off-session payments go through).
  { number: "4000002760003184", brand: "visa", funding: "credit", behavior: "auth_always" },
  { number: "4000002500003155", brand: "visa", funding: "credit", behavior: "auth_setup" },
  { number: "4000000000003220", brand: "visa", funding: "credit", behavior: "auth_always" },
];

/** The test PaymentMethod ids and tokens, by the card they stand for. */
const TEST_IDS = {
  visa: "4242424242424242",
  visa_debit: "4000056655665556",
  mastercard: "5555555555554444",
  amex: "378282246310005",
  chargeDeclined: "4000000000000002",
  chargeDeclinedInsufficientFunds: "4000000000009995",
  chargeDeclinedExpiredCard: "4000000000000069",
  chargeDeclinedIncorrectCvc: "4000000000000127",
  chargeDeclinedProcessingError: "4000000000000119",
  chargeCustomerFail: "4000000000000341",
  authenticationRequired: "4000002760003184",
  authenticationRequiredOnSetup: "4000002500003155",
  threeDSecure2Required: "4000000000003220",
};

/** @param {string} id pm_card_visa, tok_visa, … @returns {TestCard | null} */
function testCardOf(id) {
  const m = /^(?:pm_card_|tok_)(.+)$/.exec(id);
  if (!m) return null;
  const number = /** @type {Record<string, string>} */ (TEST_IDS)[m[1]];
  return number ? cardByNumber(number) : null;
}

/** @param {string} number */
export function cardByNumber(number) {
  const digits = number.replace(/[\s-]/g, "");
  return CARDS.find((c) => c.number === digits) ?? null;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export class StripeError extends Error {
  /**
   * @param {number} status
   * @param {string} type
   * @param {string} message
   * @param {Record<string, unknown>} [extra]  code, param, decline_code, payment_intent, …
   */
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.extra = extra;
  }
  body() {
    return {
      error: {
        type: this.type,
        message: this.message,
        ...this.extra,
        ...(this.extra.code
          ? {
              doc_url: `https://docs.stripe.com/error-codes/${String(this.extra.code).replaceAll("_", "-")}`,
            }
          : {}),
      },
    };
  }
}

/** @param {string} message @param {Record<string, unknown>} [extra] */
const invalid = (message, extra = {}) =>
  new StripeError(400, "invalid_request_error", message, extra);

/** @param {string} what @param {string} id @param {string} [param] */
const missing = (what, id, param = "id") =>
  new StripeError(404, "invalid_request_error", `No such ${what}: '${id}'`, {
    code: "resource_missing",
    param,
  });

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** @param {string} prefix @param {number} [n] */
function newId(prefix, n = 24) {
  const bytes = randomBytes(n);
  return `${prefix}_${Array.from(bytes, (b) => ALPHABET[b % 62]).join("")}`;
}
/** @type {number | null} a frozen clock (seconds), for events that must share one `created` */
let frozenAt = null;
const nowSeconds = () => frozenAt ?? Math.floor(Date.now() / 1000);
/** @param {number} t seconds @param {number} months */
function addMonths(t, months) {
  const d = new Date(t * 1000);
  d.setUTCMonth(d.getUTCMonth() + months);
  return Math.floor(d.getTime() / 1000);
}
/** @param {unknown} v @returns {any} */
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/** The public form of a stored object: fields starting with `_` are internal state. */
/** @param {any} v @returns {any} */
function render(v) {
  if (Array.isArray(v)) return v.map(render);
  if (v && typeof v === "object") {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [k, val] of Object.entries(v)) if (!k.startsWith("_")) out[k] = render(val);
    return out;
  }
  return v;
}

/** Metadata update semantics: keys merge, "" deletes a key, metadata="" clears all. */
/** @param {Record<string, string>} current @param {any} update */
function mergeMetadata(current, update) {
  if (update === undefined) return current;
  if (update === "") return {};
  const out = { ...current };
  for (const [k, v] of Object.entries(update)) {
    if (v === "") delete out[k];
    else out[k] = /** @type {string} */ (v);
  }
  return out;
}

/** @param {unknown} v */
const stable = (v) =>
  JSON.stringify(v, (_k, val) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => a.localeCompare(b)))
      : val,
  );

/** @param {string} s */
const esc = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** @param {number} cents @param {string} currency */
const money = (cents, currency) => `${(cents / 100).toFixed(2)} ${currency.toUpperCase()}`;

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/**
 * @typedef {object} RecordedRequest
 * @property {string} id            the Request-Id answered
 * @property {string} method
 * @property {string} path
 * @property {string} query
 * @property {string | undefined} contentType
 * @property {string} body
 * @property {Record<string, any> | null} params  the decoded form (null when malformed)
 * @property {string | null} idempotencyKey
 * @property {string | null} stripeVersion
 * @property {string | null} userAgent
 * @property {number} status
 * @property {{ type: string, code?: unknown, param?: unknown, message: string } | null} error
 * @property {boolean} malformed   refused before execution: bad encoding, unknown/missing/invalid parameters, idempotency misuse, wrong content type
 * @property {boolean} replayed    answered from the idempotency store
 * @property {"lose" | "unavailable"} [fault]  an injected fault hit this request
 * @property {number} at
 *
 * @typedef {object} Delivery
 * @property {string} event
 * @property {string} type
 * @property {string} endpoint
 * @property {number} attempts
 * @property {number | null} status   the last HTTP status (null: network error)
 * @property {boolean} delivered
 *
 * @typedef {object} ServerOptions
 * @property {number} [port]
 * @property {string} [host]
 * @property {string[]} [apiKeys]   accepted secret keys; default: any sk_test_/rk_test_ key
 * @property {Array<{ url: string, secret?: string, enabled_events?: string[] }>} [webhooks]
 *   endpoints configured up front (as if made in the Dashboard)
 * @property {number} [searchLagMs]   how long a write takes to become searchable (Stripe: < 1 min)
 * @property {number} [webhookRetries]  redeliveries after a failed attempt (Stripe: over 3 days)
 * @property {number} [webhookRetryBaseMs]
 * @property {number} [idempotencyTtlMs]  how long keys are kept (Stripe: at least 24 hours)
 * @property {"emitted" | "shuffled"} [deliveryOrder]  "emitted" (default): one endpoint's
 *   deliveries one after another in the order of the events; "shuffled": each on its own after a
 *   random delay of up to `shuffleMaxMs` (Stripe guarantees no order)
 * @property {number} [shuffleMaxMs]
 * @property {(line: string) => void} [log]
 */

/** @param {ServerOptions} [options] */
export async function startStripeServer(options = {}) {
  const host = options.host ?? "127.0.0.1";
  const searchLagMs = options.searchLagMs ?? 0;
  const retries = options.webhookRetries ?? 4;
  const retryBase = options.webhookRetryBaseMs ?? 500;
  const idemTtl = options.idempotencyTtlMs ?? 24 * 60 * 60_000;
  const shuffled = options.deliveryOrder === "shuffled";
  const shuffleMaxMs = options.shuffleMaxMs ?? 400;
  /**
   * Faults to inject, as a network between the client and Stripe can produce them: "lose" runs
   * the request to the end (idempotency result saved, events emitted) and then drops the
   * connection without an answer; "unavailable" answers 503 `api_error` without running it.
   * @type {Array<{ method: string, path: RegExp, mode: "lose" | "unavailable", times: number, hits: number }>}
   */
  const faults = [];
  const log = options.log ?? (() => {});
  let base = "";

  /** @type {Map<string, Map<string, any>>} */
  const stores = new Map();
  let seq = 0;
  /** @param {string} type */
  const store = (type) => {
    let s = stores.get(type);
    if (!s) {
      s = new Map();
      stores.set(type, s);
    }
    return s;
  };
  /** @param {any} o */
  const put = (o) => {
    o._seq ??= ++seq;
    o._searchableAt ??= Date.now() + searchLagMs;
    store(o.object).set(o.id, o);
    return o;
  };
  /** @param {any} o  a changed object becomes searchable again only after the lag */
  const touched = (o) => {
    o._searchableAt = Date.now() + searchLagMs;
    o._searchSnapshot = searchLagMs > 0 ? clone(o._searchSnapshot ?? null) : null;
  };

  /** @type {Record<string, [string, string]>} id prefix → [object type, label in messages] */
  const PREFIX = {
    cus: ["customer", "customer"],
    pm: ["payment_method", "PaymentMethod"],
    seti: ["setup_intent", "setupintent"],
    pi: ["payment_intent", "payment_intent"],
    prod: ["product", "product"],
    price: ["price", "price"],
    in: ["invoice", "invoice"],
    ii: ["invoiceitem", "invoiceitem"],
    sub: ["subscription", "subscription"],
    cs: ["checkout.session", "checkout.session"],
    bpc: ["billing_portal.configuration", "configuration"],
    we: ["webhook_endpoint", "webhook endpoint"],
    evt: ["event", "event"],
  };
  /** @param {string} id */
  const typeOf = (id) => PREFIX[id.split("_")[0]]?.[0] ?? null;
  /**
   * @param {string} type @param {string} id @param {string} [param]
   * @returns {any}
   */
  const get = (type, id, param = "id") => {
    const o = store(type).get(id);
    const label = Object.values(PREFIX).find(([t]) => t === type)?.[1] ?? type;
    if (!o) throw missing(label, id, param);
    return o;
  };

  // ----- events and webhooks -------------------------------------------------------------------

  /** @type {Delivery[]} */
  const deliveries = [];
  /** @type {RecordedRequest[]} */
  const requests = [];
  /** @type {{ id: string, idempotencyKey: string | null } | null} */
  let current = null;
  let pendingDeliveries = 0;

  for (const w of options.webhooks ?? []) {
    put({
      id: newId("we"),
      object: "webhook_endpoint",
      api_version: DEFAULT_API_VERSION,
      application: null,
      created: nowSeconds(),
      description: "configured by option",
      enabled_events: w.enabled_events ?? ["*"],
      livemode: false,
      metadata: {},
      status: "enabled",
      url: w.url,
      _secret: w.secret ?? `whsec_${randomBytes(24).toString("hex")}`,
      _chain: Promise.resolve(),
    });
  }

  /**
   * Records an event and queues its delivery to every enabled endpoint subscribed to it.
   * @param {string} type @param {any} object @param {Record<string, unknown>} [previous]
   */
  function emit(type, object, previous) {
    const endpoints = [...store("webhook_endpoint").values()].filter(
      (e) =>
        e.status === "enabled" &&
        (e.enabled_events.includes("*") || e.enabled_events.includes(type)),
    );
    const event = put({
      id: newId("evt"),
      object: "event",
      api_version: DEFAULT_API_VERSION,
      created: nowSeconds(),
      data: {
        object: decorate(render(object)),
        ...(previous ? { previous_attributes: clone(previous) } : {}),
      },
      livemode: false,
      pending_webhooks: endpoints.length,
      request: { id: current?.id ?? null, idempotency_key: current?.idempotencyKey ?? null },
      type,
    });
    for (const endpoint of endpoints) {
      pendingDeliveries++;
      const done = () => {
        pendingDeliveries--;
      };
      if (shuffled) {
        // Stripe does not guarantee the order of deliveries: each goes on its own, after a
        // random delay, so later events can arrive first.
        const delay = Math.floor(Math.random() * shuffleMaxMs);
        new Promise((r) => setTimeout(r, delay)).then(() => deliver(event, endpoint)).finally(done);
      } else {
        endpoint._chain = endpoint._chain
          .then(() => new Promise((r) => setTimeout(r, 0)))
          .then(() => deliver(event, endpoint))
          .finally(done);
      }
    }
    return event;
  }

  /** Signs like Stripe: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`. */
  /** @param {string} payload @param {string} secret @param {number} [t] */
  function signatureHeader(payload, secret, t = nowSeconds()) {
    const v1 = createHmac("sha256", secret).update(`${t}.${payload}`, "utf8").digest("hex");
    return `t=${t},v1=${v1}`;
  }

  /** @param {any} event @param {any} endpoint */
  async function deliver(event, endpoint) {
    const payload = JSON.stringify(render(event), null, 2);
    /** @type {Delivery} */
    const record = {
      event: event.id,
      type: event.type,
      endpoint: endpoint.id,
      attempts: 0,
      status: null,
      delivered: false,
    };
    deliveries.push(record);
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, retryBase * 2 ** (attempt - 1)));
      if (!store("webhook_endpoint").has(endpoint.id) || endpoint.status !== "enabled") return;
      record.attempts++;
      try {
        const res = await fetch(endpoint.url, {
          method: "POST",
          headers: {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signatureHeader(payload, endpoint._secret),
          },
          body: payload,
          signal: AbortSignal.timeout(20_000),
        });
        await res.arrayBuffer().catch(() => {});
        record.status = res.status;
        if (res.ok) {
          record.delivered = true;
          event.pending_webhooks = Math.max(0, event.pending_webhooks - 1);
          return;
        }
        log(`webhook ${event.type} → ${endpoint.url}: HTTP ${res.status}`);
      } catch (err) {
        record.status = null;
        log(`webhook ${event.type} → ${endpoint.url}: ${err instanceof Error ? err.message : err}`);
      }
    }
  }

  // ----- rendering, expansion, lists -----------------------------------------------------------

  /** The invoice's payments (an includable list: only when expanded). @param {any} invoice */
  const invoicePayments = (invoice) => ({
    object: "list",
    data: render(invoice._payments ?? []),
    has_more: false,
    url: `/v1/invoice_payments?invoice=${invoice.id}`,
  });

  /** @param {any} value @param {string[]} segs @param {string} path @param {number} depth */
  function expandPath(value, segs, path, depth) {
    if (segs.length === 0 || value === null || value === undefined) return value;
    if (depth > 4) throw invalid(`You cannot expand more than 4 levels of a property (${path}).`);
    const [head, ...rest] = segs;
    if ((value.object === "list" || value.object === "search_result") && head === "data") {
      value.data = value.data.map((/** @type {any} */ v) => expandPath(v, rest, path, depth));
      return value;
    }
    if (typeof value !== "object") return value;
    let field = value[head];
    if (value.object === "invoice" && head === "payments") {
      field = invoicePayments(get("invoice", value.id));
    } else if (typeof field === "string") {
      const type = typeOf(field);
      const o = type ? store(type).get(field) : null;
      if (!o) throw invalid(`This property cannot be expanded (${path}).`);
      field = render(o);
      decorate(field);
    } else if (field === undefined) {
      throw invalid(`This property cannot be expanded (${path}).`, { param: "expand" });
    }
    value[head] = expandPath(field, rest, path, depth + 1);
    return value;
  }

  /** Fields computed at render time. @param {any} o */
  function decorate(o) {
    if (o?.object === "invoice") {
      const inv = store("invoice").get(o.id);
      if (inv) o.lines = linesOf(inv);
    }
    return o;
  }

  /** @param {any} o @param {string[] | undefined} paths */
  function out(o, paths) {
    const r = decorate(render(o));
    for (const p of paths ?? []) expandPath(r, p.split("."), p, 1);
    return r;
  }

  /** @param {any} a @param {any} b newest first */
  const newestFirst = (a, b) => b.created - a.created || b._seq - a._seq;

  /**
   * A list response: `{object: "list", data, has_more, url}`, newest first, paged by
   * starting_after / ending_before object ids, limit 1–100 (default 10).
   * @param {any[]} items @param {any} params @param {string} url
   */
  function listOf(items, params, url) {
    const limit = params.limit ?? 10;
    if (limit < 1 || limit > 100)
      throw invalid(`This value must be between 1 and 100 (it currently is ${limit}).`, {
        param: "limit",
      });
    if (params.starting_after && params.ending_before)
      throw invalid("You may only specify one of these parameters: ending_before, starting_after.");
    const sorted = [...items].sort(newestFirst);
    let page;
    let hasMore;
    if (params.starting_after) {
      const i = sorted.findIndex((o) => o.id === params.starting_after);
      if (i < 0) throw missing("object", params.starting_after, "starting_after");
      page = sorted.slice(i + 1, i + 1 + limit);
      hasMore = sorted.length > i + 1 + limit;
    } else if (params.ending_before) {
      const i = sorted.findIndex((o) => o.id === params.ending_before);
      if (i < 0) throw missing("object", params.ending_before, "ending_before");
      page = sorted.slice(Math.max(0, i - limit), i);
      hasMore = i - limit > 0;
    } else {
      page = sorted.slice(0, limit);
      hasMore = sorted.length > limit;
    }
    return out({ object: "list", data: page, has_more: hasMore, url }, params.expand);
  }

  /**
   * A search response: `{object: "search_result", data, has_more, next_page, url}`; objects
   * become searchable `searchLagMs` after they were written (Stripe: under a minute).
   * @param {string} type @param {string} resource @param {string[]} fields
   * @param {(o: any, field: string, metaKey: string | null) => unknown} getField
   * @param {any} params
   */
  function searchOf(type, resource, fields, getField, params) {
    let parsed;
    try {
      parsed = parseQuery(params.query, fields, resource);
    } catch (err) {
      if (err instanceof QueryError) throw invalid(err.message, { param: "query" });
      throw err;
    }
    const limit = params.limit ?? 10;
    if (limit < 1 || limit > 100)
      throw invalid("limit must be between 1 and 100", { param: "limit" });
    const now = Date.now();
    const hits = [...store(type).values()]
      .filter((o) => o._searchableAt <= now)
      .filter((o) => matches(parsed, (f, k) => getField(o, f, k)))
      .sort(newestFirst);
    const offset = params.page ? Number(Buffer.from(params.page, "base64url").toString()) : 0;
    if (!Number.isInteger(offset) || offset < 0) throw invalid("Invalid page", { param: "page" });
    const page = hits.slice(offset, offset + limit);
    const hasMore = hits.length > offset + limit;
    const result = {
      object: "search_result",
      data: page,
      has_more: hasMore,
      next_page: hasMore ? Buffer.from(String(offset + limit)).toString("base64url") : null,
      url: `/v1/${resource}/search`,
    };
    const expandList = (params.expand ?? []).filter(
      (/** @type {string} */ p) => p !== "total_count",
    );
    const r = out(result, expandList);
    if ((params.expand ?? []).includes("total_count")) r.total_count = hits.length;
    return r;
  }

  /** @param {any} o @param {string} field @param {string | null} metaKey */
  const plainField = (o, field, metaKey) => (metaKey !== null ? o.metadata?.[metaKey] : o[field]);

  /** @param {any} items @param {any} c  `created` filter */
  const createdFilter = (items, c) =>
    c === undefined
      ? items
      : items.filter((/** @type {any} */ o) =>
          typeof c === "number"
            ? o.created === c
            : (c.gt === undefined || o.created > c.gt) &&
              (c.gte === undefined || o.created >= c.gte) &&
              (c.lt === undefined || o.created < c.lt) &&
              (c.lte === undefined || o.created <= c.lte),
        );

  // ----- customers -----------------------------------------------------------------------------

  const customerFields = {
    email: str,
    name: str,
    description: str,
    phone: str,
    metadata,
    invoice_settings: obj({
      default_payment_method: str,
      footer: str,
      custom_fields: list(obj({ name: required(str), value: required(str) })),
    }),
    address: obj({
      line1: str,
      line2: str,
      city: str,
      state: str,
      postal_code: str,
      country: str,
    }),
    preferred_locales: list(str),
    expand,
  };

  /** @param {any} p */
  function createCustomer(p) {
    const customer = put({
      id: newId("cus", 14),
      object: "customer",
      address: null,
      balance: 0,
      created: nowSeconds(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: p.description || null,
      discount: null,
      email: p.email || null,
      invoice_prefix: randomBytes(4).toString("hex").toUpperCase(),
      invoice_settings: {
        custom_fields: null,
        default_payment_method: null,
        footer: null,
        rendering_options: null,
      },
      livemode: false,
      metadata: mergeMetadata({}, p.metadata),
      name: p.name || null,
      next_invoice_sequence: 1,
      phone: p.phone || null,
      preferred_locales: p.preferred_locales ?? [],
      shipping: null,
      tax_exempt: "none",
      test_clock: null,
    });
    if (p.payment_method) attach(p.payment_method, customer, "payment_method");
    if (p.invoice_settings) applyInvoiceSettings(customer, p.invoice_settings);
    emit("customer.created", customer);
    return customer;
  }

  /** @param {any} customer @param {any} settings */
  function applyInvoiceSettings(customer, settings) {
    if (settings === "") {
      customer.invoice_settings.default_payment_method = null;
      return;
    }
    if (settings.default_payment_method !== undefined) {
      const pmId = settings.default_payment_method;
      if (pmId === "") customer.invoice_settings.default_payment_method = null;
      else {
        const pm = store("payment_method").get(pmId);
        if (!pm) throw missing("PaymentMethod", pmId, "invoice_settings[default_payment_method]");
        if (pm.customer !== customer.id)
          throw invalid(
            `The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`,
            { param: "invoice_settings[default_payment_method]" },
          );
        customer.invoice_settings.default_payment_method = pmId;
      }
    }
    if (settings.footer !== undefined) customer.invoice_settings.footer = settings.footer || null;
    if (settings.custom_fields !== undefined)
      customer.invoice_settings.custom_fields = settings.custom_fields || null;
  }

  // ----- payment methods -----------------------------------------------------------------------

  /** @param {TestCard} card @param {{ exp_month?: number, exp_year?: number }} [exp] */
  function newPaymentMethod(card, exp = {}) {
    const year = new Date().getUTCFullYear();
    return put({
      id: newId("pm"),
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
        brand: card.brand,
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: "pass" },
        country: "US",
        display_brand: card.brand,
        exp_month: exp.exp_month ?? 12,
        exp_year: exp.exp_year ?? year + 3,
        fingerprint: createHmac("sha256", "fp").update(card.number).digest("hex").slice(0, 16),
        funding: card.funding,
        generated_from: null,
        last4: card.number.slice(-4),
        networks: { available: [card.brand], preferred: null },
        three_d_secure_usage: { supported: true },
        wallet: null,
      },
      created: nowSeconds(),
      customer: null,
      livemode: false,
      metadata: {},
      type: "card",
      _card: card,
      _setUpOffSession: false,
    });
  }

  /**
   * A payment method by id; a test id (pm_card_visa, …) stands for a new one each time, as in
   * Stripe test mode.
   * @param {string} id @param {string} param
   */
  function paymentMethodFor(id, param = "payment_method") {
    const test = testCardOf(id);
    if (test && id.startsWith("pm_")) return newPaymentMethod(test);
    return get("payment_method", id, param);
  }

  /** @param {string} id @param {any} customer @param {string} param */
  function attach(id, customer, param) {
    const pm = paymentMethodFor(id, param);
    if (pm.customer && pm.customer !== customer.id)
      throw invalid("The payment method you provided has already been attached to a customer.", {
        code: "payment_method_unexpected_state",
        param,
      });
    if (pm.customer === customer.id) return pm;
    const card = /** @type {TestCard} */ (pm._card);
    if (card.behavior === "decline") {
      // Attaching validates the card with the issuer: these test cards are declined there.
      throw new StripeError(402, "card_error", card.message ?? DECLINED, {
        code: card.code,
        decline_code: card.decline,
        param: "",
      });
    }
    pm.customer = customer.id;
    emit("payment_method.attached", pm);
    return pm;
  }

  // ----- payment intents -----------------------------------------------------------------------

  /** @param {{ amount: number, currency: string, customer: string | null, description?: string | null, invoice?: any, payment_method?: string | null, metadata?: any, setup_future_usage?: string | null }} p */
  function newPaymentIntent(p) {
    const pi = put({
      id: newId("pi"),
      object: "payment_intent",
      amount: p.amount,
      amount_capturable: 0,
      amount_received: 0,
      application: null,
      automatic_payment_methods: null,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: "automatic",
      client_secret: `${newId("pi")}_secret_${randomBytes(12).toString("hex")}`,
      confirmation_method: "automatic",
      created: nowSeconds(),
      currency: p.currency,
      customer: p.customer,
      description: p.description ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: p.metadata ?? {},
      next_action: null,
      payment_method: p.payment_method ?? null,
      payment_method_types: ["card"],
      receipt_email: null,
      setup_future_usage: p.setup_future_usage ?? null,
      status: p.payment_method ? "requires_confirmation" : "requires_payment_method",
    });
    emit("payment_intent.created", pi);
    return pi;
  }

  /**
   * Confirms a PaymentIntent with a card, the way the issuer's test card behaves.
   * @param {any} pi @param {any} pm
   * @param {{ offSession: boolean, authenticated: boolean }} how
   * @returns {{ ok: true } | { ok: false, error: StripeError, kind: "decline" | "action" }}
   */
  function confirmIntent(pi, pm, how) {
    pi.payment_method = pm.id;
    const card = /** @type {TestCard} */ (pm._card);
    const needsAuth =
      card.behavior === "auth_always" ||
      (card.behavior === "auth_setup" && !(how.offSession && pm._setUpOffSession));
    if (card.behavior === "decline" || card.behavior === "attach_ok_charge_fails") {
      const charge = newId("ch");
      pi.status = "requires_payment_method";
      pi.latest_charge = charge;
      pi.last_payment_error = {
        charge,
        code: card.code,
        decline_code: card.decline,
        doc_url: `https://docs.stripe.com/error-codes/${String(card.code).replaceAll("_", "-")}`,
        message: card.message,
        payment_method: render(pm),
        type: "card_error",
      };
      touched(pi);
      emit("payment_intent.payment_failed", pi);
      return {
        ok: false,
        kind: "decline",
        error: new StripeError(402, "card_error", card.message ?? DECLINED, {
          code: card.code,
          decline_code: card.decline,
          charge,
          payment_intent: render(pi),
          payment_method: render(pm),
        }),
      };
    }
    if (needsAuth && !how.authenticated) {
      pi.status = "requires_action";
      pi.next_action = {
        type: "use_stripe_sdk",
        use_stripe_sdk: { type: "three_d_secure_redirect" },
      };
      pi.last_payment_error = how.offSession
        ? {
            code: "authentication_required",
            decline_code: "authentication_required",
            doc_url: "https://docs.stripe.com/error-codes/authentication-required",
            message: "Your card was declined. This transaction requires authentication.",
            payment_method: render(pm),
            type: "card_error",
          }
        : null;
      touched(pi);
      emit("payment_intent.requires_action", pi);
      return {
        ok: false,
        kind: "action",
        error: new StripeError(
          402,
          "card_error",
          "Your card was declined. This transaction requires authentication.",
          {
            code: "authentication_required",
            decline_code: "authentication_required",
            payment_intent: render(pi),
            payment_method: render(pm),
          },
        ),
      };
    }
    const charge = newId("ch");
    pi.status = "succeeded";
    pi.amount_received = pi.amount;
    pi.latest_charge = charge;
    pi.last_payment_error = null;
    pi.next_action = null;
    touched(pi);
    if (pi.setup_future_usage === "off_session" || how.authenticated) pm._setUpOffSession = true;
    emit("payment_intent.succeeded", pi);
    return { ok: true };
  }

  // ----- products and prices -------------------------------------------------------------------

  const productFields = {
    name: str,
    description: str,
    metadata,
    active: bool,
    images: list(str),
    url: str,
    statement_descriptor: str,
    unit_label: str,
    tax_code: str,
    shippable: bool,
    marketing_features: list(obj({ name: required(str) })),
    expand,
  };

  /** @param {any} p */
  function createProduct(p) {
    if (!p.name)
      throw invalid("Missing required param: name.", { code: "parameter_missing", param: "name" });
    if (p.id && store("product").has(p.id))
      throw invalid(`Product already exists.`, { code: "resource_already_exists", param: "id" });
    const t = nowSeconds();
    const product = put({
      id: p.id || newId("prod", 14),
      object: "product",
      active: p.active ?? true,
      created: t,
      default_price: null,
      description: p.description || null,
      images: p.images ?? [],
      livemode: false,
      marketing_features: p.marketing_features ?? [],
      metadata: mergeMetadata({}, p.metadata),
      name: p.name,
      package_dimensions: null,
      shippable: p.shippable ?? null,
      statement_descriptor: p.statement_descriptor || null,
      tax_code: p.tax_code || null,
      type: "service",
      unit_label: p.unit_label || null,
      updated: t,
      url: p.url || null,
    });
    emit("product.created", product);
    return product;
  }

  /** @param {any} o @param {any} p @param {string[]} fields @returns {Record<string, unknown>} previous */
  function applyUpdates(o, p, fields) {
    /** @type {Record<string, unknown>} */
    const previous = {};
    for (const f of fields) {
      if (p[f] === undefined) continue;
      const next =
        f === "metadata" ? mergeMetadata(o.metadata, p.metadata) : p[f] === "" ? null : p[f];
      if (stable(o[f]) !== stable(next)) {
        previous[f] = clone(o[f]);
        o[f] = next;
      }
    }
    return previous;
  }

  /** @param {string} lookupKey */
  const priceByLookupKey = (lookupKey) =>
    [...store("price").values()].find((x) => x.lookup_key === lookupKey) ?? null;

  /** @param {any} price @param {string | null | undefined} key @param {boolean} transfer */
  function setLookupKey(price, key, transfer) {
    if (!key) {
      price.lookup_key = null;
      return;
    }
    const holder = priceByLookupKey(key);
    if (holder && holder.id !== price.id) {
      if (!transfer)
        throw invalid(`A price (\`${holder.id}\`) already uses that lookup key.`, {
          param: "lookup_key",
        });
      const prev = { lookup_key: holder.lookup_key };
      holder.lookup_key = null;
      touched(holder);
      emit("price.updated", holder, prev);
    }
    price.lookup_key = key;
  }

  // ----- invoices ------------------------------------------------------------------------------

  /** @param {any} inv */
  function linesOf(inv) {
    return {
      object: "list",
      data: render(inv._lines),
      has_more: inv._lines.length > 10,
      total_count: inv._lines.length,
      url: `/v1/invoices/${inv.id}/lines`,
    };
  }

  /** @param {any} inv */
  function recomputeTotals(inv) {
    const total = inv._lines.reduce(
      (/** @type {number} */ s, /** @type {any} */ l) => s + l.amount,
      0,
    );
    inv.subtotal = total;
    inv.subtotal_excluding_tax = total;
    inv.total = total;
    inv.total_excluding_tax = total;
    inv.amount_due = total;
    inv.amount_remaining = total - inv.amount_paid;
  }

  /** @param {any} customer @param {any} p */
  function newInvoice(customer, p) {
    const t = nowSeconds();
    return put({
      id: newId("in"),
      object: "invoice",
      account_country: "US",
      account_name: "Stripe-compatible acceptance server",
      amount_due: 0,
      amount_overpaid: 0,
      amount_paid: 0,
      amount_remaining: 0,
      amount_shipping: 0,
      application: null,
      attempt_count: 0,
      attempted: false,
      auto_advance: p.auto_advance ?? false,
      automatic_tax: {
        disabled_reason: null,
        enabled: false,
        liability: null,
        provider: null,
        status: null,
      },
      billing_reason: p.billing_reason ?? "manual",
      collection_method: p.collection_method ?? "charge_automatically",
      created: t,
      currency: p.currency ?? customer.currency ?? "usd",
      customer: customer.id,
      customer_email: customer.email,
      customer_name: customer.name,
      default_payment_method: p.default_payment_method ?? null,
      description: p.description || null,
      discounts: [],
      due_date: p.due_date ?? (p.days_until_due ? t + p.days_until_due * 86400 : null),
      effective_at: null,
      ending_balance: null,
      footer: p.footer || null,
      hosted_invoice_url: null,
      invoice_pdf: null,
      last_finalization_error: null,
      livemode: false,
      metadata: mergeMetadata({}, p.metadata),
      next_payment_attempt: null,
      number: null,
      parent: p.parent ?? null,
      period_end: p.period_end ?? t,
      period_start: p.period_start ?? t,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      starting_balance: 0,
      statement_descriptor: p.statement_descriptor || null,
      status: "draft",
      status_transitions: {
        finalized_at: null,
        marked_uncollectible_at: null,
        paid_at: null,
        voided_at: null,
      },
      subtotal: 0,
      subtotal_excluding_tax: 0,
      test_clock: null,
      total: 0,
      total_discount_amounts: [],
      total_excluding_tax: 0,
      total_taxes: [],
      webhooks_delivered_at: null,
      _lines: [],
      _payments: [],
      _pi: null,
    });
  }

  /** @param {any} inv @param {any} item an invoice item, or a subscription item line */
  function addLine(inv, item) {
    inv._lines.push(item);
    recomputeTotals(inv);
  }

  /** @param {any} ii */
  function lineFromInvoiceItem(ii) {
    return {
      id: newId("il"),
      object: "line_item",
      amount: ii.amount,
      currency: ii.currency,
      description: ii.description,
      discount_amounts: [],
      discountable: ii.discountable,
      discounts: [],
      invoice: ii.invoice,
      livemode: false,
      metadata: ii.metadata,
      parent: {
        type: "invoice_item_details",
        invoice_item_details: {
          invoice_item: ii.id,
          proration: false,
          proration_details: { credited_items: null },
          subscription: null,
        },
        subscription_item_details: null,
      },
      period: ii.period,
      pretax_credit_amounts: [],
      pricing: ii.pricing,
      quantity: ii.quantity,
      taxes: [],
    };
  }

  /** Draft → open: numbered, a hosted page, a PaymentIntent for what is due. @param {any} inv */
  function finalize(inv) {
    const customer = get("customer", inv.customer);
    const t = nowSeconds();
    inv.number = `${customer.invoice_prefix}-${String(customer.next_invoice_sequence++).padStart(4, "0")}`;
    inv.status = "open";
    inv.effective_at = t;
    inv.status_transitions.finalized_at = t;
    inv.hosted_invoice_url = `${base}/i/${inv.id}`;
    inv.invoice_pdf = `${base}/i/${inv.id}/pdf`;
    inv.ending_balance = 0;
    touched(inv);
    emit("invoice.finalized", inv);
    if (inv.amount_due === 0) {
      markPaid(inv, null);
      return;
    }
    const pi = newPaymentIntent({
      amount: inv.amount_due,
      currency: inv.currency,
      customer: inv.customer,
      description:
        inv.description ?? (inv.billing_reason === "manual" ? null : "Subscription creation"),
      payment_method: inv.default_payment_method,
    });
    inv._pi = pi.id;
    inv._payments.push({
      id: newId("inpay"),
      object: "invoice_payment",
      amount_paid: null,
      amount_requested: inv.amount_due,
      created: t,
      currency: inv.currency,
      invoice: inv.id,
      is_default: true,
      livemode: false,
      payment: { type: "payment_intent", payment_intent: pi.id },
      status: "open",
      status_transitions: { canceled_at: null, paid_at: null },
    });
  }

  /** @param {any} inv @param {any} pi */
  function markPaid(inv, pi) {
    const t = nowSeconds();
    const previous = { status: inv.status, amount_paid: inv.amount_paid };
    inv.status = "paid";
    inv.amount_paid = inv.amount_due;
    inv.amount_remaining = 0;
    inv.status_transitions.paid_at = t;
    inv.receipt_number = pi
      ? `${randomBytes(2).toString("hex")}-${randomBytes(2).toString("hex")}`
      : null;
    for (const p of inv._payments) {
      if (p.status === "open") {
        p.status = "paid";
        p.amount_paid = p.amount_requested;
        p.status_transitions.paid_at = t;
      }
    }
    touched(inv);
    emit("invoice.paid", inv, previous);
    emit("invoice.payment_succeeded", inv);
    afterInvoicePaid(inv);
  }

  /**
   * Pays an open invoice with a payment method.
   * @param {any} inv @param {any} pm @param {{ offSession: boolean, authenticated: boolean }} how
   */
  function payInvoice(inv, pm, how) {
    const pi = get("payment_intent", inv._pi);
    inv.attempted = true;
    inv.attempt_count++;
    const result = confirmIntent(pi, pm, how);
    if (result.ok) {
      markPaid(inv, pi);
      return result;
    }
    touched(inv);
    if (result.kind === "action") {
      emit("invoice.payment_action_required", inv);
      emit("invoice.payment_failed", inv);
      return {
        ok: false,
        kind: "action",
        error: new StripeError(
          402,
          "card_error",
          "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice. For more details see: https://docs.stripe.com/billing/migration/strong-customer-authentication",
          { code: "invoice_payment_intent_requires_action", payment_intent: render(pi) },
        ),
      };
    }
    emit("invoice.payment_failed", inv);
    return result;
  }

  /** @param {any} inv */
  function voidInvoice(inv) {
    const previous = { status: inv.status };
    inv.status = "void";
    inv.amount_remaining = 0;
    inv.status_transitions.voided_at = nowSeconds();
    for (const p of inv._payments) {
      if (p.status === "open") {
        p.status = "canceled";
        p.status_transitions.canceled_at = nowSeconds();
      }
    }
    if (inv._pi) {
      const pi = get("payment_intent", inv._pi);
      if (pi.status !== "succeeded" && pi.status !== "canceled") {
        pi.status = "canceled";
        pi.canceled_at = nowSeconds();
        pi.cancellation_reason = "void_invoice";
        touched(pi);
        emit("payment_intent.canceled", pi);
      }
    }
    touched(inv);
    emit("invoice.voided", inv, previous);
    afterInvoiceClosed(inv);
  }

  /** A subscription's first invoice paid makes it active. @param {any} inv */
  function afterInvoicePaid(inv) {
    const subId = inv.parent?.subscription_details?.subscription;
    if (!subId) return;
    const sub = get("subscription", subId);
    if (sub.status === "incomplete" || sub.status === "past_due") {
      const previous = { status: sub.status };
      sub.status = "active";
      touched(sub);
      emit("customer.subscription.updated", sub, previous);
    }
  }

  /** @param {any} inv */
  function afterInvoiceClosed(inv) {
    const subId = inv.parent?.subscription_details?.subscription;
    if (!subId) return;
    const sub = get("subscription", subId);
    if (sub.status === "incomplete" && inv.billing_reason === "subscription_create") {
      const previous = { status: sub.status };
      sub.status = "incomplete_expired";
      sub.ended_at = nowSeconds();
      touched(sub);
      emit("customer.subscription.updated", sub, previous);
    }
  }

  // ----- subscriptions -------------------------------------------------------------------------

  /**
   * Creates a subscription on a recurring price, its first invoice (subscription_create) and
   * that invoice's PaymentIntent. Incomplete until the first invoice is paid.
   * @param {any} customer @param {Array<{ price: any, quantity: number }>} items
   * @param {{ default_payment_method: string | null, metadata?: any, description?: string | null }} p
   */
  function createSubscription(customer, items, p) {
    const t = nowSeconds();
    const end = addMonths(
      t,
      items[0].price.recurring.interval_count *
        (items[0].price.recurring.interval === "year" ? 12 : 1),
    );
    const subId = newId("sub");
    const sub = put({
      id: subId,
      object: "subscription",
      application: null,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null },
      billing_cycle_anchor: t,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      cancellation_details: { comment: null, feedback: null, reason: null },
      collection_method: "charge_automatically",
      created: t,
      currency: items[0].price.currency,
      customer: customer.id,
      days_until_due: null,
      default_payment_method: p.default_payment_method,
      default_source: null,
      description: p.description ?? null,
      discounts: [],
      ended_at: null,
      invoice_settings: { account_tax_ids: null, issuer: { type: "self" } },
      items: {
        object: "list",
        data: items.map((it) => ({
          id: newId("si", 14),
          object: "subscription_item",
          created: t,
          current_period_end: end,
          current_period_start: t,
          discounts: [],
          metadata: {},
          price: render(it.price),
          quantity: it.quantity,
          subscription: subId,
          tax_rates: [],
        })),
        has_more: false,
        total_count: items.length,
        url: `/v1/subscription_items?subscription=${subId}`,
      },
      latest_invoice: null,
      livemode: false,
      metadata: mergeMetadata({}, p.metadata),
      next_pending_invoice_item_invoice: null,
      pause_collection: null,
      pending_update: null,
      schedule: null,
      start_date: t,
      status: "incomplete",
      test_clock: null,
      trial_end: null,
      trial_start: null,
    });
    emit("customer.subscription.created", sub);
    const inv = newInvoice(customer, {
      billing_reason: "subscription_create",
      default_payment_method: null,
      auto_advance: true,
      currency: sub.currency,
      period_start: t,
      period_end: t,
      parent: {
        type: "subscription_details",
        quote_details: null,
        subscription_details: { metadata: clone(sub.metadata), subscription: sub.id },
      },
    });
    for (const si of sub.items.data) {
      addLine(inv, {
        id: newId("il"),
        object: "line_item",
        amount: si.price.unit_amount * si.quantity,
        currency: si.price.currency,
        description: `${si.quantity} × ${get("product", si.price.product).name} (at ${money(si.price.unit_amount, si.price.currency)} / ${si.price.recurring.interval})`,
        discount_amounts: [],
        discountable: true,
        discounts: [],
        invoice: inv.id,
        livemode: false,
        metadata: {},
        parent: {
          type: "subscription_item_details",
          invoice_item_details: null,
          subscription_item_details: {
            invoice_item: null,
            proration: false,
            proration_details: { credited_items: null },
            subscription: sub.id,
            subscription_item: si.id,
          },
        },
        period: { end, start: t },
        pretax_credit_amounts: [],
        pricing: {
          price_details: { price: si.price.id, product: si.price.product },
          type: "price_details",
          unit_amount_decimal: String(si.price.unit_amount),
        },
        quantity: si.quantity,
        taxes: [],
      });
    }
    emit("invoice.created", inv);
    sub.latest_invoice = inv.id;
    finalize(inv);
    return { sub, inv };
  }

  /** @param {any} sub @param {string} reason */
  function cancelSubscription(sub, reason) {
    const previous = { status: sub.status, canceled_at: sub.canceled_at };
    const t = nowSeconds();
    sub.status = "canceled";
    sub.canceled_at = sub.canceled_at ?? t;
    sub.ended_at = t;
    sub.cancellation_details.reason = reason;
    touched(sub);
    emit("customer.subscription.deleted", sub, previous);
  }

  // ----- Checkout ------------------------------------------------------------------------------

  /** @param {any} s */
  function expireIfDue(s) {
    if (s.status === "open" && s.expires_at <= nowSeconds()) {
      s.status = "expired";
      s.url = null;
      touched(s);
      emit("checkout.session.expired", s);
    }
    return s;
  }

  /**
   * The customer submits the hosted Checkout page with a card.
   * @param {any} session @param {TestCard} card @param {{ exp_month?: number, exp_year?: number, authenticated: boolean, email?: string }} how
   * @returns {{ ok: true } | { ok: false, message: string, code: string, challenge?: boolean }}
   */
  function completeCheckout(session, card, how) {
    const needsAuth = card.behavior === "auth_always" || card.behavior === "auth_setup";
    if (needsAuth && !how.authenticated)
      return {
        ok: false,
        code: "authentication_required",
        message: "Complete authentication",
        challenge: true,
      };
    if (
      card.behavior === "decline" ||
      (card.behavior === "attach_ok_charge_fails" && session.mode !== "setup")
    ) {
      return {
        ok: false,
        code: card.decline ?? "card_declined",
        message: card.message ?? DECLINED,
      };
    }
    let customer = session.customer ? get("customer", session.customer) : null;
    if (!customer && session.mode !== "setup") {
      customer = createCustomer({ email: how.email || session.customer_email || undefined });
      session.customer = customer.id;
    }
    const pm = newPaymentMethod(card, how);
    pm._setUpOffSession = true; // authenticated on session, set up for later off-session use
    if (customer) {
      pm.customer = customer.id;
      emit("payment_method.attached", pm);
    }
    session.customer_details = {
      address: null,
      email: how.email || customer?.email || null,
      name: null,
      phone: null,
      tax_exempt: "none",
      tax_ids: [],
    };
    if (session.mode === "setup") {
      const si = get("setup_intent", session.setup_intent);
      si.payment_method = pm.id;
      si.status = "succeeded";
      touched(si);
      emit("setup_intent.succeeded", si);
      session.payment_status = "no_payment_required";
    } else if (session.mode === "subscription") {
      const items = session._line_items.map((/** @type {any} */ li) => ({
        price: get("price", li.price),
        quantity: li.quantity,
      }));
      const { sub, inv } = createSubscription(/** @type {any} */ (customer), items, {
        default_payment_method: pm.id,
        metadata: session._subscription_data?.metadata,
        description: session._subscription_data?.description,
      });
      session.subscription = sub.id;
      session.invoice = inv.id;
      if (inv.status === "open") {
        const r = payInvoice(inv, pm, { offSession: false, authenticated: true });
        if (!r.ok) return { ok: false, code: "card_declined", message: r.error.message };
      }
      session.payment_status = "paid";
    } else {
      const pi = newPaymentIntent({
        amount: session.amount_total,
        currency: session.currency,
        customer: customer?.id ?? null,
        payment_method: pm.id,
        metadata: session._payment_intent_data?.metadata,
        setup_future_usage: session._payment_intent_data?.setup_future_usage ?? null,
      });
      session.payment_intent = pi.id;
      const r = confirmIntent(pi, pm, { offSession: false, authenticated: true });
      if (!r.ok) return { ok: false, code: "card_declined", message: r.error.message };
      session.payment_status = "paid";
    }
    session.status = "complete";
    session.url = null;
    touched(session);
    emit("checkout.session.completed", session);
    return { ok: true };
  }

  // ----- the routes ----------------------------------------------------------------------------

  /**
   * @typedef {(ctx: { params: any, id: string, sub: string, apiKey: string }) => any} Handler
   * @typedef {{ method: string, pattern: RegExp, fields: Record<string, import("./params.mjs").Schema>, handler: Handler, idempotent?: boolean }} Route
   */
  /** @type {Route[]} */
  const routes = [];
  /**
   * @param {string} method @param {string} path `/v1/invoices/:id/pay`
   * @param {Record<string, import("./params.mjs").Schema>} fields @param {Handler} handler
   */
  const route = (method, path, fields, handler) => {
    const pattern = new RegExp(`^${path.replace(/:id/, "([^/]+)").replace(/:sub/, "([^/]+)")}$`);
    routes.push({ method, pattern, fields, handler });
  };

  // customers
  route("POST", "/v1/customers", { ...customerFields, payment_method: str }, ({ params }) =>
    out(createCustomer(params), params.expand),
  );
  route("GET", "/v1/customers", { email: str, created: range, ...LIST }, ({ params }) => {
    let items = [...store("customer").values()].filter((c) => !c.deleted);
    if (params.email !== undefined) items = items.filter((c) => c.email === params.email);
    return listOf(createdFilter(items, params.created), params, "/v1/customers");
  });
  route(
    "GET",
    "/v1/customers/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "customer",
        "customers",
        ["created", "email", "metadata", "name", "phone"],
        plainField,
        params,
      ),
  );
  route("GET", "/v1/customers/:id", { expand }, ({ params, id }) => {
    const c = get("customer", id);
    return c.deleted ? { id: c.id, object: "customer", deleted: true } : out(c, params.expand);
  });
  route("POST", "/v1/customers/:id", customerFields, ({ params, id }) => {
    const c = get("customer", id);
    if (c.deleted) throw missing("customer", id);
    const before = clone(render(c));
    const previous = applyUpdates(c, params, [
      "email",
      "name",
      "description",
      "phone",
      "metadata",
      "preferred_locales",
    ]);
    if (params.address !== undefined) {
      previous.address = before.address;
      c.address =
        params.address === ""
          ? null
          : {
              line1: null,
              line2: null,
              city: null,
              state: null,
              postal_code: null,
              country: null,
              ...params.address,
            };
    }
    if (params.invoice_settings !== undefined) {
      applyInvoiceSettings(c, params.invoice_settings);
      if (stable(before.invoice_settings) !== stable(c.invoice_settings))
        previous.invoice_settings = before.invoice_settings;
    }
    if (Object.keys(previous).length > 0) {
      touched(c);
      emit("customer.updated", c, previous);
    }
    return out(c, params.expand);
  });
  route("DELETE", "/v1/customers/:id", {}, ({ id }) => {
    const c = get("customer", id);
    if (c.deleted) throw missing("customer", id);
    c.deleted = true;
    emit("customer.deleted", c);
    for (const sub of store("subscription").values())
      if (sub.customer === id && sub.status !== "canceled" && sub.status !== "incomplete_expired")
        cancelSubscription(sub, "cancellation_requested");
    return { id, object: "customer", deleted: true };
  });
  route("GET", "/v1/customers/:id/payment_methods", { type: str, ...LIST }, ({ params, id }) => {
    get("customer", id);
    let items = [...store("payment_method").values()].filter((p) => p.customer === id);
    if (params.type) items = items.filter((p) => p.type === params.type);
    return listOf(items, params, `/v1/customers/${id}/payment_methods`);
  });

  // payment methods
  route(
    "POST",
    "/v1/payment_methods",
    {
      type: required(oneOf("card")),
      card: obj({ token: str, number: str, exp_month: int, exp_year: int, cvc: str }),
      billing_details: obj({
        name: str,
        email: str,
        phone: str,
        address: obj({
          line1: str,
          line2: str,
          city: str,
          state: str,
          postal_code: str,
          country: str,
        }),
      }),
      metadata,
      allow_redisplay: oneOf("always", "limited", "unspecified"),
      expand,
    },
    ({ params }) => {
      if (!params.card)
        throw invalid("Missing required param: card.", {
          code: "parameter_missing",
          param: "card",
        });
      if (params.card.number)
        throw invalid(
          "Sending credit card numbers directly to the Stripe API is generally unsafe. To continue processing use Stripe.js, the Stripe mobile bindings, or Stripe Elements. For more information, see https://dashboard.stripe.com/account/integration/settings. If you are qualified to handle card data directly, see https://support.stripe.com/questions/enabling-access-to-raw-card-data-apis.",
          { param: "card[number]" },
        );
      const card = params.card.token ? testCardOf(params.card.token) : null;
      if (!card) throw missing("token", params.card.token ?? "", "card[token]");
      const pm = newPaymentMethod(card);
      if (params.metadata) pm.metadata = mergeMetadata({}, params.metadata);
      if (params.billing_details) Object.assign(pm.billing_details, params.billing_details);
      return out(pm, params.expand);
    },
  );
  route("GET", "/v1/payment_methods", { customer: str, type: str, ...LIST }, ({ params }) => {
    let items = [...store("payment_method").values()];
    if (params.customer !== undefined) {
      get("customer", params.customer, "customer");
      items = items.filter((p) => p.customer === params.customer);
    } else items = items.filter((p) => p.customer !== null);
    if (params.type) items = items.filter((p) => p.type === params.type);
    return listOf(items, params, "/v1/payment_methods");
  });
  route("GET", "/v1/payment_methods/:id", { expand }, ({ params, id }) =>
    out(paymentMethodFor(id, "payment_method"), params.expand),
  );
  route(
    "POST",
    "/v1/payment_methods/:id",
    {
      metadata,
      billing_details: obj({ name: str, email: str, phone: str }),
      card: obj({ exp_month: int, exp_year: int }),
      allow_redisplay: oneOf("always", "limited", "unspecified"),
      expand,
    },
    ({ params, id }) => {
      const pm = get("payment_method", id);
      if (!pm.customer)
        throw invalid("You must save this PaymentMethod to a customer before you can update it.");
      const previous = applyUpdates(pm, params, ["metadata", "allow_redisplay"]);
      if (params.card) {
        previous.card = clone(pm.card);
        Object.assign(pm.card, params.card);
      }
      if (Object.keys(previous).length) emit("payment_method.updated", pm, previous);
      return out(pm, params.expand);
    },
  );
  route(
    "POST",
    "/v1/payment_methods/:id/attach",
    { customer: required(str), expand },
    ({ params, id }) => {
      const customer = get("customer", params.customer, "customer");
      return out(attach(id, customer, "payment_method"), params.expand);
    },
  );
  route("POST", "/v1/payment_methods/:id/detach", { expand }, ({ params, id }) => {
    const pm = get("payment_method", id);
    if (!pm.customer)
      throw invalid(
        "The payment method you provided is not attached to a customer so detachment is impossible.",
        { code: "payment_method_unexpected_state" },
      );
    const previous = { customer: pm.customer };
    const customer = get("customer", pm.customer);
    pm.customer = null;
    emit("payment_method.detached", pm, previous);
    if (customer.invoice_settings.default_payment_method === pm.id) {
      const prev = { invoice_settings: clone(customer.invoice_settings) };
      customer.invoice_settings.default_payment_method = null;
      emit("customer.updated", customer, prev);
    }
    return out(pm, params.expand);
  });

  // setup intents and payment intents (read only: they are made by Checkout and invoices)
  route("GET", "/v1/setup_intents/:id", { expand, client_secret: str }, ({ params, id }) =>
    out(get("setup_intent", id), params.expand),
  );
  route(
    "GET",
    "/v1/setup_intents",
    { customer: str, payment_method: str, created: range, attach_to_self: bool, ...LIST },
    ({ params }) => {
      let items = [...store("setup_intent").values()];
      if (params.customer) items = items.filter((s) => s.customer === params.customer);
      if (params.payment_method)
        items = items.filter((s) => s.payment_method === params.payment_method);
      return listOf(createdFilter(items, params.created), params, "/v1/setup_intents");
    },
  );
  route("GET", "/v1/payment_intents/:id", { expand, client_secret: str }, ({ params, id }) =>
    out(get("payment_intent", id), params.expand),
  );
  route("GET", "/v1/payment_intents", { customer: str, created: range, ...LIST }, ({ params }) => {
    let items = [...store("payment_intent").values()];
    if (params.customer) items = items.filter((s) => s.customer === params.customer);
    return listOf(createdFilter(items, params.created), params, "/v1/payment_intents");
  });
  route(
    "GET",
    "/v1/payment_intents/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "payment_intent",
        "payment_intents",
        ["amount", "created", "currency", "customer", "metadata", "status"],
        plainField,
        params,
      ),
  );

  // products
  route(
    "POST",
    "/v1/products",
    {
      ...productFields,
      id: str,
      name: required(str),
      default_price_data: obj({
        currency: required(str),
        unit_amount: int,
        recurring: obj({
          interval: required(oneOf("day", "week", "month", "year")),
          interval_count: int,
        }),
      }),
    },
    ({ params }) => {
      const product = createProduct(params);
      if (params.default_price_data) {
        const price = createPrice({ ...params.default_price_data, product: product.id });
        product.default_price = price.id;
      }
      return out(product, params.expand);
    },
  );
  route(
    "GET",
    "/v1/products",
    { active: bool, ids: list(str), url: str, shippable: bool, created: range, ...LIST },
    ({ params }) => {
      let items = [...store("product").values()].filter((p) => !p.deleted);
      if (params.active !== undefined) items = items.filter((p) => p.active === params.active);
      if (params.ids) items = items.filter((p) => params.ids.includes(p.id));
      if (params.url !== undefined) items = items.filter((p) => p.url === params.url);
      if (params.shippable !== undefined)
        items = items.filter((p) => p.shippable === params.shippable);
      return listOf(createdFilter(items, params.created), params, "/v1/products");
    },
  );
  route(
    "GET",
    "/v1/products/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "product",
        "products",
        ["active", "description", "name", "shippable", "metadata", "url"],
        plainField,
        params,
      ),
  );
  route("GET", "/v1/products/:id", { expand }, ({ params, id }) => {
    const p = get("product", id);
    if (p.deleted) throw missing("product", id);
    return out(p, params.expand);
  });
  route("POST", "/v1/products/:id", { ...productFields, default_price: str }, ({ params, id }) => {
    const p = get("product", id);
    if (p.deleted) throw missing("product", id);
    if (params.name === "")
      throw invalid("You passed an empty string for 'name'.", {
        code: "parameter_invalid_empty",
        param: "name",
      });
    if (params.default_price) {
      const price = get("price", params.default_price, "default_price");
      if (price.product !== p.id)
        throw invalid("The price must belong to this product.", { param: "default_price" });
    }
    const previous = applyUpdates(p, params, [
      "name",
      "description",
      "metadata",
      "active",
      "images",
      "url",
      "statement_descriptor",
      "unit_label",
      "tax_code",
      "shippable",
      "default_price",
      "marketing_features",
    ]);
    if (Object.keys(previous).length) {
      p.updated = nowSeconds();
      touched(p);
      emit("product.updated", p, previous);
    }
    return out(p, params.expand);
  });
  route("DELETE", "/v1/products/:id", {}, ({ id }) => {
    const p = get("product", id);
    if (p.deleted) throw missing("product", id);
    if ([...store("price").values()].some((x) => x.product === id))
      throw invalid(
        "This product cannot be deleted because it has one or more user-created prices.",
      );
    p.deleted = true;
    emit("product.deleted", p);
    return { id, object: "product", deleted: true };
  });

  // prices
  const recurringSchema = obj({
    interval: required(oneOf("day", "week", "month", "year")),
    interval_count: int,
    usage_type: oneOf("licensed", "metered"),
    trial_period_days: int,
    meter: str,
  });
  /** @param {any} p */
  function createPrice(p) {
    if (!p.product && !p.product_data)
      throw invalid("You must specify either `product` or `product_data` when creating a price.", {
        param: "product",
      });
    if (p.product && p.product_data)
      throw invalid("You may only specify one of these parameters: product, product_data.", {
        param: "product_data",
      });
    const product = p.product
      ? get("product", p.product, "product")
      : createProduct(p.product_data);
    if (product.deleted) throw missing("product", product.id, "product");
    if (
      (p.billing_scheme ?? "per_unit") === "per_unit" &&
      p.unit_amount === undefined &&
      p.unit_amount_decimal === undefined &&
      !p.custom_unit_amount
    )
      throw invalid("Missing required param: unit_amount.", {
        code: "parameter_missing",
        param: "unit_amount",
      });
    if (p.unit_amount !== undefined && p.unit_amount < 0)
      throw invalid("This value must be greater than or equal to 0.", { param: "unit_amount" });
    if (p.recurring && (p.recurring.interval_count ?? 1) < 1)
      throw invalid("Invalid interval_count", { param: "recurring[interval_count]" });
    const currency = p.currency.toLowerCase();
    if (!/^[a-z]{3}$/.test(currency))
      throw invalid(`Invalid currency: ${p.currency}.`, { param: "currency" });
    const price = {
      id: newId("price"),
      object: "price",
      active: p.active ?? true,
      billing_scheme: p.billing_scheme ?? "per_unit",
      created: nowSeconds(),
      currency,
      custom_unit_amount: null,
      livemode: false,
      lookup_key: null,
      metadata: mergeMetadata({}, p.metadata),
      nickname: p.nickname || null,
      product: product.id,
      recurring: p.recurring
        ? {
            interval: p.recurring.interval,
            interval_count: p.recurring.interval_count ?? 1,
            meter: p.recurring.meter ?? null,
            trial_period_days: p.recurring.trial_period_days ?? null,
            usage_type: p.recurring.usage_type ?? "licensed",
          }
        : null,
      tax_behavior: p.tax_behavior ?? "unspecified",
      tiers_mode: null,
      transform_quantity: null,
      type: p.recurring ? "recurring" : "one_time",
      unit_amount:
        p.unit_amount ?? (p.unit_amount_decimal ? Math.round(Number(p.unit_amount_decimal)) : null),
      unit_amount_decimal:
        p.unit_amount_decimal ?? (p.unit_amount !== undefined ? String(p.unit_amount) : null),
    };
    setLookupKey(price, p.lookup_key, p.transfer_lookup_key === true);
    put(price);
    emit("price.created", price);
    return price;
  }
  route(
    "POST",
    "/v1/prices",
    {
      currency: required(str),
      product: str,
      product_data: obj({
        name: required(str),
        active: bool,
        metadata,
        statement_descriptor: str,
        unit_label: str,
        tax_code: str,
        id: str,
      }),
      unit_amount: int,
      unit_amount_decimal: str,
      recurring: recurringSchema,
      lookup_key: str,
      transfer_lookup_key: bool,
      nickname: str,
      metadata,
      active: bool,
      tax_behavior: oneOf("inclusive", "exclusive", "unspecified"),
      billing_scheme: oneOf("per_unit", "tiered"),
      expand,
    },
    ({ params }) => out(createPrice(params), params.expand),
  );
  route(
    "GET",
    "/v1/prices",
    {
      active: bool,
      currency: str,
      product: str,
      type: oneOf("one_time", "recurring"),
      lookup_keys: list(str),
      recurring: obj({
        interval: oneOf("day", "week", "month", "year"),
        usage_type: oneOf("licensed", "metered"),
        meter: str,
      }),
      created: range,
      ...LIST,
    },
    ({ params }) => {
      if (params.lookup_keys && params.lookup_keys.length > 10)
        throw invalid("You may only specify up to 10 lookup keys.", { param: "lookup_keys" });
      let items = [...store("price").values()];
      if (params.active !== undefined) items = items.filter((p) => p.active === params.active);
      if (params.currency) items = items.filter((p) => p.currency === params.currency);
      if (params.product) items = items.filter((p) => p.product === params.product);
      if (params.type) items = items.filter((p) => p.type === params.type);
      if (params.lookup_keys)
        items = items.filter((p) => params.lookup_keys.includes(p.lookup_key));
      if (params.recurring?.interval)
        items = items.filter((p) => p.recurring?.interval === params.recurring.interval);
      return listOf(createdFilter(items, params.created), params, "/v1/prices");
    },
  );
  route(
    "GET",
    "/v1/prices/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "price",
        "prices",
        ["active", "currency", "lookup_key", "metadata", "product", "type"],
        plainField,
        params,
      ),
  );
  route("GET", "/v1/prices/:id", { expand }, ({ params, id }) =>
    out(get("price", id), params.expand),
  );
  route(
    "POST",
    "/v1/prices/:id",
    {
      active: bool,
      metadata,
      nickname: str,
      lookup_key: str,
      transfer_lookup_key: bool,
      tax_behavior: oneOf("inclusive", "exclusive", "unspecified"),
      expand,
    },
    ({ params, id }) => {
      const price = get("price", id);
      const prevKey = price.lookup_key;
      if (params.lookup_key !== undefined)
        setLookupKey(price, params.lookup_key, params.transfer_lookup_key === true);
      const previous = applyUpdates(price, params, [
        "active",
        "metadata",
        "nickname",
        "tax_behavior",
      ]);
      if (prevKey !== price.lookup_key) previous.lookup_key = prevKey;
      if (Object.keys(previous).length) {
        touched(price);
        emit("price.updated", price, previous);
      }
      return out(price, params.expand);
    },
  );

  // customer portal
  const cancellationReasons = oneOf(
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
  );
  const portalFeatures = obj({
    customer_update: obj({
      enabled: required(bool),
      allowed_updates: list(oneOf("address", "email", "name", "phone", "shipping", "tax_id")),
    }),
    invoice_history: obj({ enabled: required(bool) }),
    payment_method_update: obj({ enabled: required(bool), payment_method_configuration: str }),
    subscription_cancel: obj({
      enabled: required(bool),
      mode: oneOf("at_period_end", "immediately"),
      proration_behavior: oneOf("always_invoice", "create_prorations", "none"),
      cancellation_reason: obj({ enabled: required(bool), options: list(cancellationReasons) }),
    }),
    subscription_update: obj({
      enabled: required(bool),
      default_allowed_updates: list(oneOf("price", "promotion_code", "quantity")),
      proration_behavior: oneOf("always_invoice", "create_prorations", "none"),
      products: list(
        obj({
          product: required(str),
          prices: required(list(str)),
          adjustable_quantity: obj({ enabled: required(bool), maximum: int, minimum: int }),
        }),
      ),
      schedule_at_period_end: obj({
        conditions: list(
          obj({ type: required(oneOf("decreasing_item_amount", "shortening_interval")) }),
        ),
      }),
      billing_cycle_anchor: oneOf("now", "unchanged"),
      trial_update_behavior: oneOf("continue_trial", "end_trial"),
    }),
  });
  const portalFields = {
    business_profile: obj({ headline: str, privacy_policy_url: str, terms_of_service_url: str }),
    default_return_url: str,
    features: portalFeatures,
    login_page: obj({ enabled: required(bool) }),
    metadata,
    name: str,
    expand,
  };
  /** @param {any} features */
  function checkPortalFeatures(features) {
    const su = features?.subscription_update;
    if (su?.enabled) {
      if (!su.products?.length)
        throw invalid(
          "You must provide at least one product when subscription updates are enabled.",
          { param: "features[subscription_update][products]" },
        );
      if (!su.default_allowed_updates?.length)
        throw invalid(
          "You must provide at least one default allowed update when subscription updates are enabled.",
          { param: "features[subscription_update][default_allowed_updates]" },
        );
      su.products.forEach((/** @type {any} */ p, /** @type {number} */ i) => {
        get("product", p.product, `features[subscription_update][products][${i}][product]`);
        p.prices.forEach((/** @type {string} */ priceId, /** @type {number} */ j) => {
          const price = get(
            "price",
            priceId,
            `features[subscription_update][products][${i}][prices][${j}]`,
          );
          if (price.product !== p.product)
            throw invalid(`The price ${priceId} does not belong to the product ${p.product}.`, {
              param: `features[subscription_update][products][${i}][prices][${j}]`,
            });
          if (price.type !== "recurring")
            throw invalid(`The price ${priceId} is not a recurring price.`, {
              param: `features[subscription_update][products][${i}][prices][${j}]`,
            });
        });
      });
    }
  }
  /** @param {any} current @param {any} features */
  function mergeFeatures(current, features) {
    const f = clone(current);
    for (const [k, v] of Object.entries(features ?? {})) {
      if (v === "") continue;
      f[k] = { ...f[k], ...v };
      if (k === "subscription_update" && /** @type {any} */ (v).products)
        f[k].products = /** @type {any} */ (v).products.map((/** @type {any} */ p) => ({
          adjustable_quantity: { enabled: false, maximum: null, minimum: 1 },
          ...p,
        }));
      if (k === "subscription_cancel" && /** @type {any} */ (v).cancellation_reason)
        f[k].cancellation_reason = { options: [], .../** @type {any} */ (v).cancellation_reason };
    }
    return f;
  }
  const DEFAULT_FEATURES = {
    customer_update: { allowed_updates: [], enabled: false },
    invoice_history: { enabled: false },
    payment_method_update: { enabled: false, payment_method_configuration: null },
    subscription_cancel: {
      cancellation_reason: { enabled: false, options: [] },
      enabled: false,
      mode: "at_period_end",
      proration_behavior: "none",
    },
    subscription_update: {
      billing_cycle_anchor: null,
      default_allowed_updates: [],
      enabled: false,
      products: [],
      proration_behavior: "none",
      schedule_at_period_end: { conditions: [] },
      trial_update_behavior: "end_trial",
    },
  };
  route(
    "POST",
    "/v1/billing_portal/configurations",
    { ...portalFields, features: required(portalFeatures) },
    ({ params }) => {
      checkPortalFeatures(params.features);
      const t = nowSeconds();
      const isFirst = [...store("billing_portal.configuration").values()].length === 0;
      const config = put({
        id: newId("bpc"),
        object: "billing_portal.configuration",
        active: true,
        application: null,
        business_profile: {
          headline: null,
          privacy_policy_url: null,
          terms_of_service_url: null,
          ...(params.business_profile || {}),
        },
        created: t,
        default_return_url: params.default_return_url || null,
        features: mergeFeatures(DEFAULT_FEATURES, params.features),
        is_default: isFirst,
        livemode: false,
        login_page: { enabled: params.login_page?.enabled ?? false, url: null },
        metadata: mergeMetadata({}, params.metadata),
        name: params.name || null,
        updated: t,
      });
      emit("billing_portal.configuration.created", config);
      return out(config, params.expand);
    },
  );
  route(
    "GET",
    "/v1/billing_portal/configurations",
    { active: bool, is_default: bool, ...LIST },
    ({ params }) => {
      let items = [...store("billing_portal.configuration").values()];
      if (params.active !== undefined) items = items.filter((c) => c.active === params.active);
      if (params.is_default !== undefined)
        items = items.filter((c) => c.is_default === params.is_default);
      return listOf(items, params, "/v1/billing_portal/configurations");
    },
  );
  route("GET", "/v1/billing_portal/configurations/:id", { expand }, ({ params, id }) =>
    out(get("billing_portal.configuration", id), params.expand),
  );
  route(
    "POST",
    "/v1/billing_portal/configurations/:id",
    { ...portalFields, active: bool },
    ({ params, id }) => {
      const config = get("billing_portal.configuration", id);
      if (params.features) checkPortalFeatures(params.features);
      const previous = applyUpdates(config, params, [
        "active",
        "default_return_url",
        "metadata",
        "name",
      ]);
      if (params.business_profile !== undefined) {
        previous.business_profile = clone(config.business_profile);
        config.business_profile = {
          ...config.business_profile,
          ...(params.business_profile || {}),
        };
      }
      if (params.features !== undefined) {
        previous.features = clone(config.features);
        config.features = mergeFeatures(config.features, params.features);
      }
      if (params.login_page !== undefined) config.login_page.enabled = params.login_page.enabled;
      config.updated = nowSeconds();
      emit("billing_portal.configuration.updated", config, previous);
      return out(config, params.expand);
    },
  );
  route(
    "POST",
    "/v1/billing_portal/sessions",
    {
      customer: required(str),
      return_url: str,
      configuration: str,
      locale: str,
      on_behalf_of: str,
      flow_data: obj({
        type: required(
          oneOf(
            "payment_method_update",
            "subscription_cancel",
            "subscription_update",
            "subscription_update_confirm",
          ),
        ),
        after_completion: obj({
          type: required(oneOf("hosted_confirmation", "portal_homepage", "redirect")),
          redirect: obj({ return_url: required(str) }),
          hosted_confirmation: obj({ custom_message: str }),
        }),
        subscription_cancel: obj({
          subscription: required(str),
          retention: obj({ type: required(str), coupon_offer: obj({ coupon: required(str) }) }),
        }),
        subscription_update: obj({ subscription: required(str) }),
        subscription_update_confirm: obj({
          subscription: required(str),
          items: required(list(obj({ id: required(str), price: str, quantity: int }))),
          discounts: list(obj({ coupon: str, promotion_code: str })),
        }),
      }),
      expand,
    },
    ({ params }) => {
      const customer = get("customer", params.customer, "customer");
      if (customer.deleted) throw missing("customer", params.customer, "customer");
      let config;
      if (params.configuration) {
        config = get("billing_portal.configuration", params.configuration, "configuration");
        if (!config.active)
          throw invalid("The configuration provided is not active.", { param: "configuration" });
      } else {
        config = [...store("billing_portal.configuration").values()].find((c) => c.is_default);
        if (!config)
          throw invalid(
            "No configuration provided and your test mode default configuration has not been created. Provide a configuration or create your default by saving your customer portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal.",
          );
      }
      const returnUrl = params.return_url || config.default_return_url;
      if (!returnUrl)
        throw invalid(
          "Missing required param: return_url (the configuration has no default_return_url).",
          { param: "return_url" },
        );
      if (params.flow_data?.subscription_cancel)
        get(
          "subscription",
          params.flow_data.subscription_cancel.subscription,
          "flow_data[subscription_cancel][subscription]",
        );
      const id = newId("bps");
      const session = put({
        id,
        object: "billing_portal.session",
        configuration: config.id,
        created: nowSeconds(),
        customer: customer.id,
        flow: params.flow_data ? clone(params.flow_data) : null,
        livemode: false,
        locale: params.locale ?? null,
        on_behalf_of: params.on_behalf_of ?? null,
        return_url: returnUrl,
        url: `${base}/p/session/${id}`,
      });
      return out(session, params.expand);
    },
  );

  // webhook endpoints and events
  /** @param {string[]} events */
  function checkEvents(events) {
    events.forEach((e, i) => {
      if (!KNOWN_EVENTS.has(e))
        throw invalid(`Invalid enabled_events[${i}]: ${e} is not a valid event type.`, {
          param: `enabled_events[${i}]`,
        });
    });
  }
  /** @param {string} url @param {string} param */
  function checkUrl(url, param) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(`Invalid URL: ${url}`, { param, code: "url_invalid" });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw invalid(`Invalid URL: ${url}. URLs must begin with http or https.`, {
        param,
        code: "url_invalid",
      });
  }
  route(
    "POST",
    "/v1/webhook_endpoints",
    {
      url: required(str),
      enabled_events: required(list(str)),
      api_version: str,
      description: str,
      metadata,
      connect: bool,
      expand,
    },
    ({ params }) => {
      checkUrl(params.url, "url");
      if (params.enabled_events.length === 0)
        throw invalid("Missing required param: enabled_events.", {
          code: "parameter_missing",
          param: "enabled_events",
        });
      checkEvents(params.enabled_events);
      const secret = `whsec_${randomBytes(24).toString("hex")}`;
      const endpoint = put({
        id: newId("we"),
        object: "webhook_endpoint",
        api_version: params.api_version ?? null,
        application: null,
        created: nowSeconds(),
        description: params.description || null,
        enabled_events: params.enabled_events,
        livemode: false,
        metadata: mergeMetadata({}, params.metadata),
        status: "enabled",
        url: params.url,
        _secret: secret,
        _chain: Promise.resolve(),
      });
      // The secret is returned only when the endpoint is created.
      return { ...out(endpoint, params.expand), secret };
    },
  );
  route("GET", "/v1/webhook_endpoints", LIST, ({ params }) =>
    listOf([...store("webhook_endpoint").values()], params, "/v1/webhook_endpoints"),
  );
  route("GET", "/v1/webhook_endpoints/:id", { expand }, ({ params, id }) =>
    out(get("webhook_endpoint", id), params.expand),
  );
  route(
    "POST",
    "/v1/webhook_endpoints/:id",
    { url: str, enabled_events: list(str), description: str, metadata, disabled: bool, expand },
    ({ params, id }) => {
      const e = get("webhook_endpoint", id);
      if (params.url !== undefined) {
        checkUrl(params.url, "url");
        e.url = params.url;
      }
      if (params.enabled_events !== undefined) {
        checkEvents(params.enabled_events);
        e.enabled_events = params.enabled_events;
      }
      if (params.description !== undefined) e.description = params.description || null;
      if (params.metadata !== undefined) e.metadata = mergeMetadata(e.metadata, params.metadata);
      if (params.disabled !== undefined) e.status = params.disabled ? "disabled" : "enabled";
      return out(e, params.expand);
    },
  );
  route("DELETE", "/v1/webhook_endpoints/:id", {}, ({ id }) => {
    get("webhook_endpoint", id);
    store("webhook_endpoint").delete(id);
    return { id, object: "webhook_endpoint", deleted: true };
  });
  route(
    "GET",
    "/v1/events",
    { type: str, types: list(str), created: range, delivery_success: bool, ...LIST },
    ({ params }) => {
      if (params.type && params.types)
        throw invalid("You may only specify one of these parameters: type, types.");
      /** @param {string} pattern @param {string} type */
      const like = (pattern, type) =>
        pattern.endsWith(".*") ? type.startsWith(pattern.slice(0, -1)) : pattern === type;
      let items = [...store("event").values()];
      if (params.type) items = items.filter((e) => like(params.type, e.type));
      if (params.types)
        items = items.filter((e) =>
          params.types.some((/** @type {string} */ t) => like(t, e.type)),
        );
      if (params.delivery_success !== undefined)
        items = items.filter((e) => (e.pending_webhooks === 0) === params.delivery_success);
      return listOf(createdFilter(items, params.created), params, "/v1/events");
    },
  );
  route("GET", "/v1/events/:id", { expand }, ({ params, id }) =>
    out(get("event", id), params.expand),
  );

  // Checkout
  const lineItemSchema = obj({
    price: str,
    quantity: int,
    adjustable_quantity: obj({ enabled: required(bool), maximum: int, minimum: int }),
    price_data: obj({
      currency: required(str),
      product: str,
      product_data: obj({ name: required(str), description: str, metadata }),
      unit_amount: int,
      recurring: obj({
        interval: required(oneOf("day", "week", "month", "year")),
        interval_count: int,
      }),
      tax_behavior: oneOf("inclusive", "exclusive", "unspecified"),
    }),
    tax_rates: list(str),
  });
  route(
    "POST",
    "/v1/checkout/sessions",
    {
      mode: oneOf("payment", "setup", "subscription"),
      ui_mode: oneOf("hosted", "embedded", "custom"),
      customer: str,
      customer_email: str,
      customer_creation: oneOf("always", "if_required"),
      client_reference_id: str,
      line_items: list(lineItemSchema),
      payment_method_collection: oneOf("always", "if_required"),
      payment_method_types: list(str),
      success_url: str,
      cancel_url: str,
      return_url: str,
      metadata,
      currency: str,
      expires_at: int,
      allow_promotion_codes: bool,
      billing_address_collection: oneOf("auto", "required"),
      locale: str,
      customer_update: obj({
        address: oneOf("auto", "never"),
        name: oneOf("auto", "never"),
        shipping: oneOf("auto", "never"),
      }),
      subscription_data: obj({
        metadata,
        description: str,
        trial_period_days: int,
        default_tax_rates: list(str),
        billing_cycle_anchor: int,
        proration_behavior: oneOf("create_prorations", "none"),
      }),
      setup_intent_data: obj({ metadata, description: str, on_behalf_of: str }),
      payment_intent_data: obj({
        metadata,
        description: str,
        setup_future_usage: oneOf("on_session", "off_session"),
        capture_method: oneOf("automatic", "automatic_async", "manual"),
        receipt_email: str,
        statement_descriptor: str,
      }),
      automatic_tax: obj({ enabled: required(bool) }),
      tax_id_collection: obj({ enabled: required(bool) }),
      saved_payment_method_options: obj({
        payment_method_save: oneOf("enabled", "disabled"),
        payment_method_remove: oneOf("enabled", "disabled"),
        allow_redisplay_filters: list(oneOf("always", "limited", "unspecified")),
      }),
      consent_collection: obj({
        terms_of_service: oneOf("none", "required"),
        promotions: oneOf("auto", "none"),
      }),
      invoice_creation: obj({ enabled: required(bool) }),
      expand,
    },
    ({ params }) => {
      const mode = params.mode;
      if (!mode)
        throw invalid("Missing required param: mode.", {
          code: "parameter_missing",
          param: "mode",
        });
      const uiMode = params.ui_mode ?? "hosted";
      if (uiMode === "hosted" && params.return_url)
        throw invalid("You can only pass `return_url` if `ui_mode` is `embedded` or `custom`.", {
          param: "return_url",
        });
      if (uiMode !== "hosted" && (params.success_url || params.cancel_url))
        throw invalid(
          `\`success_url\` and \`cancel_url\` cannot be used with \`ui_mode: ${uiMode}\`.`,
          { param: params.success_url ? "success_url" : "cancel_url" },
        );
      if (params.customer && params.customer_email)
        throw invalid("You may only specify one of these parameters: customer, customer_email.", {
          param: "customer_email",
        });
      for (const u of ["success_url", "cancel_url"])
        if (params[u]) checkUrl(params[u].replace("{CHECKOUT_SESSION_ID}", "x"), u);
      const customer = params.customer ? get("customer", params.customer, "customer") : null;
      if (customer?.deleted) throw missing("customer", params.customer, "customer");
      if (mode !== "subscription" && params.subscription_data)
        throw invalid(`You can not pass \`subscription_data\` in \`${mode}\` mode.`, {
          param: "subscription_data",
        });
      if (mode !== "setup" && params.setup_intent_data)
        throw invalid(`You can not pass \`setup_intent_data\` in \`${mode}\` mode.`, {
          param: "setup_intent_data",
        });
      if (mode !== "payment" && params.payment_intent_data)
        throw invalid(`You can not pass \`payment_intent_data\` in \`${mode}\` mode.`, {
          param: "payment_intent_data",
        });
      if (mode !== "subscription" && params.payment_method_collection)
        throw invalid("`payment_method_collection` can only be set in `subscription` mode.", {
          param: "payment_method_collection",
        });
      /** @type {Array<{ price: string, quantity: number }>} */
      const lines = [];
      let currency = params.currency?.toLowerCase() ?? null;
      let amount = 0;
      if (mode === "setup") {
        if (params.line_items)
          throw invalid("You can not pass `line_items` in `setup` mode.", { param: "line_items" });
        if (!params.currency && !params.payment_method_types)
          throw invalid(
            "Missing required param: currency. `currency` is required in `setup` mode when `payment_method_types` is not set.",
            { code: "parameter_missing", param: "currency" },
          );
      } else {
        if (!params.line_items?.length)
          throw invalid(`\`line_items\` is required in \`${mode}\` mode.`, {
            code: "parameter_missing",
            param: "line_items",
          });
        params.line_items.forEach((/** @type {any} */ li, /** @type {number} */ i) => {
          if (!li.price && !li.price_data)
            throw invalid("You must specify either `price` or `price_data` for each line item.", {
              param: `line_items[${i}]`,
            });
          if (li.price_data)
            throw invalid(
              "This server does not model `price_data` in Checkout; create a Price first.",
              { param: `line_items[${i}][price_data]` },
            );
          if (li.quantity === undefined)
            throw invalid(`Quantity is required. Add \`quantity\` to \`line_items[${i}]\`.`, {
              code: "parameter_missing",
              param: `line_items[${i}][quantity]`,
            });
          if (li.quantity < 1)
            throw invalid("Quantity must be at least 1.", { param: `line_items[${i}][quantity]` });
          const price = get("price", li.price, `line_items[${i}][price]`);
          if (!price.active)
            throw invalid(
              `The price specified is inactive. This field only accepts active prices.`,
              { param: `line_items[${i}][price]` },
            );
          if (mode === "payment" && price.type === "recurring")
            throw invalid(
              "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
              { param: `line_items[${i}][price]` },
            );
          if (
            mode === "subscription" &&
            price.type !== "recurring" &&
            i === 0 &&
            params.line_items.every(
              (/** @type {any} */ x) => get("price", x.price).type !== "recurring",
            )
          )
            throw invalid(
              "You must provide at least one recurring price in `subscription` mode when using prices.",
              { param: "line_items" },
            );
          if (currency && price.currency !== currency)
            throw invalid("Currency of the line items does not match the session currency.", {
              param: `line_items[${i}][price]`,
            });
          currency = price.currency;
          amount += (price.unit_amount ?? 0) * li.quantity;
          lines.push({ price: price.id, quantity: li.quantity });
        });
      }
      const t = nowSeconds();
      if (
        params.expires_at !== undefined &&
        (params.expires_at < t + 1800 || params.expires_at > t + 86400)
      )
        throw invalid(
          "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
          { param: "expires_at" },
        );
      const id = `cs_test_${newId("x", 58).slice(2)}`;
      const session = put({
        id,
        object: "checkout.session",
        allow_promotion_codes: params.allow_promotion_codes ?? null,
        amount_subtotal: mode === "setup" ? null : amount,
        amount_total: mode === "setup" ? null : amount,
        billing_address_collection: params.billing_address_collection ?? null,
        cancel_url: params.cancel_url ?? null,
        client_reference_id: params.client_reference_id ?? null,
        created: t,
        currency,
        customer: customer?.id ?? null,
        customer_creation:
          mode === "payment" && !customer ? (params.customer_creation ?? "if_required") : null,
        customer_details: customer
          ? {
              address: null,
              email: customer.email,
              name: customer.name,
              phone: null,
              tax_exempt: "none",
              tax_ids: null,
            }
          : null,
        customer_email: params.customer_email ?? null,
        expires_at: params.expires_at ?? t + 86400,
        invoice: null,
        livemode: false,
        locale: params.locale ?? null,
        metadata: mergeMetadata({}, params.metadata),
        mode,
        payment_intent: null,
        payment_method_collection:
          mode === "subscription" ? (params.payment_method_collection ?? "always") : null,
        payment_method_types: params.payment_method_types ?? ["card"],
        payment_status: mode === "setup" ? "no_payment_required" : "unpaid",
        setup_intent: null,
        status: "open",
        submit_type: null,
        subscription: null,
        success_url: params.success_url ?? null,
        ui_mode: uiMode,
        url: uiMode === "hosted" ? `${base}/c/pay/${id}` : null,
        _line_items: lines,
        _subscription_data: params.subscription_data ?? null,
        _payment_intent_data: params.payment_intent_data ?? null,
      });
      if (mode === "setup") {
        const si = put({
          id: newId("seti"),
          object: "setup_intent",
          application: null,
          automatic_payment_methods: null,
          cancellation_reason: null,
          client_secret: `${newId("seti")}_secret_${randomBytes(12).toString("hex")}`,
          created: t,
          customer: customer?.id ?? null,
          description: params.setup_intent_data?.description ?? null,
          flow_directions: null,
          last_setup_error: null,
          latest_attempt: null,
          livemode: false,
          mandate: null,
          metadata: mergeMetadata({}, params.setup_intent_data?.metadata),
          next_action: null,
          on_behalf_of: null,
          payment_method: null,
          payment_method_options: {
            card: { mandate_options: null, network: null, request_three_d_secure: "automatic" },
          },
          payment_method_types: ["card"],
          single_use_mandate: null,
          status: "requires_payment_method",
          usage: "off_session",
        });
        session.setup_intent = si.id;
        emit("setup_intent.created", si);
      }
      return out(session, params.expand);
    },
  );
  route(
    "GET",
    "/v1/checkout/sessions",
    {
      customer: str,
      status: oneOf("open", "complete", "expired"),
      subscription: str,
      payment_intent: str,
      payment_link: str,
      created: range,
      customer_details: obj({ email: required(str) }),
      ...LIST,
    },
    ({ params }) => {
      let items = [...store("checkout.session").values()].map(expireIfDue);
      for (const f of ["customer", "status", "subscription", "payment_intent"])
        if (params[f] !== undefined) items = items.filter((s) => s[f] === params[f]);
      if (params.customer_details)
        items = items.filter((s) => s.customer_details?.email === params.customer_details.email);
      return listOf(createdFilter(items, params.created), params, "/v1/checkout/sessions");
    },
  );
  route("GET", "/v1/checkout/sessions/:id", { expand }, ({ params, id }) =>
    out(expireIfDue(get("checkout.session", id)), params.expand),
  );
  route("GET", "/v1/checkout/sessions/:id/line_items", LIST, ({ params, id }) => {
    const s = get("checkout.session", id);
    const items = s._line_items.map((/** @type {any} */ li, /** @type {number} */ i) => {
      const price = get("price", li.price);
      return {
        id: `li_${s.id.slice(8, 30)}${i}`,
        object: "item",
        amount_discount: 0,
        amount_subtotal: price.unit_amount * li.quantity,
        amount_tax: 0,
        amount_total: price.unit_amount * li.quantity,
        currency: price.currency,
        description: get("product", price.product).name,
        price: render(price),
        quantity: li.quantity,
        created: s.created,
        _seq: s._line_items.length - i,
      };
    });
    return listOf(items, params, `/v1/checkout/sessions/${id}/line_items`);
  });
  route("POST", "/v1/checkout/sessions/:id/expire", { expand }, ({ params, id }) => {
    const s = expireIfDue(get("checkout.session", id));
    if (s.status !== "open")
      throw invalid(`Only Checkout Sessions with a status in ["open"] can be expired.`, {
        code: "checkout_session_not_open",
      });
    s.status = "expired";
    s.url = null;
    touched(s);
    emit("checkout.session.expired", s);
    return out(s, params.expand);
  });

  // invoices
  const invoiceSearchField = (
    /** @type {any} */ o,
    /** @type {string} */ f,
    /** @type {string | null} */ k,
  ) =>
    k !== null
      ? o.metadata?.[k]
      : f === "subscription"
        ? (o.parent?.subscription_details?.subscription ?? null)
        : o[f];
  route(
    "POST",
    "/v1/invoices",
    {
      customer: str,
      auto_advance: bool,
      collection_method: oneOf("charge_automatically", "send_invoice"),
      pending_invoice_items_behavior: oneOf("exclude", "include"),
      default_payment_method: str,
      description: str,
      metadata,
      currency: str,
      days_until_due: int,
      due_date: int,
      subscription: str,
      footer: str,
      statement_descriptor: str,
      automatic_tax: obj({ enabled: required(bool) }),
      expand,
    },
    ({ params }) => {
      if (!params.customer)
        throw invalid("Missing required param: customer.", {
          code: "parameter_missing",
          param: "customer",
        });
      const customer = get("customer", params.customer, "customer");
      if (customer.deleted) throw missing("customer", params.customer, "customer");
      const method = params.collection_method ?? "charge_automatically";
      if (
        method === "send_invoice" &&
        params.days_until_due === undefined &&
        params.due_date === undefined
      )
        throw invalid(
          "Invoices with `collection_method=send_invoice` must have either a `days_until_due` or `due_date`.",
          { param: "days_until_due" },
        );
      if (
        method === "charge_automatically" &&
        (params.days_until_due !== undefined || params.due_date !== undefined)
      )
        throw invalid(
          "Invoices with `collection_method=charge_automatically` cannot have a `days_until_due` or `due_date`.",
          { param: params.days_until_due !== undefined ? "days_until_due" : "due_date" },
        );
      if (params.default_payment_method) {
        const pm = get("payment_method", params.default_payment_method, "default_payment_method");
        if (pm.customer !== customer.id)
          throw invalid(
            `The PaymentMethod ${pm.id} does not belong to the Customer ${customer.id}. Please use a PaymentMethod attached to this customer.`,
            { param: "default_payment_method" },
          );
      }
      if (params.subscription)
        throw invalid("This server does not model invoices created for a subscription by hand.", {
          param: "subscription",
        });
      const inv = newInvoice(customer, { ...params, currency: params.currency?.toLowerCase() });
      if ((params.pending_invoice_items_behavior ?? "exclude") === "include") {
        for (const ii of store("invoiceitem").values()) {
          if (ii.customer === customer.id && ii.invoice === null && ii.currency === inv.currency) {
            ii.invoice = inv.id;
            addLine(inv, lineFromInvoiceItem(ii));
          }
        }
      }
      emit("invoice.created", inv);
      return out(inv, params.expand);
    },
  );
  route(
    "GET",
    "/v1/invoices",
    {
      customer: str,
      status: oneOf("draft", "open", "paid", "uncollectible", "void"),
      subscription: str,
      collection_method: oneOf("charge_automatically", "send_invoice"),
      created: range,
      due_date: range,
      ...LIST,
    },
    ({ params }) => {
      let items = [...store("invoice").values()].filter((i) => !i.deleted);
      if (params.customer) items = items.filter((i) => i.customer === params.customer);
      if (params.status) items = items.filter((i) => i.status === params.status);
      if (params.subscription)
        items = items.filter(
          (i) => i.parent?.subscription_details?.subscription === params.subscription,
        );
      if (params.collection_method)
        items = items.filter((i) => i.collection_method === params.collection_method);
      return listOf(createdFilter(items, params.created), params, "/v1/invoices");
    },
  );
  route(
    "GET",
    "/v1/invoices/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "invoice",
        "invoices",
        [
          "created",
          "currency",
          "customer",
          "metadata",
          "number",
          "receipt_number",
          "status",
          "subscription",
          "total",
        ],
        invoiceSearchField,
        params,
      ),
  );
  /** @param {string} id */
  const invoice = (id) => {
    const inv = get("invoice", id);
    if (inv.deleted) throw missing("invoice", id);
    return inv;
  };
  route("GET", "/v1/invoices/:id", { expand }, ({ params, id }) => out(invoice(id), params.expand));
  route("GET", "/v1/invoices/:id/lines", LIST, ({ params, id }) => {
    const inv = invoice(id);
    return listOf(
      inv._lines.map((/** @type {any} */ l, /** @type {number} */ i) => ({
        ...l,
        created: inv.created,
        _seq: inv._lines.length - i,
      })),
      params,
      `/v1/invoices/${id}/lines`,
    );
  });
  route(
    "POST",
    "/v1/invoices/:id",
    {
      description: str,
      metadata,
      auto_advance: bool,
      default_payment_method: str,
      footer: str,
      statement_descriptor: str,
      expand,
    },
    ({ params, id }) => {
      const inv = invoice(id);
      const draftOnly = [
        "description",
        "default_payment_method",
        "footer",
        "statement_descriptor",
      ].filter((f) => params[f] !== undefined);
      if (inv.status !== "draft" && draftOnly.length)
        throw invalid(`You can only update \`${draftOnly[0]}\` on draft invoices.`, {
          code: "invoice_not_editable",
          param: draftOnly[0],
        });
      if ((inv.status === "paid" || inv.status === "void") && params.auto_advance !== undefined)
        throw invalid("You cannot update `auto_advance` on a paid or void invoice.", {
          code: "invoice_not_editable",
          param: "auto_advance",
        });
      if (params.default_payment_method) {
        const pm = get("payment_method", params.default_payment_method, "default_payment_method");
        if (pm.customer !== inv.customer)
          throw invalid(
            `The PaymentMethod ${pm.id} does not belong to the Customer ${inv.customer}.`,
            { param: "default_payment_method" },
          );
      }
      const previous = applyUpdates(inv, params, [
        "description",
        "metadata",
        "auto_advance",
        "default_payment_method",
        "footer",
        "statement_descriptor",
      ]);
      if (Object.keys(previous).length) {
        touched(inv);
        emit("invoice.updated", inv, previous);
      }
      return out(inv, params.expand);
    },
  );
  route("DELETE", "/v1/invoices/:id", {}, ({ id }) => {
    const inv = invoice(id);
    if (inv.status !== "draft")
      throw invalid("You can only delete draft invoices.", { code: "invoice_not_editable" });
    inv.deleted = true;
    for (const ii of store("invoiceitem").values())
      if (ii.invoice === id) store("invoiceitem").delete(ii.id);
    emit("invoice.deleted", inv);
    return { id, object: "invoice", deleted: true };
  });
  route("POST", "/v1/invoices/:id/finalize", { auto_advance: bool, expand }, ({ params, id }) => {
    const inv = invoice(id);
    if (inv.status !== "draft")
      throw invalid(
        "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
        { code: "invoice_not_editable" },
      );
    if (params.auto_advance !== undefined) inv.auto_advance = params.auto_advance;
    finalize(inv);
    return out(inv, params.expand);
  });
  route(
    "POST",
    "/v1/invoices/:id/pay",
    {
      payment_method: str,
      off_session: bool,
      forgive: bool,
      paid_out_of_band: bool,
      source: str,
      mandate: str,
      expand,
    },
    ({ params, id }) => {
      const inv = invoice(id);
      if (inv.status === "paid")
        throw invalid("Invoice is already paid", { code: "invoice_not_editable" });
      if (inv.status === "void")
        throw invalid("You cannot pay a void invoice.", { code: "invoice_not_editable" });
      if (inv.status === "draft")
        throw invalid("You cannot pay a draft invoice. Finalize it first.", {
          code: "invoice_not_editable",
        });
      if (params.source)
        throw invalid("This server models PaymentMethods only, not Sources.", { param: "source" });
      if (params.paid_out_of_band) {
        if (params.payment_method)
          throw invalid(
            "You may only specify one of these parameters: paid_out_of_band, payment_method.",
          );
        markPaid(inv, null);
        return out(inv, params.expand);
      }
      const customer = get("customer", inv.customer);
      const sub = inv.parent?.subscription_details?.subscription
        ? get("subscription", inv.parent.subscription_details.subscription)
        : null;
      const pmId =
        params.payment_method ??
        inv.default_payment_method ??
        sub?.default_payment_method ??
        customer.invoice_settings.default_payment_method;
      if (!pmId)
        throw invalid(
          "This customer has no attached payment source or default payment method. Please consider adding a default payment method. For more information, visit https://docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-priority.",
          { param: "payment_method" },
        );
      const pm = get("payment_method", pmId, "payment_method");
      if (pm.customer !== inv.customer)
        throw invalid(
          `The PaymentMethod ${pm.id} does not belong to the Customer ${inv.customer}.`,
          { param: "payment_method" },
        );
      if (params.payment_method) {
        const pi = get("payment_intent", inv._pi);
        pi.payment_method = pm.id;
      }
      const r = payInvoice(inv, pm, {
        offSession: params.off_session === true,
        authenticated: false,
      });
      if (!r.ok) throw r.error;
      return out(inv, params.expand);
    },
  );
  route("POST", "/v1/invoices/:id/void", { expand }, ({ params, id }) => {
    const inv = invoice(id);
    if (inv.status !== "open" && inv.status !== "uncollectible")
      throw invalid(
        `You can only void invoices that are open or uncollectible; this one is ${inv.status}.`,
        { code: "invoice_not_editable" },
      );
    voidInvoice(inv);
    return out(inv, params.expand);
  });
  route("POST", "/v1/invoices/:id/mark_uncollectible", { expand }, ({ params, id }) => {
    const inv = invoice(id);
    if (inv.status !== "open")
      throw invalid(`You can only mark open invoices uncollectible; this one is ${inv.status}.`, {
        code: "invoice_not_editable",
      });
    const previous = { status: inv.status };
    inv.status = "uncollectible";
    inv.status_transitions.marked_uncollectible_at = nowSeconds();
    touched(inv);
    emit("invoice.marked_uncollectible", inv, previous);
    return out(inv, params.expand);
  });

  // invoice items
  route(
    "POST",
    "/v1/invoiceitems",
    {
      customer: required(str),
      invoice: str,
      pricing: obj({ price: str }),
      price_data: obj({
        currency: required(str),
        product: required(str),
        unit_amount: int,
        unit_amount_decimal: str,
        tax_behavior: oneOf("inclusive", "exclusive", "unspecified"),
      }),
      amount: int,
      currency: str,
      description: str,
      metadata,
      quantity: int,
      unit_amount_decimal: str,
      period: obj({ start: required(int), end: required(int) }),
      discountable: bool,
      subscription: str,
      tax_rates: list(str),
      expand,
    },
    ({ params }) => {
      const customer = get("customer", params.customer, "customer");
      const ways = ["pricing", "price_data", "amount", "unit_amount_decimal"].filter(
        (k) => params[k] !== undefined,
      );
      if (ways.length === 0)
        throw invalid(
          "You must specify either `amount`, `pricing[price]`, `price_data` or `unit_amount_decimal`.",
          { param: "amount" },
        );
      if (ways.length > 1)
        throw invalid(`You may only specify one of these parameters: ${ways.join(", ")}.`, {
          param: ways[1],
        });
      if (params.subscription)
        throw invalid("This server does not model invoice items for subscriptions.", {
          param: "subscription",
        });
      const inv = params.invoice ? invoice(params.invoice) : null;
      if (inv && inv.status !== "draft")
        throw invalid(
          `You can only add invoice items to draft invoices; ${inv.id} is ${inv.status}.`,
          { code: "invoice_not_editable", param: "invoice" },
        );
      if (inv && inv.customer !== customer.id)
        throw invalid(`The invoice ${inv.id} belongs to another customer.`, { param: "invoice" });
      const quantity = params.quantity ?? 1;
      let unit;
      let currency;
      let pricing = null;
      let description = params.description || null;
      if (params.pricing) {
        if (!params.pricing.price)
          throw invalid("Missing required param: pricing[price].", {
            code: "parameter_missing",
            param: "pricing[price]",
          });
        const price = get("price", params.pricing.price, "pricing[price]");
        if (price.type !== "one_time")
          throw invalid(
            "The price specified is set to `type=recurring` but this field only accepts prices with `type=one_time`.",
            { param: "pricing[price]" },
          );
        if (!price.active)
          throw invalid("The price specified is inactive. This field only accepts active prices.", {
            param: "pricing[price]",
          });
        unit = price.unit_amount;
        currency = price.currency;
        pricing = {
          price_details: { price: price.id, product: price.product },
          type: "price_details",
          unit_amount_decimal: price.unit_amount_decimal,
        };
        description ??= get("product", price.product).name;
      } else if (params.price_data) {
        get("product", params.price_data.product, "price_data[product]");
        unit = params.price_data.unit_amount ?? Number(params.price_data.unit_amount_decimal ?? 0);
        currency = params.price_data.currency.toLowerCase();
      } else if (params.amount !== undefined) {
        currency = params.currency?.toLowerCase() ?? customer.currency;
        if (!currency)
          throw invalid("Missing required param: currency.", {
            code: "parameter_missing",
            param: "currency",
          });
        unit = params.amount;
        if (params.quantity !== undefined)
          throw invalid("You may not specify `quantity` with `amount`.", { param: "quantity" });
      } else {
        currency = params.currency?.toLowerCase() ?? customer.currency;
        if (!currency)
          throw invalid("Missing required param: currency.", {
            code: "parameter_missing",
            param: "currency",
          });
        unit = Number(params.unit_amount_decimal);
      }
      if (inv && inv.currency !== currency)
        throw invalid(
          `The currency of the invoice item (${currency}) does not match the invoice's (${inv.currency}).`,
          { param: "currency" },
        );
      const t = nowSeconds();
      const ii = put({
        id: newId("ii"),
        object: "invoiceitem",
        amount: Math.round(unit * quantity),
        currency,
        customer: customer.id,
        date: t,
        description,
        discountable: params.discountable ?? true,
        discounts: [],
        invoice: inv?.id ?? null,
        livemode: false,
        metadata: mergeMetadata({}, params.metadata),
        parent: null,
        period: params.period ?? { end: t, start: t },
        pricing,
        proration: false,
        quantity,
        tax_rates: [],
        test_clock: null,
        created: t,
      });
      if (inv) addLine(inv, lineFromInvoiceItem(ii));
      emit("invoiceitem.created", ii);
      return out(ii, params.expand);
    },
  );
  route(
    "GET",
    "/v1/invoiceitems",
    { customer: str, invoice: str, pending: bool, created: range, ...LIST },
    ({ params }) => {
      let items = [...store("invoiceitem").values()];
      if (params.customer) items = items.filter((i) => i.customer === params.customer);
      if (params.invoice) items = items.filter((i) => i.invoice === params.invoice);
      if (params.pending !== undefined)
        items = items.filter((i) => (i.invoice === null) === params.pending);
      return listOf(createdFilter(items, params.created), params, "/v1/invoiceitems");
    },
  );
  route("GET", "/v1/invoiceitems/:id", { expand }, ({ params, id }) =>
    out(get("invoiceitem", id), params.expand),
  );
  route("DELETE", "/v1/invoiceitems/:id", {}, ({ id }) => {
    const ii = get("invoiceitem", id);
    if (ii.invoice) {
      const inv = invoice(ii.invoice);
      if (inv.status !== "draft")
        throw invalid("You can only delete invoice items on draft invoices.", {
          code: "invoice_not_editable",
        });
      inv._lines = inv._lines.filter(
        (/** @type {any} */ l) => l.parent?.invoice_item_details?.invoice_item !== id,
      );
      recomputeTotals(inv);
    }
    store("invoiceitem").delete(id);
    emit("invoiceitem.deleted", ii);
    return { id, object: "invoiceitem", deleted: true };
  });

  // subscriptions (made by Checkout; read, update, cancel)
  const SUB_STATUSES = [
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
  ];
  route(
    "GET",
    "/v1/subscriptions",
    {
      customer: str,
      price: str,
      status: oneOf(...SUB_STATUSES),
      collection_method: oneOf("charge_automatically", "send_invoice"),
      created: range,
      current_period_end: range,
      current_period_start: range,
      test_clock: str,
      automatic_tax: obj({ enabled: required(bool) }),
      ...LIST,
    },
    ({ params }) => {
      let items = [...store("subscription").values()];
      if (params.customer) items = items.filter((s) => s.customer === params.customer);
      if (params.price)
        items = items.filter((s) =>
          s.items.data.some((/** @type {any} */ i) => i.price.id === params.price),
        );
      const status = params.status;
      if (!status)
        items = items.filter((s) => s.status !== "canceled" && s.status !== "incomplete_expired");
      else if (status === "ended")
        items = items.filter((s) => s.status === "canceled" || s.status === "incomplete_expired");
      else if (status !== "all") items = items.filter((s) => s.status === status);
      return listOf(createdFilter(items, params.created), params, "/v1/subscriptions");
    },
  );
  route(
    "GET",
    "/v1/subscriptions/search",
    { query: required(str), limit: int, page: str, expand },
    ({ params }) =>
      searchOf(
        "subscription",
        "subscriptions",
        ["created", "metadata", "status"],
        plainField,
        params,
      ),
  );
  route("GET", "/v1/subscriptions/:id", { expand }, ({ params, id }) =>
    out(get("subscription", id), params.expand),
  );
  route(
    "POST",
    "/v1/subscriptions/:id",
    {
      cancel_at_period_end: bool,
      metadata,
      default_payment_method: str,
      description: str,
      cancellation_details: obj({ comment: str, feedback: str }),
      expand,
    },
    ({ params, id }) => {
      const sub = get("subscription", id);
      if (sub.status === "canceled" || sub.status === "incomplete_expired")
        throw invalid(
          `A canceled subscription can only update its cancellation_details and metadata.`,
        );
      if (params.default_payment_method) {
        const pm = get("payment_method", params.default_payment_method, "default_payment_method");
        if (pm.customer !== sub.customer)
          throw invalid(
            `The PaymentMethod ${pm.id} does not belong to the Customer ${sub.customer}.`,
            { param: "default_payment_method" },
          );
      }
      const previous = applyUpdates(sub, params, [
        "cancel_at_period_end",
        "metadata",
        "default_payment_method",
        "description",
      ]);
      if (params.cancel_at_period_end !== undefined) {
        const cancelAt = params.cancel_at_period_end ? sub.items.data[0].current_period_end : null;
        if (sub.cancel_at !== cancelAt) previous.cancel_at = sub.cancel_at;
        sub.cancel_at = cancelAt;
        sub.canceled_at = params.cancel_at_period_end ? nowSeconds() : null;
      }
      if (Object.keys(previous).length) {
        touched(sub);
        emit("customer.subscription.updated", sub, previous);
      }
      return out(sub, params.expand);
    },
  );
  route(
    "DELETE",
    "/v1/subscriptions/:id",
    {
      invoice_now: bool,
      prorate: bool,
      cancellation_details: obj({ comment: str, feedback: str }),
      expand,
    },
    ({ params, id }) => {
      const sub = get("subscription", id);
      if (sub.status === "canceled" || sub.status === "incomplete_expired")
        throw invalid(`No such subscription: '${id}' is already canceled.`, {
          code: "resource_missing",
        });
      cancelSubscription(sub, "cancellation_requested");
      return out(sub, params.expand);
    },
  );

  // ----- HTTP ----------------------------------------------------------------------------------

  const acceptedKeys = options.apiKeys ? new Set(options.apiKeys) : null;
  /** @type {Map<string, { method: string, path: string, params: string, status: number, body: any, requestId: string, at: number }>} */
  const idempotency = new Map();

  /** @param {http.IncomingMessage} req */
  function apiKeyOf(req) {
    const auth = req.headers.authorization ?? "";
    const bearer = /^Bearer (\S+)$/.exec(auth);
    if (bearer) return bearer[1];
    const basic = /^Basic (\S+)$/.exec(auth);
    if (basic) return Buffer.from(basic[1], "base64").toString().split(":")[0];
    return null;
  }

  /**
   * @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {URL} url
   * @param {string} body
   */
  function api(req, res, url, body) {
    const requestId = newId("req", 14);
    const method = req.method ?? "GET";
    const idemKey =
      typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : null;
    /** @type {RecordedRequest} */
    const record = {
      id: requestId,
      method,
      path: url.pathname,
      query: url.search,
      contentType: req.headers["content-type"],
      body,
      params: null,
      idempotencyKey: idemKey,
      stripeVersion:
        typeof req.headers["stripe-version"] === "string" ? req.headers["stripe-version"] : null,
      userAgent: req.headers["user-agent"] ?? null,
      status: 0,
      error: null,
      malformed: false,
      replayed: false,
      at: Date.now(),
    };
    requests.push(record);
    /** @param {number} status @param {any} payload @param {Record<string, string>} [extra] */
    const send = (status, payload, extra = {}) => {
      record.status = status;
      if (payload?.error)
        record.error = {
          type: payload.error.type,
          code: payload.error.code,
          param: payload.error.param,
          message: payload.error.message,
        };
      const text = JSON.stringify(payload, null, 2);
      res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(text),
        "Request-Id": requestId,
        "Stripe-Version": record.stripeVersion ?? DEFAULT_API_VERSION,
        "Access-Control-Allow-Origin": "*",
        ...(idemKey && method === "POST" ? { "Idempotency-Key": idemKey } : {}),
        ...extra,
      });
      res.end(text);
    };
    /** @param {StripeError} err @param {boolean} malformed */
    const fail = (err, malformed) => {
      record.malformed = malformed;
      send(err.status, {
        error: { ...err.body().error, request_log_url: `${base}/logs/${requestId}` },
      });
    };

    const apiKey = apiKeyOf(req);
    if (!apiKey)
      return fail(
        new StripeError(
          401,
          "invalid_request_error",
          "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://docs.stripe.com/api#authentication for details, or we can help at https://support.stripe.com/.",
        ),
        true,
      );
    const keyOk = acceptedKeys ? acceptedKeys.has(apiKey) : /^(sk|rk)_test_\w+$/.test(apiKey);
    if (!keyOk)
      return fail(
        new StripeError(
          401,
          "invalid_request_error",
          `Invalid API Key provided: ${apiKey.slice(0, 8)}${"*".repeat(Math.max(0, apiKey.length - 12))}${apiKey.slice(-4)}`,
        ),
        true,
      );

    const found = routes
      .map((r) => ({ r, m: r.method === method ? r.pattern.exec(url.pathname) : null }))
      .find((x) => x.m);
    if (!found) {
      const other = routes.some((r) => r.pattern.test(url.pathname));
      return fail(
        invalid(
          other
            ? `Unrecognized request URL (${method}: ${url.pathname}). The method is not supported for this URL.`
            : `Unrecognized request URL (${method}: ${url.pathname}). Please see https://docs.stripe.com/api or we can help at https://support.stripe.com/.`,
        ),
        true,
      );
    }

    // Parameters: the body for POST, the query string for GET and DELETE.
    let raw;
    try {
      if (method === "POST") {
        if (url.search.length > 1)
          throw new FormError("POST parameters go in the request body, not the query string.");
        const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
        if (body.length > 0 && type !== "application/x-www-form-urlencoded")
          throw new FormError(
            `Invalid request: the Content-Type is ${type || "missing"}; the API takes application/x-www-form-urlencoded bodies.`,
          );
        raw = parseForm(body);
      } else {
        if (body.length > 0)
          throw new FormError(
            `A ${method} request takes its parameters in the query string, not a body.`,
          );
        raw = parseForm(url.search.slice(1));
      }
    } catch (err) {
      if (err instanceof FormError) return fail(invalid(err.message), true);
      throw err;
    }
    record.params = raw;
    let params;
    try {
      params = parseFields(found.r.fields, raw);
    } catch (err) {
      if (err instanceof ParamError)
        return fail(invalid(err.message, { code: err.code, param: err.param }), true);
      throw err;
    }

    // Idempotency (POST only: GET and DELETE are idempotent by definition).
    const store_key = idemKey && method === "POST" ? `${apiKey}\n${idemKey}` : null;
    if (store_key) {
      if (idemKey && idemKey.length > 255)
        return fail(
          invalid("Idempotency keys can be at most 255 characters long.", {
            param: "Idempotency-Key",
          }),
          true,
        );
      const saved = idempotency.get(store_key);
      if (saved && Date.now() - saved.at > idemTtl) idempotency.delete(store_key);
      else if (saved) {
        if (saved.path !== url.pathname || saved.method !== method)
          return fail(
            new StripeError(
              400,
              "idempotency_error",
              `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${saved.method} ${saved.path}' vs '${method} ${url.pathname}'). Try using a key other than '${idemKey}' if you meant to execute a different request.`,
            ),
            true,
          );
        if (saved.params !== stable(raw))
          return fail(
            new StripeError(
              400,
              "idempotency_error",
              `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey}' if you meant to execute a different request.`,
            ),
            true,
          );
        record.replayed = true;
        return send(saved.status, saved.body, {
          "Idempotent-Replayed": "true",
          "Original-Request": saved.requestId,
        });
      }
    }

    const fault = faults.find(
      (f) => f.hits < f.times && f.method === method && f.path.test(url.pathname),
    );
    if (fault) fault.hits++;
    if (fault?.mode === "unavailable") {
      record.fault = "unavailable";
      return send(503, {
        error: { type: "api_error", message: "The server is temporarily unavailable (injected)." },
      });
    }
    current = { id: requestId, idempotencyKey: idemKey };
    let status = 200;
    let payload;
    try {
      payload = found.r.handler({
        params,
        id: decodeURIComponent(found.m?.[1] ?? ""),
        sub: found.m?.[2] ?? "",
        apiKey,
      });
    } catch (err) {
      if (err instanceof StripeError) {
        status = err.status;
        payload = { error: { ...err.body().error, request_log_url: `${base}/logs/${requestId}` } };
      } else {
        status = 500;
        payload = {
          error: {
            type: "api_error",
            message: `An unknown error occurred: ${err instanceof Error ? err.message : err}`,
          },
        };
        log(`500 ${method} ${url.pathname}: ${err instanceof Error ? err.stack : err}`);
      }
    } finally {
      current = null;
    }
    // Stripe saves the result once the endpoint began executing, errors included.
    if (store_key)
      idempotency.set(store_key, {
        method,
        path: url.pathname,
        params: stable(raw),
        status,
        body: payload,
        requestId,
        at: Date.now(),
      });
    if (fault?.mode === "lose") {
      record.status = status;
      record.fault = "lose";
      res.socket?.destroy();
      return;
    }
    send(status, payload);
  }

  // ----- hosted pages --------------------------------------------------------------------------

  /** @param {string} title @param {string} content */
  const page = (title, content) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><main><h1>${esc(title)}</h1>${content}</main></body></html>`;

  /** @param {http.ServerResponse} res @param {number} status @param {string} html */
  const html = (res, status, html) => {
    res.writeHead(status, {
      "Content-Type": "text/html; charset=utf-8",
      "Content-Length": Buffer.byteLength(html),
    });
    res.end(html);
  };

  /** The card fields of a payment form. */
  const cardFields = `
<label>Email <input name="email" type="email" autocomplete="email"></label>
<label>Card number <input name="card_number" inputmode="numeric" autocomplete="cc-number" required></label>
<label>Expiry month <input name="exp_month" inputmode="numeric" value="12" required></label>
<label>Expiry year <input name="exp_year" inputmode="numeric" value="${new Date().getUTCFullYear() + 3}" required></label>
<label>CVC <input name="cvc" inputmode="numeric" value="123" required></label>`;

  /** A 3-D Secure challenge: the same form posted again with the outcome. @param {string} action @param {Record<string, string>} fields */
  const challenge = (action, fields) =>
    page(
      "3D Secure authentication",
      `<p>Your bank asks you to confirm this payment (test mode).</p><form method="post" action="${esc(action)}" data-challenge="true">${Object.entries(
        fields,
      )
        .filter(([k]) => k !== "three_d_secure")
        .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
        .join(
          "",
        )}<button name="three_d_secure" value="complete">Complete authentication</button> <button name="three_d_secure" value="fail">Fail authentication</button></form>`,
    );

  /** @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {URL} url @param {string} body */
  function hosted(req, res, url, body) {
    const form = Object.fromEntries(new URLSearchParams(body));
    // Checkout
    let m = /^\/c\/pay\/(cs_test_\w+)$/.exec(url.pathname);
    if (m) {
      const session = store("checkout.session").get(m[1]);
      if (!session)
        return html(res, 404, page("Not found", "<p>This Checkout session does not exist.</p>"));
      expireIfDue(session);
      if (session.status !== "open")
        return html(
          res,
          410,
          page(
            "Checkout",
            `<p data-status="${esc(session.status)}">This Checkout session is ${esc(session.status)}.</p>`,
          ),
        );
      const action = `/c/pay/${session.id}`;
      const what =
        session.mode === "setup"
          ? "Save your card for future payments"
          : session._line_items
              .map((/** @type {any} */ li) => {
                const price = get("price", li.price);
                return `${esc(get("product", price.product).name)}: ${money(price.unit_amount * li.quantity, price.currency)}${price.recurring ? ` / ${price.recurring.interval}` : ""}`;
              })
              .join("<br>");
      if (req.method === "GET") {
        const button =
          session.mode === "setup"
            ? "Save card"
            : session.mode === "subscription"
              ? "Subscribe"
              : "Pay";
        return html(
          res,
          200,
          page(
            "Checkout (test mode)",
            `<p>${what}</p><form method="post" action="${action}" data-mode="${esc(session.mode)}">${cardFields}<button type="submit">${button}</button></form><p><a href="${esc(session.cancel_url ?? "#")}">Cancel</a></p>`,
          ),
        );
      }
      if (req.method !== "POST") return html(res, 405, page("Method not allowed", ""));
      const card = cardByNumber(form.card_number ?? "");
      if (!card)
        return html(
          res,
          402,
          page(
            "Checkout",
            `<p role="alert" data-error-code="incorrect_number">Your card number is incorrect (use a test card).</p>`,
          ),
        );
      if (form.three_d_secure === "fail")
        return html(
          res,
          402,
          page(
            "Checkout",
            `<p role="alert" data-error-code="payment_intent_authentication_failure">We are unable to authenticate your payment method. Please choose a different payment method and try again.</p>`,
          ),
        );
      const result = completeCheckout(session, card, {
        exp_month: Number(form.exp_month) || undefined,
        exp_year: Number(form.exp_year) || undefined,
        authenticated: form.three_d_secure === "complete",
        email: form.email,
      });
      if (!result.ok) {
        if (result.challenge) return html(res, 200, challenge(action, form));
        return html(
          res,
          402,
          page(
            "Checkout",
            `<p role="alert" data-error-code="${esc(result.code)}">${esc(result.message)}</p>`,
          ),
        );
      }
      const target = (session.success_url ?? `${base}/c/done`).replace(
        "{CHECKOUT_SESSION_ID}",
        session.id,
      );
      res.writeHead(303, { Location: target, "Content-Length": 0 });
      return res.end();
    }
    // the hosted invoice page
    m = /^\/i\/(in_\w+)(\/pay|\/pdf)?$/.exec(url.pathname);
    if (m) {
      const inv = store("invoice").get(m[1]);
      if (!inv || inv.status === "draft")
        return html(res, 404, page("Not found", "<p>This invoice does not exist.</p>"));
      const pi = inv._pi ? store("payment_intent").get(inv._pi) : null;
      const amount = money(inv.amount_due, inv.currency);
      if (!m[2] || m[2] === "/pdf") {
        if (req.method !== "GET") return html(res, 405, page("Method not allowed", ""));
        const lines = inv._lines
          .map(
            (/** @type {any} */ l) =>
              `<li>${esc(l.description ?? "")}: ${money(l.amount, l.currency)}</li>`,
          )
          .join("");
        let action = "";
        if (inv.status === "open") {
          const saved = pi?.payment_method ? store("payment_method").get(pi.payment_method) : null;
          action =
            (pi?.status === "requires_action" && saved
              ? `<form method="post" action="/i/${inv.id}/pay" data-action="authenticate"><p>Your bank asks you to confirm this payment with the card ending ${esc(saved.card.last4)}.</p><input type="hidden" name="use_saved" value="true"><button name="three_d_secure" value="complete">Pay ${amount}</button></form>`
              : "") +
            `<form method="post" action="/i/${inv.id}/pay" data-action="pay">${cardFields}<button type="submit">Pay ${amount}</button></form>`;
        }
        return html(
          res,
          200,
          page(
            `Invoice ${inv.number}`,
            `<p data-status="${esc(inv.status)}">Status: ${esc(inv.status)}</p><p>Amount due: ${amount}</p><ul>${lines}</ul>${inv.status === "paid" ? `<p>Receipt ${esc(inv.receipt_number ?? "")}</p>` : ""}${action}`,
          ),
        );
      }
      if (req.method !== "POST") return html(res, 405, page("Method not allowed", ""));
      if (inv.status !== "open")
        return html(
          res,
          409,
          page(
            `Invoice ${inv.number}`,
            `<p role="alert" data-status="${esc(inv.status)}">This invoice is ${esc(inv.status)}.</p>`,
          ),
        );
      let pm;
      if (form.use_saved === "true") {
        pm = pi?.payment_method ? store("payment_method").get(pi.payment_method) : null;
        if (!pm)
          return html(
            res,
            400,
            page("Invoice", `<p role="alert">No saved card for this payment.</p>`),
          );
      } else {
        const card = cardByNumber(form.card_number ?? "");
        if (!card)
          return html(
            res,
            402,
            page(
              "Invoice",
              `<p role="alert" data-error-code="incorrect_number">Your card number is incorrect (use a test card).</p>`,
            ),
          );
        pm = newPaymentMethod(card, {
          exp_month: Number(form.exp_month) || undefined,
          exp_year: Number(form.exp_year) || undefined,
        });
        const needsAuth = card.behavior === "auth_always" || card.behavior === "auth_setup";
        if (needsAuth && !form.three_d_secure)
          return html(res, 200, challenge(`/i/${inv.id}/pay`, form));
      }
      if (form.three_d_secure === "fail") {
        if (pi) {
          pi.last_payment_error = {
            code: "payment_intent_authentication_failure",
            message: "The provided PaymentMethod has failed authentication.",
            type: "invalid_request_error",
          };
          pi.status = "requires_payment_method";
          emit("payment_intent.payment_failed", pi);
        }
        return html(
          res,
          402,
          page(
            "Invoice",
            `<p role="alert" data-error-code="payment_intent_authentication_failure">We are unable to authenticate your payment method.</p>`,
          ),
        );
      }
      const r = payInvoice(inv, pm, {
        offSession: false,
        authenticated: form.three_d_secure === "complete",
      });
      if (!r.ok)
        return html(
          res,
          402,
          page(
            "Invoice",
            `<p role="alert" data-error-code="${esc(String(r.error.extra.code ?? "card_declined"))}">${esc(r.error.message)}</p>`,
          ),
        );
      return html(
        res,
        200,
        page(
          `Invoice ${inv.number}`,
          `<p data-status="paid">Paid: ${amount}. Receipt ${esc(inv.receipt_number ?? "")}</p>`,
        ),
      );
    }
    // the customer portal (read-only apart from cancelling at period end)
    m = /^\/p\/session\/(bps_\w+)(\/cancel)?$/.exec(url.pathname);
    if (m) {
      const session = store("billing_portal.session").get(m[1]);
      if (!session)
        return html(res, 404, page("Not found", "<p>This portal session does not exist.</p>"));
      const config = get("billing_portal.configuration", session.configuration);
      const subs = [...store("subscription").values()].filter(
        (s) =>
          s.customer === session.customer && !["canceled", "incomplete_expired"].includes(s.status),
      );
      if (m[2]) {
        if (req.method !== "POST") return html(res, 405, page("Method not allowed", ""));
        const sub = subs.find((s) => s.id === form.subscription);
        if (!sub || !config.features.subscription_cancel.enabled)
          return html(res, 400, page("Portal", `<p role="alert">Cannot cancel.</p>`));
        if (config.features.subscription_cancel.mode === "immediately")
          cancelSubscription(sub, "cancellation_requested");
        else if (!sub.cancel_at_period_end) {
          const previous = { cancel_at_period_end: false, cancel_at: null, canceled_at: null };
          sub.cancel_at_period_end = true;
          sub.cancel_at = sub.items.data[0].current_period_end;
          sub.canceled_at = nowSeconds();
          sub.cancellation_details.reason = "cancellation_requested";
          touched(sub);
          emit("customer.subscription.updated", sub, previous);
        }
        res.writeHead(303, { Location: `/p/session/${session.id}`, "Content-Length": 0 });
        return res.end();
      }
      const invoices = config.features.invoice_history.enabled
        ? [...store("invoice").values()]
            .filter((i) => i.customer === session.customer && i.status !== "draft")
            .sort(newestFirst)
        : [];
      const subHtml = subs
        .map(
          (s) =>
            `<li data-subscription="${s.id}">${esc(s.items.data[0].price.nickname ?? s.items.data[0].price.id)}: ${esc(s.status)}${s.cancel_at_period_end ? " (cancels at period end)" : ""}${config.features.subscription_cancel.enabled && !s.cancel_at_period_end ? `<form method="post" action="/p/session/${session.id}/cancel"><input type="hidden" name="subscription" value="${s.id}"><button>Cancel plan</button></form>` : ""}</li>`,
        )
        .join("");
      const invHtml = invoices
        .map(
          (i) =>
            `<li><a href="${esc(i.hosted_invoice_url)}">${esc(i.number)}</a> ${money(i.total, i.currency)} ${esc(i.status)}</li>`,
        )
        .join("");
      return html(
        res,
        200,
        page(
          config.business_profile.headline ?? "Customer portal",
          `<h2>Subscriptions</h2><ul>${subHtml}</ul><h2>Invoices</h2><ul>${invHtml}</ul><p><a href="${esc(session.return_url)}">Return</a></p>`,
        ),
      );
    }
    return html(res, 404, page("Not found", ""));
  }

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://stripe.local");
    try {
      if (url.pathname.startsWith("/v1/")) api(req, res, url, body);
      else hosted(req, res, url, body);
    } catch (err) {
      log(`500 ${req.method} ${url.pathname}: ${err instanceof Error ? err.stack : err}`);
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(
          JSON.stringify({ error: { type: "api_error", message: "An unknown error occurred" } }),
        );
      }
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(options.port ?? 0, host, () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  base = `http://${host}:${address.port}`;

  return {
    url: base,
    port: address.port,
    requests,
    deliveries,
    /** @param {string} type @param {string} id */
    object: (type, id) => {
      const o = store(type).get(id);
      return o ? out(o, []) : null;
    },
    /** @param {string} type */
    all: (type) => [...store(type).values()].map((o) => out(o, [])),
    /** Events, oldest first. */
    events: () => [...store("event").values()].sort((a, b) => a._seq - b._seq).map(render),
    signatureHeader,
    /**
     * Freezes the clock objects and events are stamped with (`created` has one-second
     * resolution, so events of one second cannot be told apart by it); null unfreezes.
     * @param {boolean} frozen
     */
    freezeClock: (frozen) => {
      frozenAt = frozen ? Math.floor(Date.now() / 1000) : null;
    },
    /**
     * Injects a fault into the next `times` requests matching method and path.
     * @param {{ method: string, path: RegExp, mode: "lose" | "unavailable", times?: number }} f
     */
    inject: (f) => {
      faults.push({ ...f, times: f.times ?? 1, hits: 0 });
    },
    /** Resolves once every queued webhook delivery has finished (delivered or given up). */
    idle: async (timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      while (pendingDeliveries > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      return pendingDeliveries === 0;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve(undefined));
      }),
  };
}
