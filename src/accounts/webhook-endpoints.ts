/**
 * Adding, deleting and test-sending a customer's webhook endpoints (contract: "Webhooks to
 * customers"): the one set of rules behind `/v1/account/webhooks` and the Billing page's forms.
 * The signing secret is returned by `addEndpoint` only; it is stored sealed.
 */
import type { Db } from "../db/client";
import {
  activeEndpoint,
  disableEndpoint,
  insertEndpointWithinLimit,
  type WebhookEndpointRow,
} from "../db/webhooks";
import { TEST_EVENT_TYPE, type WebhookEventType } from "../delivery/webhook-events";
import { newWebhookSecret, sealWebhookSecret } from "../delivery/webhook-secrets";
import { endpointUrlProblem } from "../delivery/webhook-url";
import { enqueue, isLocalMode } from "../delivery/webhooks";
import type { Actor } from "../platform/actor";
import { newId } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { limitAction } from "./action-limits";
import { recordAudit } from "./audit";

/** The events an endpoint takes: null for every event. */
export function endpointEvents(row: WebhookEndpointRow): string[] | null {
  return row.events === null ? null : (JSON.parse(row.events) as string[]);
}

export type AddEndpointResult =
  | { ok: true; endpoint: WebhookEndpointRow; secret: string }
  /** `problem` says what is wrong with the URL ("must be an https URL"). */
  | { ok: false; reason: "invalid_url"; problem: string }
  | { ok: false; reason: "webhook_limit_reached" };

/**
 * Adds an endpoint for `events` (null or empty: every event), unless its URL may not be sent to
 * (server-side request forgery, outside local mode) or the account has 5 already.
 */
export async function addEndpoint(
  env: Bindings,
  db: Db,
  accountId: string,
  input: { url: string; events: readonly WebhookEventType[] | null },
  actor: Actor,
): Promise<AddEndpointResult> {
  const problem = endpointUrlProblem(input.url, isLocalMode(env));
  if (problem) return { ok: false, reason: "invalid_url", problem };
  const id = newId("we");
  const secret = newWebhookSecret();
  const events =
    input.events && input.events.length > 0 ? JSON.stringify([...new Set(input.events)]) : null;
  const added = await insertEndpointWithinLimit(db, {
    id,
    accountId,
    url: new URL(input.url).toString(),
    events,
    secretSealed: await sealWebhookSecret(env, id, secret),
  });
  if (!added) return { ok: false, reason: "webhook_limit_reached" };
  const endpoint = await activeEndpoint(db, accountId, id);
  if (!endpoint) throw new Error(`webhook endpoint ${id} vanished`);
  await recordAudit(db, accountId, actor, "webhook.created", {
    id,
    url: endpoint.url,
    events: endpointEvents(endpoint),
  });
  return { ok: true, endpoint, secret };
}

/** Deletes (disables) the endpoint; its deliveries stay recorded. Null when there is none. */
export async function deleteEndpoint(
  db: Db,
  accountId: string,
  id: string,
  actor: Actor,
): Promise<WebhookEndpointRow | null> {
  const row = await activeEndpoint(db, accountId, id);
  if (!row || !(await disableEndpoint(db, accountId, id))) return null;
  await recordAudit(db, accountId, actor, "webhook.deleted", { id, url: row.url });
  return row;
}

/**
 * Queues a signed `webhook.test` event to the endpoint; the delivery's id, or null when there
 * is no such endpoint. Past the hourly limit of test sends, 429 (`limitAction`).
 */
export async function sendTestEvent(
  env: Bindings,
  db: Db,
  accountId: string,
  id: string,
  from: "the API" | "the Billing page",
  now = new Date(),
): Promise<{ endpoint: WebhookEndpointRow; deliveryId: string } | null> {
  const endpoint = await activeEndpoint(db, accountId, id);
  if (!endpoint) return null;
  await limitAction(db, accountId, "webhook_test");
  const deliveryId = await enqueue(
    env,
    db,
    endpoint,
    {
      type: TEST_EVENT_TYPE,
      accountId,
      ref: `test:${newId("evt")}`,
      data: { endpoint_id: endpoint.id, message: `A test event sent from ${from}.` },
    },
    now,
  );
  return { endpoint, deliveryId };
}
