import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { admin, json, type TestAccount } from "./http";

export interface FaultRule {
  method?: string;
  path: string;
  kind: "500" | "drop_before" | "drop_after" | "delay";
  times: number;
  ms?: number;
  /** Only requests whose form parameters include these values (keeps parallel test files apart). */
  match?: Record<string, string>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  idempotency_key: string | null;
  params: Record<string, unknown>;
  status: number;
  replayed: boolean;
}

/** The local Stripe-compatible server's test controls (not part of Stripe's API). */
export async function injectFaults(faults: FaultRule[]): Promise<void> {
  const res = await fetch(`${env.STRIPE_API_URL}/_test/faults`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ faults }),
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
}

export async function stripeRequests(path: string): Promise<LoggedRequest[]> {
  const res = await fetch(`${env.STRIPE_API_URL}/_test/requests?path=${encodeURIComponent(path)}`);
  return (await json<{ data: LoggedRequest[] }>(res)).data;
}

export async function paymentIntentCalls(customerId: string): Promise<LoggedRequest[]> {
  return (await stripeRequests("/v1/payment_intents")).filter(
    (r) => r.method === "POST" && r.params.customer === customerId,
  );
}

/** PaymentIntents Stripe holds for this customer (each one is a charge attempt). */
export async function paymentIntentsOf(customerId: string) {
  const res = await fetch(
    `${env.STRIPE_API_URL}/v1/payment_intents?customer=${customerId}&limit=100`,
    {
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    },
  );
  return (
    await json<{
      data: Array<{ id: string; status: string; amount: number; metadata: Record<string, string> }>;
    }>(res)
  ).data;
}

export async function attachCard(
  account: TestAccount,
  paymentMethod = "pm_card_visa",
): Promise<string> {
  const res = await admin(`/accounts/${account.id}/payment-method`, {
    method: "POST",
    body: JSON.stringify({ payment_method: paymentMethod }),
  });
  expect(res.status).toBe(200);
  const body = await json<{ payment_method: string }>(res);
  return body.payment_method;
}

/** Polls until `check` passes: the queue consumer runs asynchronously in workerd. */
export function eventually<T>(check: () => Promise<T>, timeout = 15_000): Promise<T> {
  return vi.waitFor(check, { timeout, interval: 100 });
}
