/**
 * `other_subscription_events`: what Stripe said about a subscription that is not the account's
 * current one. Recorded for operators (`GET /admin/accounts/:id`), never applied to the plan or
 * the credits. Idempotent by event id.
 */
import { desc, eq } from "drizzle-orm";
import type { Db } from "./client";
import { otherSubscriptionEvents } from "./schema";

export interface OtherSubscriptionEvent {
  eventId: string;
  accountId: string;
  subscriptionId: string;
  eventType: string;
  status: string | null;
  action: string;
  at: string;
}

export async function recordOtherSubscriptionEvent(
  db: Db,
  e: OtherSubscriptionEvent,
): Promise<void> {
  await db
    .insert(otherSubscriptionEvents)
    .values(e)
    .onConflictDoUpdate({ target: otherSubscriptionEvents.eventId, set: { action: e.action } });
}

export interface OtherSubscriptionView {
  id: string;
  /** The status in the latest event that named one. */
  status: string | null;
  last_event: string;
  last_event_at: string;
  /** What the gateway did, latest first (e.g. "recorded", "cancelled and refunded"). */
  actions: string[];
  events: number;
}

/** The account's other subscriptions, one entry each, the most recently seen first. */
export async function otherSubscriptionsOf(
  db: Db,
  accountId: string,
): Promise<OtherSubscriptionView[]> {
  const rows = await db
    .select()
    .from(otherSubscriptionEvents)
    .where(eq(otherSubscriptionEvents.accountId, accountId))
    .orderBy(desc(otherSubscriptionEvents.at), desc(otherSubscriptionEvents.createdAt))
    .limit(200)
    .all();
  const byId = new Map<string, OtherSubscriptionView>();
  for (const r of rows) {
    const seen = byId.get(r.subscriptionId);
    if (!seen) {
      byId.set(r.subscriptionId, {
        id: r.subscriptionId,
        status: r.status,
        last_event: r.eventType,
        last_event_at: r.at,
        actions: [r.action],
        events: 1,
      });
      continue;
    }
    seen.events += 1;
    seen.status ??= r.status;
    if (!seen.actions.includes(r.action)) seen.actions.push(r.action);
  }
  return [...byId.values()];
}
