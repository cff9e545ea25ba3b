/** The `webhook_events` table: Stripe event ids already handled, for idempotency by event id. */
import { eq } from "drizzle-orm";
import type { Db } from "./client";
import { webhookEvents } from "./schema";

export async function eventSeen(db: Db, id: string): Promise<boolean> {
  const row = await db
    .select({ id: webhookEvents.id })
    .from(webhookEvents)
    .where(eq(webhookEvents.id, id))
    .get();
  return row !== undefined;
}

/** Recorded after the event was handled: a crash before this makes Stripe redeliver it. */
export async function recordEvent(db: Db, id: string, type: string): Promise<void> {
  await db.insert(webhookEvents).values({ id, type }).onConflictDoNothing();
}
