import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { expect, vi } from "vitest";
import { admin, gateway, json, type TestAccount } from "./http";

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

const signer = Stripe.createSubtleCryptoProvider();

/** An event as the local Stripe server emitted it (GET /v1/events), newest first. */
export interface EmittedEvent {
  id: string;
  type: string;
  created: number;
  data: { object: Record<string, unknown> };
}

/**
 * The events the local Stripe server emitted about this customer, oldest first. The server in
 * the workerd tests has no webhook URL (test/global/servers.ts), so tests deliver them.
 */
export async function eventsFor(customerId: string): Promise<EmittedEvent[]> {
  const res = await fetch(`${env.STRIPE_API_URL}/v1/events?limit=100`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  const list = await json<{ data: EmittedEvent[] }>(res);
  return list.data
    .filter((e) => {
      const o = e.data.object;
      return o.customer === customerId || o.id === customerId;
    })
    .reverse();
}

/** Posts an event to the gateway's webhook, signed with the test secret. */
export async function deliverSigned(event: unknown): Promise<Response> {
  const payload = JSON.stringify(event);
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: env.STRIPE_WEBHOOK_SECRET,
    cryptoProvider: signer,
  });
  return gateway("/webhooks/stripe", {
    method: "POST",
    body: payload,
    headers: { "Stripe-Signature": signature },
  });
}

/** Submits a local hosted page's form (Checkout, invoice) as a browser would. */
export async function submitPage(url: string, fields: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: "POST",
    redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
}
