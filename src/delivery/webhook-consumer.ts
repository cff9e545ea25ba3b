/**
 * The webhook queue's consumer: one attempt per message, recorded on the delivery's row, then
 * a retry with backoff (the first within 30 seconds, then growing) until a day after the
 * delivery was created, when it is marked failed. Messages the consumer cannot handle at all
 * (D1 down) are retried by the queue and end on the dead-letter queue, which marks them failed.
 */
import { dbFor } from "../db/client";
import { deliveryById, endpointById, failDelivery, recordAttempt } from "../db/webhooks";
import type { Bindings } from "../platform/env";
import { attempt, type WebhookMessage } from "./webhooks";

/** Seconds after the n-th failed attempt (n from 1); the last repeats. */
export const RETRY_SCHEDULE_SECONDS = [5, 300, 1_800, 7_200, 18_000, 36_000];
export const GIVE_UP_AFTER_MS = 24 * 60 * 60 * 1000;

/**
 * The delay before the next attempt after `attempts` failed ones, or null when the day is up.
 * Pure. The last retry is moved earlier to land on the day's end rather than skipped.
 */
export function nextRetrySeconds(attempts: number, createdAt: Date, now: Date): number | null {
  const left = createdAt.getTime() + GIVE_UP_AFTER_MS - now.getTime();
  if (left <= 0) return null;
  const step = RETRY_SCHEDULE_SECONDS[Math.min(attempts, RETRY_SCHEDULE_SECONDS.length) - 1] ?? 5;
  return Math.max(1, Math.min(step, Math.ceil(left / 1000)));
}

/** One message: an attempt unless the delivery is settled or its endpoint gone. */
export async function handleWebhookMessage(
  env: Bindings,
  message: Message<WebhookMessage>,
  now: Date,
): Promise<void> {
  const db = dbFor(env.DB);
  const delivery = await deliveryById(db, message.body.delivery_id);
  if (delivery?.status !== "pending") return message.ack();
  const endpoint = await endpointById(db, delivery.endpointId);
  if (!endpoint || endpoint.disabledAt !== null) {
    await failDelivery(db, delivery.id, "the endpoint was deleted", now);
    return message.ack();
  }
  const outcome = await attempt(env, endpoint, delivery, now);
  if (outcome.ok) {
    await recordAttempt(
      db,
      delivery.id,
      { status: "succeeded", statusCode: outcome.statusCode, error: null, nextAttemptAt: null },
      now,
    );
    return message.ack();
  }
  const delay = outcome.permanent
    ? null
    : nextRetrySeconds(delivery.attempts + 1, new Date(delivery.createdAt), now);
  await recordAttempt(
    db,
    delivery.id,
    {
      status: delay === null ? "failed" : "pending",
      statusCode: outcome.statusCode,
      error: outcome.error,
      nextAttemptAt: delay === null ? null : new Date(now.getTime() + delay * 1000).toISOString(),
    },
    now,
  );
  if (delay === null) return message.ack();
  message.retry({ delaySeconds: delay });
}

export async function handleWebhookBatch(
  batch: MessageBatch<WebhookMessage>,
  env: Bindings,
  now: () => Date = () => new Date(),
): Promise<void> {
  for (const message of batch.messages) {
    try {
      await handleWebhookMessage(env, message, now());
    } catch (err) {
      console.warn("webhook delivery not attempted; the queue will retry", String(err));
      message.retry({ delaySeconds: RETRY_SCHEDULE_SECONDS[0] });
    }
  }
}

/** Messages the queue gave up on (the consumer kept failing): their deliveries failed. */
export async function handleWebhookDeadLetters(
  batch: MessageBatch<WebhookMessage>,
  env: Bindings,
): Promise<void> {
  const db = dbFor(env.DB);
  for (const message of batch.messages) {
    await failDelivery(
      db,
      message.body.delivery_id,
      "dead-lettered: the consumer kept failing",
      new Date(),
    );
    message.ack();
  }
}
