/**
 * Requests to the gateway through the worker's own fetch handler, called directly.
 *
 * Why not `SELF.fetch` (test/helpers/api.ts): under @cloudflare/vitest-pool-workers 0.14 every
 * request through SELF (or `exports.default`) costs more than the one before it, within one
 * test file: 100 `/healthz` requests took 0.35 s, the fifth hundred 23 s (measured here; the
 * same as cloudflare/workers-sdk#15446). A simulation makes thousands of requests, so it calls
 * the handler itself: the same Hono app, Durable Objects, D1, Queue and Stripe client, without
 * the pool's dispatch.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../src/index";
import { ADMIN_TOKEN, BASE, type TestAccount } from "../helpers/api";

export async function call(path: string, init: RequestInit & { key?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("Authorization", `Bearer ${init.key}`);
  if (init.body !== undefined && !headers.has("Content-Type"))
    headers.set("Content-Type", "application/json");
  const { key: _key, ...rest } = init;
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`${BASE}${path}`, { ...rest, headers }), env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export function callAdmin(path: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${ADMIN_TOKEN}`);
  return call(`/admin${path}`, { ...init, headers });
}

/** A classification request with the account's key (cost 1 on /v1/classify). */
export function classifyAs(account: TestAccount, path = "/v1/classify") {
  return call(path, {
    method: "POST",
    key: account.api_key,
    body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
  });
}

export async function createAccountDirect(
  plan: "free" | "starter" | "pro",
  email: string,
): Promise<TestAccount> {
  const res = await callAdmin("/accounts", {
    method: "POST",
    body: JSON.stringify({ email, plan }),
  });
  if (res.status !== 201) throw new Error(`creating an account: ${res.status} ${await res.text()}`);
  return res.json<TestAccount>();
}
