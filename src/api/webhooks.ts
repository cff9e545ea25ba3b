import { Hono } from "hono";
import { z } from "zod";
import {
  addEndpoint,
  deleteEndpoint,
  endpointEvents,
  sendTestEvent,
} from "../accounts/webhook-endpoints";
import {
  activeEndpoint,
  activeEndpoints,
  deliveriesOf,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
} from "../db/webhooks";
import { WEBHOOK_EVENT_TYPES } from "../delivery/webhook-events";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { ApiError } from "../platform/errors";
import { refusal } from "../platform/refusals";

const CreateBody = z.strictObject({
  url: z.string().max(2048),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).max(WEBHOOK_EVENT_TYPES.length).optional(),
});

function endpointJson(row: WebhookEndpointRow) {
  return {
    id: row.id,
    url: row.url,
    events: endpointEvents(row),
    created_at: row.createdAt,
  };
}

function deliveryJson(row: WebhookDeliveryRow) {
  return {
    id: row.id,
    type: row.eventType,
    status: row.status,
    attempts: row.attempts,
    last_status_code: row.lastStatusCode,
    last_error: row.lastError,
    next_attempt_at: row.nextAttemptAt,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

/**
 * `/v1/account/webhooks`: the account's endpoints for webhooks to customers (at most 5). The
 * signing secret is in the creation's answer only; it is stored sealed (delivery/webhook-secrets).
 */
const WEBHOOKS: Pick<Parameters<typeof describe>[0], "tag" | "security"> = {
  tag: "Webhooks",
  security: ["api_key", "session"],
};
const listDoc = describe({ summary: "The account's webhook endpoints", ...WEBHOOKS });
const createDoc = describe({
  summary: "Add an endpoint: its signing secret (whsec_…) is in this response only",
  ...WEBHOOKS,
  body: CreateBody,
  ok: { status: 201, description: "The endpoint, `secret` shown once" },
  errors: [403, 409],
});
const deleteDoc = describe({ summary: "Delete an endpoint", ...WEBHOOKS, errors: [403, 404] });
const testDoc = describe({
  summary: "Send a signed webhook.test event to the endpoint",
  ...WEBHOOKS,
  errors: [403, 404, 429],
});
const deliveriesDoc = describe({
  summary: "The endpoint's deliveries, newest first, with their status",
  ...WEBHOOKS,
  errors: [404],
});

export const webhookRoutes = new Hono<AppEnv>()
  .get("/", listDoc, async (c) => {
    const rows = await activeEndpoints(c.get("db"), c.get("accountId"));
    return c.json({ data: rows.map(endpointJson) }, 200);
  })
  .post("/", createDoc, async (c) => {
    const body = await parseJson(c, CreateBody);
    const result = await addEndpoint(
      c.env,
      c.get("db"),
      c.get("accountId"),
      { url: body.url, events: body.events ?? null },
      c.get("actor"),
    );
    if (!result.ok) {
      if (result.reason === "webhook_limit_reached") throw refusal(result.reason);
      throw ApiError.invalidRequest(`url ${result.problem}.`, [
        { field: "url", message: result.problem },
      ]);
    }
    return c.json({ ...endpointJson(result.endpoint), secret: result.secret }, 201);
  })
  .delete("/:id", deleteDoc, async (c) => {
    const id = c.req.param("id");
    const row = await deleteEndpoint(c.get("db"), c.get("accountId"), id, c.get("actor"));
    if (!row) throw refusal("webhook_not_found");
    return c.json({ id, deleted: true }, 200);
  })
  .post("/:id/test", testDoc, async (c) => {
    const sent = await sendTestEvent(
      c.env,
      c.get("db"),
      c.get("accountId"),
      c.req.param("id"),
      "the API",
    );
    if (!sent) throw refusal("webhook_not_found");
    return c.json({ delivery_id: sent.deliveryId, status: "pending" }, 202);
  })
  .get("/:id/deliveries", deliveriesDoc, async (c) => {
    const row = await activeEndpoint(c.get("db"), c.get("accountId"), c.req.param("id"));
    if (!row) throw refusal("webhook_not_found");
    const rows = await deliveriesOf(c.get("db"), row.id);
    return c.json({ data: rows.map(deliveryJson) }, 200);
  });
