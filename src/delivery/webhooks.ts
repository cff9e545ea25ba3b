/**
 * Webhooks to customers: the fan-out (one delivery per subscribed endpoint, each a D1 row and a
 * queue message) and one signed attempt. The queue handler (./webhook-consumer.ts) decides the
 * backoff from what an attempt returns.
 */
import { Webhook } from "standardwebhooks";
import type { Db } from "../db/client";
import {
  activeEndpoints,
  deliveryById,
  insertDelivery,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
} from "../db/webhooks";
import { sha256Hex } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { endpointTakes, type WebhookEvent } from "./webhook-events";
import { openWebhookSecret } from "./webhook-secrets";
import { endpointUrlProblem } from "./webhook-url";

/** What the webhook queue carries: the delivery's id (its row holds the rest). */
export interface WebhookMessage {
  delivery_id: string;
}

/** How long one attempt may take before it counts as failed. */
const ATTEMPT_TIMEOUT_MS = 10_000;

export function isLocalMode(env: Pick<Bindings, "ENVIRONMENT">): boolean {
  return (env.ENVIRONMENT ?? "local") === "local";
}

/** The `webhook-id`: the same for the same fact and endpoint however often it is fanned out. */
async function deliveryId(ref: string, endpointId: string): Promise<string> {
  return `msg_${(await sha256Hex(`${ref}\n${endpointId}`)).slice(0, 32)}`;
}

/**
 * One delivery per endpoint of the account that takes the event, queued. Safe to repeat (an
 * outbox item delivered again): the delivery exists already and is queued again only if no
 * attempt was made yet (a crash between the row and the message).
 */
export async function fanOut(
  env: Bindings,
  db: Db,
  event: WebhookEvent,
  now = new Date(),
): Promise<string[]> {
  const endpoints = (await activeEndpoints(db, event.accountId)).filter((e) =>
    endpointTakes(e.events, event.type),
  );
  const ids: string[] = [];
  for (const endpoint of endpoints) ids.push(await enqueue(env, db, endpoint, event, now));
  return ids;
}

export async function enqueue(
  env: Bindings,
  db: Db,
  endpoint: WebhookEndpointRow,
  event: WebhookEvent,
  now: Date,
): Promise<string> {
  const id = await deliveryId(event.ref, endpoint.id);
  const payload = JSON.stringify({
    type: event.type,
    timestamp: now.toISOString(),
    data: event.data,
  });
  const created = await insertDelivery(
    db,
    { id, endpointId: endpoint.id, accountId: event.accountId, eventType: event.type, payload },
    now,
  );
  // A row already attempted has its own message (or is settled): sending again would only
  // double its attempts. One never attempted may have lost its message to a crash.
  if (!created) {
    const row = await deliveryById(db, id);
    if (row?.status !== "pending" || row.attempts > 0) return id;
  }
  await env.WEBHOOK_QUEUE.send({ delivery_id: id } satisfies WebhookMessage);
  return id;
}

export type AttemptOutcome =
  | { ok: true; statusCode: number }
  | { ok: false; statusCode: number | null; error: string; permanent: boolean };

/**
 * One signed POST of the delivery's payload (Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature`). Redirects are not followed: a 3xx is a failure,
 * so an endpoint cannot bounce the request to an internal address.
 */
export async function attempt(
  env: Bindings,
  endpoint: WebhookEndpointRow,
  delivery: WebhookDeliveryRow,
  now: Date,
): Promise<AttemptOutcome> {
  const refused = endpointUrlProblem(endpoint.url, isLocalMode(env));
  if (refused) return { ok: false, statusCode: null, error: `url ${refused}`, permanent: true };
  const secret = await openWebhookSecret(env, endpoint.id, endpoint.secretSealed);
  if (!secret)
    return {
      ok: false,
      statusCode: null,
      error: "the signing secret cannot be read",
      permanent: true,
    };
  const signature = new Webhook(secret).sign(delivery.id, now, delivery.payload);
  try {
    const res = await fetch(endpoint.url, {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "Tollgate-Webhooks/1",
        "webhook-id": delivery.id,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signature,
      },
      body: delivery.payload,
    });
    // The body is not read: nothing in it matters, and a huge one costs nothing unread.
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { ok: true, statusCode: res.status };
    return { ok: false, statusCode: res.status, error: `HTTP ${res.status}`, permanent: false };
  } catch (err) {
    return { ok: false, statusCode: null, error: String(err).slice(0, 300), permanent: false };
  }
}
