// @ts-check
/**
 * Webhook endpoints and the Events API. Delivery itself lives in server.mjs.
 */
import {
  getOr404,
  invalidRequest,
  mergeMetadata,
  newestFirst,
  newId,
  now,
  paginate,
  readBoolean,
  readMetadata,
  readString,
  readStringList,
  rejectUnknown,
} from "./lib.mjs";
import { readCreatedFilter } from "./payments.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */

/**
 * @param {Json} params
 * @param {boolean} required
 */
function readEnabledEvents(params, required) {
  const events = readStringList(params, "enabled_events");
  if (!events) {
    if (required) {
      throw invalidRequest("Missing required param: enabled_events.", {
        code: "parameter_missing",
        param: "enabled_events",
      });
    }
    return undefined;
  }
  for (const type of events) {
    if (type !== "*" && !/^[a-z_]+(\.[a-z_]+)+$/.test(type)) {
      throw invalidRequest(`Invalid enabled_events: ${type} is not a valid event type.`, {
        param: "enabled_events",
      });
    }
  }
  return events;
}

/** @param {Json} params */
function readUrl(params, required = false) {
  const url = readString(params, "url", { required });
  if (!url) return undefined;
  if (!/^https?:\/\/[^\s]+$/.test(url)) {
    throw invalidRequest("Invalid URL: URL must be publicly accessible.", { param: "url" });
  }
  return url;
}

/**
 * Whether an endpoint wants an event type.
 * @param {Json} endpoint
 * @param {string} type
 */
export const endpointWants = (endpoint, type) =>
  endpoint.status === "enabled" &&
  (endpoint.enabled_events.includes("*") || endpoint.enabled_events.includes(type));

/** @param {Ctx} ctx */
function createWebhookEndpoint(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "api_version",
    "connect",
    "description",
    "enabled_events",
    "expand",
    "metadata",
    "url",
  ]);
  const url = /** @type {string} */ (readUrl(params, true));
  const enabledEvents = /** @type {string[]} */ (readEnabledEvents(params, true));
  const endpoint = {
    id: newId("we_"),
    object: "webhook_endpoint",
    api_version: readString(params, "api_version") ?? null,
    application: null,
    created: now(),
    description: readString(params, "description") ?? null,
    enabled_events: enabledEvents,
    livemode: false,
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
    status: "enabled",
    url,
  };
  const secret = `whsec_${newId("", 32)}`;
  state.webhookEndpoints.set(endpoint.id, endpoint);
  state.webhookSecrets.set(endpoint.id, secret);
  // The secret is only ever returned by the create call.
  return { body: { ...endpoint, secret } };
}

/** @param {Ctx} ctx */
const endpointFromPath = (ctx) =>
  getOr404(
    ctx.state.webhookEndpoints,
    ctx.pathParams.id ?? "",
    "webhook endpoint",
    "webhook_endpoint",
  );

/** @param {Ctx} ctx */
function retrieveWebhookEndpoint(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: endpointFromPath(ctx) };
}

/** @param {Ctx} ctx */
function updateWebhookEndpoint(ctx) {
  const { params } = ctx;
  rejectUnknown(params, ["description", "disabled", "enabled_events", "expand", "metadata", "url"]);
  const endpoint = endpointFromPath(ctx);
  const url = readUrl(params);
  const events = readEnabledEvents(params, false);
  const disabled = readBoolean(params, "disabled");
  const description = readString(params, "description");
  const metadata = readMetadata(params);
  if (url) endpoint.url = url;
  if (events) endpoint.enabled_events = events;
  if (disabled !== undefined) endpoint.status = disabled ? "disabled" : "enabled";
  if (description !== undefined) endpoint.description = description;
  if (metadata !== undefined) endpoint.metadata = mergeMetadata(endpoint.metadata, metadata);
  return { body: endpoint };
}

/** @param {Ctx} ctx */
function deleteWebhookEndpoint(ctx) {
  rejectUnknown(ctx.params, []);
  const endpoint = endpointFromPath(ctx);
  ctx.state.webhookEndpoints.delete(endpoint.id);
  ctx.state.webhookSecrets.delete(endpoint.id);
  return { body: { id: endpoint.id, object: "webhook_endpoint", deleted: true } };
}

/** @param {Ctx} ctx */
function listWebhookEndpoints(ctx) {
  rejectUnknown(ctx.params, ["ending_before", "expand", "limit", "starting_after"]);
  return {
    body: paginate(newestFirst(ctx.state.webhookEndpoints), ctx.params, "/v1/webhook_endpoints"),
  };
}

/** @param {Ctx} ctx */
function listEvents(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "created",
    "delivery_success",
    "ending_before",
    "expand",
    "limit",
    "starting_after",
    "type",
    "types",
  ]);
  const type = readString(params, "type");
  const types = readStringList(params, "types");
  if (type && types) {
    throw invalidRequest("You may only specify one of these parameters: type, types.", {
      param: "types",
    });
  }
  // `type` accepts a trailing wildcard: `invoice.*`.
  const typeOk = (/** @type {string} */ t) =>
    type ? (type.endsWith(".*") ? t.startsWith(type.slice(0, -1)) : t === type) : true;
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.events,
    (e) => typeOk(e.type) && (!types || types.includes(e.type)) && createdOk(e.created),
  );
  return { body: paginate(items, params, "/v1/events") };
}

/** @param {Ctx} ctx */
function retrieveEvent(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getOr404(ctx.state.events, ctx.pathParams.id ?? "", "event") };
}

export const EVENT_ROUTES = /** @type {const} */ ([
  ["POST", "/v1/webhook_endpoints", createWebhookEndpoint, []],
  ["GET", "/v1/webhook_endpoints", listWebhookEndpoints, []],
  ["GET", "/v1/webhook_endpoints/:id", retrieveWebhookEndpoint, []],
  ["POST", "/v1/webhook_endpoints/:id", updateWebhookEndpoint, []],
  ["DELETE", "/v1/webhook_endpoints/:id", deleteWebhookEndpoint, []],
  ["GET", "/v1/events", listEvents, []],
  ["GET", "/v1/events/:id", retrieveEvent, []],
]);
