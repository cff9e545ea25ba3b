/**
 * Which outbox items are also events for customers' webhooks, and what each says. The facts
 * are the ledger's, decided where they happen (the low-balance crossing, the spending-limit
 * pause, a recharge's settlement); nothing here runs per proxied request.
 */
import type { OutboxItem } from "../ledger/domain/types";

export const WEBHOOK_EVENT_TYPES = [
  "balance.low",
  "credits.exhausted",
  "recharge.succeeded",
  "recharge.failed",
  "recharge.requires_action",
  "top_up.succeeded",
  "top_up.failed",
  "plan.changed",
  "spending_limit.reached",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** What the test send carries: not an event of the account, so no filter excludes it. */
export const TEST_EVENT_TYPE = "webhook.test";

export interface WebhookEvent {
  type: WebhookEventType | typeof TEST_EVENT_TYPE;
  accountId: string;
  /** Unique per fact: with the endpoint it names the delivery, so a replay is one delivery. */
  ref: string;
  data: Record<string, unknown>;
}

/** The event an outbox item reports, or null when it is none. */
export function webhookEventOf(item: OutboxItem): WebhookEvent | null {
  if (item.type === "email" && item.kind === "low_balance") {
    return {
      type: "balance.low",
      accountId: item.account_id,
      ref: item.ref,
      data: { level: item.level, balance_total: item.total },
    };
  }
  if (item.type === "email" && item.kind === "auto_recharge_paused") {
    return {
      type: "spending_limit.reached",
      accountId: item.account_id,
      ref: item.ref,
      data: { monthly_spend_limit_cents: item.limit_cents, resumes_at: item.resumes_at },
    };
  }
  if (item.type === "event") {
    return {
      type: item.event,
      accountId: item.account_id,
      ref: item.ref,
      data:
        item.event === "plan.changed"
          ? { from: item.from, to: item.to }
          : { balance_total: item.balance_total, cost: item.cost },
    };
  }
  if (item.type === "purchase") {
    const prefix = item.kind === "top_up" ? "top_up" : "recharge";
    const type = `${prefix}.${item.status}`;
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(type)) return null;
    return {
      type: type as WebhookEventType,
      accountId: item.account_id,
      ref: item.ref,
      data: {
        recharge_id: item.recharge_id,
        kind: item.kind,
        package: item.package,
        credits: item.credits,
        amount_cents: item.amount_cents,
        status: item.status,
        ...(item.status === "succeeded" ? { balance_total: item.balance_total } : {}),
        ...(item.status !== "succeeded"
          ? { code: item.code ?? null, message: item.message ?? null }
          : {}),
        ...(item.status === "requires_action" ? { action_url: item.action_url } : {}),
      },
    };
  }
  return null;
}

/** Whether an endpoint's event list (JSON array, null: all) takes this event. */
export function endpointTakes(events: string | null, type: string): boolean {
  if (type === TEST_EVENT_TYPE || events === null) return true;
  return (JSON.parse(events) as string[]).includes(type);
}
