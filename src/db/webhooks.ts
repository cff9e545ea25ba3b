/** Customers' webhook endpoints and their deliveries (contract: "Webhooks to customers"). */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./client";
import { webhookDeliveries, webhookEndpoints } from "./schema";

export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

export const MAX_WEBHOOK_ENDPOINTS = 5;

export function activeEndpoints(db: Db, accountId: string): Promise<WebhookEndpointRow[]> {
  return db
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.accountId, accountId), isNull(webhookEndpoints.disabledAt)))
    .orderBy(webhookEndpoints.createdAt)
    .all();
}

export async function activeEndpoint(
  db: Db,
  accountId: string,
  id: string,
): Promise<WebhookEndpointRow | null> {
  const row = await db
    .select()
    .from(webhookEndpoints)
    .where(
      and(
        eq(webhookEndpoints.id, id),
        eq(webhookEndpoints.accountId, accountId),
        isNull(webhookEndpoints.disabledAt),
      ),
    )
    .get();
  return row ?? null;
}

export async function endpointById(db: Db, id: string): Promise<WebhookEndpointRow | null> {
  return (
    (await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id)).get()) ?? null
  );
}

/**
 * Adds the endpoint unless the account already has `MAX_WEBHOOK_ENDPOINTS` active ones, in one
 * statement so two concurrent adds cannot both pass the count. False when at the limit.
 */
export async function insertEndpointWithinLimit(
  db: Db,
  row: { id: string; accountId: string; url: string; events: string | null; secretSealed: string },
): Promise<boolean> {
  const result = await db.run(sql`
    INSERT INTO webhook_endpoints (id, account_id, url, events, secret_sealed)
    SELECT ${row.id}, ${row.accountId}, ${row.url}, ${row.events}, ${row.secretSealed}
    WHERE (SELECT count(*) FROM webhook_endpoints
           WHERE account_id = ${row.accountId} AND disabled_at IS NULL) < ${MAX_WEBHOOK_ENDPOINTS}`);
  return result.meta.changes === 1;
}

/** Disables (keeps the row: its deliveries stay listed). False when there was none active. */
export async function disableEndpoint(db: Db, accountId: string, id: string): Promise<boolean> {
  const rows = await db
    .update(webhookEndpoints)
    .set({ disabledAt: new Date().toISOString() })
    .where(
      and(
        eq(webhookEndpoints.id, id),
        eq(webhookEndpoints.accountId, accountId),
        isNull(webhookEndpoints.disabledAt),
      ),
    )
    .returning({ id: webhookEndpoints.id });
  return rows.length === 1;
}

/** Creates the delivery once (a redelivered outbox item finds it); true when it is new. */
export async function insertDelivery(
  db: Db,
  row: { id: string; endpointId: string; accountId: string; eventType: string; payload: string },
  now: Date,
): Promise<boolean> {
  const rows = await db
    .insert(webhookDeliveries)
    .values({ ...row, createdAt: now.toISOString(), updatedAt: now.toISOString() })
    .onConflictDoNothing({ target: webhookDeliveries.id })
    .returning({ id: webhookDeliveries.id });
  return rows.length === 1;
}

export async function deliveryById(db: Db, id: string): Promise<WebhookDeliveryRow | null> {
  return (
    (await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id)).get()) ?? null
  );
}

/** The latest deliveries to an endpoint, newest first. */
export function deliveriesOf(
  db: Db,
  endpointId: string,
  limit = 50,
): Promise<WebhookDeliveryRow[]> {
  return db
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.endpointId, endpointId))
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(limit)
    .all();
}

/** One attempt's outcome; only a pending delivery changes (a late duplicate changes nothing). */
export async function recordAttempt(
  db: Db,
  id: string,
  outcome: {
    status: "pending" | "succeeded" | "failed";
    statusCode: number | null;
    error: string | null;
    nextAttemptAt: string | null;
  },
  now: Date,
): Promise<void> {
  await db
    .update(webhookDeliveries)
    .set({
      status: outcome.status,
      attempts: sql`${webhookDeliveries.attempts} + 1`,
      lastStatusCode: outcome.statusCode,
      lastError: outcome.error,
      nextAttemptAt: outcome.nextAttemptAt,
      updatedAt: now.toISOString(),
    })
    .where(and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.status, "pending")));
}

/** Marks a pending delivery failed without an attempt (its endpoint gone, dead-lettered). */
export async function failDelivery(db: Db, id: string, error: string, now: Date): Promise<void> {
  await db
    .update(webhookDeliveries)
    .set({ status: "failed", lastError: error, nextAttemptAt: null, updatedAt: now.toISOString() })
    .where(and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.status, "pending")));
}
