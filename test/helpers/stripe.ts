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
  /** The fault rule this request used (`drop_after`: executed, then the answer was lost). */
  fault: string | null;
  at: string;
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

/** GET on the local Stripe server with the test key. */
async function stripeGet<T>(path: string): Promise<T> {
  const res = await fetch(`${env.STRIPE_API_URL}${path}`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });
  expect(res.status).toBe(200);
  return json<T>(res);
}

export interface InvoiceView {
  id: string;
  status: string;
  total: number;
  amount_paid: number;
  billing_reason: string | null;
  parent: unknown;
  hosted_invoice_url: string | null;
  default_payment_method: string | null;
  description: string | null;
  metadata: Record<string, string>;
  lines: { data: Array<{ amount: number }> };
}

/** The invoices Stripe holds for this customer (each purchase is one). */
export async function invoicesOf(customerId: string): Promise<InvoiceView[]> {
  return (await stripeGet<{ data: InvoiceView[] }>(`/v1/invoices?customer=${customerId}&limit=100`))
    .data;
}

export async function invoiceById(id: string): Promise<InvoiceView> {
  return stripeGet<InvoiceView>(`/v1/invoices/${id}`);
}

/** The payments of an invoice (`paid` ones are charges). */
export async function invoicePayments(invoiceId: string) {
  return (
    await stripeGet<{
      data: Array<{ id: string; status: string; payment: { payment_intent: string } }>;
    }>(`/v1/invoice_payments?invoice=${invoiceId}`)
  ).data;
}

/** Succeeded PaymentIntents of the customer: what the card was actually charged. */
export async function chargesOf(customerId: string) {
  return (await paymentIntentsOf(customerId)).filter((pi) => pi.status === "succeeded");
}

/**
 * Every API call of the purchase flow for this customer: invoice creation and items (they name
 * the customer), then finalize, pay and void of the customer's invoices (they name the invoice).
 */
export async function purchaseCalls(customerId: string): Promise<LoggedRequest[]> {
  const ids = new Set((await invoicesOf(customerId)).map((i) => i.id));
  const calls = [
    ...(await stripeRequests("/v1/invoices*")),
    ...(await stripeRequests("/v1/invoiceitems")),
  ];
  return calls
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
    .filter(
      (r) =>
        r.method === "POST" &&
        (r.params.customer === customerId ||
          [...ids].some((id) => r.path.startsWith(`/v1/invoices/${id}/`))),
    );
}

/** Charge attempts of the customer: `pay` calls on their invoices. */
export async function payCalls(customerId: string): Promise<LoggedRequest[]> {
  return (await purchaseCalls(customerId)).filter((r) => r.path.endsWith("/pay"));
}
