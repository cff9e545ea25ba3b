import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { recordAudit } from "../accounts/audit";
import {
  activeEndpoint,
  activeEndpoints,
  deliveriesOf,
  disableEndpoint,
  insertEndpointWithinLimit,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
} from "../db/webhooks";
import { TEST_EVENT_TYPE, WEBHOOK_EVENT_TYPES } from "../delivery/webhook-events";
import { newWebhookSecret, sealWebhookSecret } from "../delivery/webhook-secrets";
import { endpointUrlProblem } from "../delivery/webhook-url";
import { enqueue, isLocalMode } from "../delivery/webhooks";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { newId } from "../platform/crypto";
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
    events: row.events === null ? null : (JSON.parse(row.events) as string[]),
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
    const problem = endpointUrlProblem(body.url, isLocalMode(c.env));
    if (problem)
      throw ApiError.invalidRequest(`url ${problem}.`, [{ field: "url", message: problem }]);
    const id = newId("we");
    const secret = newWebhookSecret();
    const events = body.events ? JSON.stringify([...new Set(body.events)]) : null;
    const added = await insertEndpointWithinLimit(c.get("db"), {
      id,
      accountId: c.get("accountId"),
      url: new URL(body.url).toString(),
      events,
      secretSealed: await sealWebhookSecret(c.env, id, secret),
    });
    if (!added) throw refusal("webhook_limit_reached");
    const row = await activeEndpoint(c.get("db"), c.get("accountId"), id);
    if (!row) throw new Error(`webhook endpoint ${id} vanished`);
    await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "webhook.created", {
      id,
      url: row.url,
      events: endpointJson(row).events,
    });
    return c.json({ ...endpointJson(row), secret }, 201);
  })
  .delete("/:id", deleteDoc, async (c) => {
    const id = c.req.param("id");
    const row = await activeEndpoint(c.get("db"), c.get("accountId"), id);
    if (!row || !(await disableEndpoint(c.get("db"), c.get("accountId"), id)))
      throw refusal("webhook_not_found");
    await recordAudit(c.get("db"), c.get("accountId"), c.get("actor"), "webhook.deleted", {
      id,
      url: row.url,
    });
    return c.json({ id, deleted: true }, 200);
  })
  .post("/:id/test", testDoc, async (c) => {
    const row = await activeEndpoint(c.get("db"), c.get("accountId"), c.req.param("id"));
    if (!row) throw refusal("webhook_not_found");
    await limitAction(c.get("db"), c.get("accountId"), "webhook_test");
    const now = new Date();
    const deliveryId = await enqueue(
      c.env,
      c.get("db"),
      row,
      {
        type: TEST_EVENT_TYPE,
        accountId: c.get("accountId"),
        ref: `test:${newId("evt")}`,
        data: { endpoint_id: row.id, message: "A test event sent from the API." },
      },
      now,
    );
    return c.json({ delivery_id: deliveryId, status: "pending" }, 202);
  })
  .get("/:id/deliveries", deliveriesDoc, async (c) => {
    const row = await activeEndpoint(c.get("db"), c.get("accountId"), c.req.param("id"));
    if (!row) throw refusal("webhook_not_found");
    const rows = await deliveriesOf(c.get("db"), row.id);
    return c.json({ data: rows.map(deliveryJson) }, 200);
  });
