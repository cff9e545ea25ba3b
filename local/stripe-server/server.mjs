// @ts-check
/**
 * A local, in-memory, Stripe-compatible HTTP server for development and tests.
 *
 * It speaks Stripe's v1 wire format (form-encoded requests with bracket nesting, JSON
 * responses, Stripe error objects, `Request-Id`, idempotency keys) for the small subset of
 * the API Tollgate uses, so the real `stripe` SDK can be pointed at it with
 * `{ host, port, protocol: "http" }`. Test-only control endpoints live under `/_test/`.
 * Only Node built-ins are used; all state lives in memory per server instance, optionally
 * saved to a file (`persistPath`, see persist.mjs) so it survives a restart.
 */
import { createHmac } from "node:crypto";
import http from "node:http";
import { BILLING_ROUTES } from "./billing.mjs";
import { CHECKOUT_ROUTES } from "./checkout.mjs";
import { EVENT_ROUTES, endpointWants } from "./events.mjs";
import {
  API_VERSION,
  applyExpand,
  canonicalJson,
  clone,
  freezeClock,
  inList,
  invalidRequest,
  isPlainObject,
  newId,
  now,
  parseForm,
  readExpand,
  route,
  StripeHttpError,
  sendHtml,
  splitKey,
} from "./lib.mjs";
import { handlePage } from "./pages.mjs";
import {
  attachPaymentMethod,
  createCustomer,
  createPaymentIntent,
  detachPaymentMethod,
  listCustomerPaymentMethods,
  listPaymentIntents,
  listPaymentMethods,
  PI_EXPANDABLE,
  retrieveCustomer,
  retrievePaymentIntent,
  retrievePaymentMethod,
  searchPaymentIntents,
  updateCustomer,
} from "./payments.mjs";
import { persistState } from "./persist.mjs";
import { PORTAL_ROUTES } from "./portal.mjs";
import { REFUND_ROUTES } from "./refunds.mjs";
import { SCHEDULE_ROUTES } from "./schedules.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").ServerOptions} ServerOptions */
/** @typedef {import("./lib.mjs").FaultRule} FaultRule */
/** @typedef {import("./lib.mjs").RequestLogEntry} RequestLogEntry */
/** @typedef {import("./lib.mjs").IdempotencyRecord} IdempotencyRecord */
/** @typedef {import("./lib.mjs").WebhookDelivery} WebhookDelivery */
/** @typedef {import("./lib.mjs").State} State */
/** @typedef {import("./lib.mjs").App} App */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").Route} Route */

export { parseSearchQuery } from "./payments.mjs";
export { API_VERSION, canonicalJson, newId, parseForm, StripeHttpError };

const MAX_BODY_BYTES = 1024 * 1024;
const WEBHOOK_TIMEOUT_MS = 10_000;
/** Stripe forgets idempotency keys after 24 hours. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** The request log keeps the newest entries only, so a long benchmark cannot exhaust memory. */
const MAX_LOGGED_REQUESTS = 20_000;
/** Events kept for GET /v1/events (Stripe keeps 30 days). */
const MAX_STORED_EVENTS = 20_000;

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

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
  ...[
    ...BILLING_ROUTES,
    ...SCHEDULE_ROUTES,
    ...REFUND_ROUTES,
    ...CHECKOUT_ROUTES,
    ...PORTAL_ROUTES,
    ...EVENT_ROUTES,
  ].map(([method, path, handler, expandable]) => route(method, path, handler, [...expandable])),
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
  const pattern = rule.path.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!new RegExp(`^${pattern.join(".*")}$`).test(path)) return false;
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
    stripe_version:
      typeof req.headers["stripe-version"] === "string" ? req.headers["stripe-version"] : null,
    error: null,
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
    if (status >= 400) entry.error = errorOf(body);
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
    // The private helpers under /_local/ are not Stripe's and need no key.
    apiKey = path.startsWith("/_local/") ? "local" : authenticate(req);
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
    if (outcome.status >= 400) entry.error = errorOf(text);
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
 * The type and code of an error answer, for the request log.
 * @param {string} body
 */
function errorOf(body) {
  try {
    const { type, code } = JSON.parse(body).error;
    return { type: String(type), code: code ?? null };
  } catch {
    return null;
  }
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
 * Records an event the API emitted (for /v1/events) and sends it, after the response, to the
 * configured URL and every enabled webhook endpoint that wants its type: one at a time in the
 * order they happened, or (`webhookShuffleMs`) each on its own after a random delay, since
 * Stripe guarantees no order. A failed attempt is retried `webhookRetries` times.
 * @param {App} app
 * @param {Json} event
 */
function queueDelivery(app, event) {
  const { state } = app;
  /** @type {{ url: string, secret: string, apiVersion?: string | null }[]} */
  const targets = app.webhook ? [app.webhook] : [];
  for (const endpoint of state.webhookEndpoints.values()) {
    const secret = state.webhookSecrets.get(endpoint.id);
    if (secret && endpointWants(endpoint, event.type)) {
      targets.push({ url: endpoint.url, secret, apiVersion: endpoint.api_version });
    }
  }
  event.pending_webhooks = targets.length;
  state.events.set(event.id, event);
  if (state.events.size > MAX_STORED_EVENTS) {
    const oldest = state.events.keys().next().value;
    if (oldest !== undefined) state.events.delete(oldest);
  }
  for (const target of targets) {
    const body = target.apiVersion ? { ...event, api_version: target.apiVersion } : event;
    const send = async () => {
      for (let attempt = 0; attempt <= app.webhookRetries && !app.closed; attempt++) {
        if (attempt > 0) await sleep(app, 500 * 2 ** (attempt - 1));
        try {
          const { status } = await deliverEvent(app, body, target.url, target.secret);
          if (status < 300) break;
          log(app, `webhook ${event.type} ${event.id} -> HTTP ${status}`);
        } catch (err) {
          if (!app.closed) log(app, `webhook ${event.type} ${event.id} failed: ${String(err)}`);
        }
      }
      app.changed();
    };
    app.pendingDeliveries++;
    const done = () => {
      app.pendingDeliveries--;
    };
    if (app.webhookShuffleMs > 0) {
      void sleep(app, Math.floor(Math.random() * app.webhookShuffleMs))
        .then(send)
        .finally(done);
    } else {
      app.deliveryChain = app.deliveryChain.then(send).finally(done);
    }
  }
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

/** Object maps listed by /_test/state, by their key there. */
const SNAPSHOT_MAPS = /** @type {const} */ ([
  ["customers", "customers"],
  ["payment_methods", "paymentMethods"],
  ["payment_intents", "paymentIntents"],
  ["charges", "charges"],
  ["billing_portal_sessions", "portalSessions"],
  ["billing_portal_configurations", "portalConfigurations"],
  ["products", "products"],
  ["prices", "prices"],
  ["invoice_items", "invoiceItems"],
  ["invoices", "invoices"],
  ["invoice_payments", "invoicePayments"],
  ["subscriptions", "subscriptions"],
  ["subscription_schedules", "subscriptionSchedules"],
  ["refunds", "refunds"],
  ["setup_intents", "setupIntents"],
  ["checkout_sessions", "checkoutSessions"],
  ["webhook_endpoints", "webhookEndpoints"],
  ["events", "events"],
]);

/** @param {State} state */
function snapshot(state) {
  /** @type {Json} */
  const counts = {};
  /** @type {Json} */
  const lists = {};
  for (const [key, field] of SNAPSHOT_MAPS) {
    counts[key] = state[field].size;
    lists[key] = [...state[field].values()].map(clone);
  }
  return {
    counts: {
      ...counts,
      idempotency_keys: state.idempotency.size,
      requests: state.requests.length,
      webhook_deliveries: state.webhookDeliveries.length,
    },
    ...lists,
    webhook_deliveries: clone(state.webhookDeliveries),
    faults: clone(state.faults),
  };
}

/** @param {State} state */
function resetState(state) {
  for (const value of Object.values(state)) {
    if (value instanceof Map) value.clear();
    else if (Array.isArray(value)) value.length = 0;
  }
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
      case "POST /_test/clock": {
        const input = await readJson(req);
        if (typeof input.frozen !== "boolean") throw invalidRequest("frozen must be a boolean.");
        freezeClock(input.frozen);
        return sendJson(res, 200, { frozen: input.frozen });
      }
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
  if (/^\/(i|c\/pay|p\/session)\//.test(url.pathname)) return servePage(app, req, res, url);
  return handleApi(app, req, res, url);
}

/**
 * A hosted page (invoice, Checkout, portal). Its actions emit events like API calls do; they
 * are not logged in /_test/requests and take no faults or idempotency keys.
 * @param {App} app
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 * @param {URL} url
 */
async function servePage(app, req, res, url) {
  const method = (req.method ?? "GET").toUpperCase();
  const body = method === "POST" ? await readBody(req) : "";
  /** @type {Record<string, string>} */
  const form = {};
  for (const [key, value] of new URLSearchParams(body)) form[key] = value;
  /** @type {Json[]} */
  const events = [];
  const requestId = newId("req_", 14);
  /** @type {Ctx} */
  const ctx = {
    app,
    state: app.state,
    params: form,
    pathParams: {},
    requestId,
    idempotencyKey: null,
    // Stripe marks events caused by a person on a Stripe page with a null request id.
    emit: (type, object, previousAttributes) =>
      events.push(
        buildEvent(type, object, previousAttributes, { id: null, idempotency_key: null }),
      ),
  };
  const result = handlePage(ctx, method, url, form);
  if (!result) {
    sendHtml(
      res,
      405,
      "<!doctype html><title>Method not allowed</title><h1>Method not allowed</h1>",
    );
  } else if (result.location) {
    res.writeHead(result.status, { Location: result.location, "Content-Length": 0 });
    res.end();
  } else if (result.body !== undefined) {
    res.writeHead(result.status, {
      "Content-Type": result.contentType ?? "application/octet-stream",
      "Content-Length": Buffer.byteLength(result.body),
    });
    res.end(result.body);
  } else {
    sendHtml(res, result.status, result.html ?? "");
  }
  for (const event of events) queueDelivery(app, event);
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
    portalConfigurations: new Map(),
    products: new Map(),
    prices: new Map(),
    invoiceItems: new Map(),
    invoices: new Map(),
    invoicePayments: new Map(),
    subscriptions: new Map(),
    subscriptionSchedules: new Map(),
    refunds: new Map(),
    setupIntents: new Map(),
    checkoutSessions: new Map(),
    checkoutDetails: new Map(),
    webhookEndpoints: new Map(),
    webhookSecrets: new Map(),
    events: new Map(),
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
 *   sendWebhook: (input: Json) => Promise<{ event: Json, status: number, body: string }>,
 *   idle: () => Promise<void> }>}
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
    pendingDeliveries: 0,
    searchLagMs: options.searchLagMs ?? 0,
    webhookShuffleMs: options.webhookShuffleMs ?? 0,
    webhookRetries: options.webhookRetries ?? 0,
    timers: new Set(),
    changed: () => {},
  };
  // Loaded before listening, so the first request already sees the saved state.
  const persisted = options.persistPath
    ? persistState(app.state, options.persistPath, (message) => log(app, message))
    : null;
  if (persisted) app.changed = persisted.changed;
  const server = http.createServer((req, res) => {
    // Any request may change the state (objects, idempotency keys, events, the request log);
    // the save is debounced, and runs once the response is out (or the connection dropped).
    res.once("close", () => app.changed());
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
      server.close(() => {
        if (persisted) void persisted.flush().then(() => resolve());
        else resolve();
      });
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
    /** Resolves once every queued webhook delivery has finished (delivered or given up). */
    idle: async () => {
      while (app.pendingDeliveries > 0 && !app.closed) await new Promise((r) => setTimeout(r, 50));
    },
  };
}
