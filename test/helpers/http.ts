/**
 * The one way tests talk HTTP to the gateway.
 *
 * Every request calls the worker's default export's `fetch` handler directly, with `env` from
 * `cloudflare:workers` and a fresh execution context that is waited on before the response is
 * returned: the same Hono app, Durable Objects, D1, Queue and Stripe client as in production,
 * without the pool's dispatch. Why not `exports.default.fetch()` (or the deprecated `SELF`)
 * for everything: under @cloudflare/vitest-pool-workers 0.14 every request through the loopback
 * costs more than the one before it within one test file (100 `/healthz` requests took 0.35 s,
 * the fifth hundred 23 s; the same as cloudflare/workers-sdk#15446), and the simulation and the
 * bad-input suite make thousands.
 *
 * `via: "runtime"` sends the request through `exports.default.fetch()` instead (workerd's own
 * HTTP dispatch), for the few checks that are about what the runtime does to a request before
 * the handler sees it (huge headers, streamed bodies without a Content-Length).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/platform/env";

export const ADMIN_TOKEN = "test-admin-token";
export const BASE = "https://gateway.test";

export interface TestAccount {
  id: string;
  api_key: string;
  /** Its first owner's address: sign in to the Billing page with it (test/helpers/page.ts). */
  email: string;
  stripe_customer_id: string | null;
}

export interface ErrorBody {
  error: {
    type: string;
    message: string;
    fields?: { field: string; message: string }[];
    [k: string]: unknown;
  };
}

export interface CallInit extends RequestInit {
  /** An API key, sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** `handler` (default): the fetch handler called directly; `runtime`: through workerd. */
  via?: "handler" | "runtime";
  /** Bindings for this request only (default: the test environment's). */
  env?: Bindings;
}

/** Sends a request to the worker; see the module comment for the two paths. */
export async function send(request: Request, init: Pick<CallInit, "via" | "env"> = {}) {
  if (init.via === "runtime") {
    if (init.env) throw new Error("binding overrides need the direct handler path");
    return exports.default.fetch(request);
  }
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, init.env ?? env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** A request to the gateway; a body without a Content-Type is sent as JSON. */
export function gateway(path: string, init: CallInit = {}): Promise<Response> {
  const { key, via, env: bindings, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (key) headers.set("Authorization", `Bearer ${key}`);
  if (rest.body !== undefined && rest.body !== null && !headers.has("Content-Type"))
    headers.set("Content-Type", "application/json");
  return send(new Request(`${BASE}${path}`, { ...rest, headers }), { via, env: bindings });
}

/** A request to `/admin<path>` with the operator token. */
export function admin(path: string, init: Omit<CallInit, "key"> = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${ADMIN_TOKEN}`);
  return gateway(`/admin${path}`, { ...init, headers });
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** Asserts the contract's error envelope and returns it. */
export async function expectError(res: Response, status: number, type: string): Promise<ErrorBody> {
  const body = await json<ErrorBody>(res);
  expect({ status: res.status, type: body.error?.type }).toEqual({ status, type });
  expect(typeof body.error.message).toBe("string");
  expect(res.headers.get("Content-Type")).toBe("application/json; charset=utf-8");
  return body;
}

export async function createAccount(
  plan: "free" | "starter" | "pro" = "free",
  email?: string,
): Promise<TestAccount> {
  const res = await admin("/accounts", {
    method: "POST",
    body: JSON.stringify({
      email: email ?? `${crypto.randomUUID()}@example.com`,
      plan,
      // An operator's paid plan has no subscription: the contract calls it complimentary.
      ...(plan === "free" ? {} : { complimentary: true }),
    }),
  });
  if (res.status !== 201) expect(res.status, await res.text()).toBe(201);
  return json<TestAccount>(res);
}

export async function balanceOf(account: TestAccount) {
  const res = await gateway("/v1/account/balance", { key: account.api_key });
  expect(res.status).toBe(200);
  return json<{
    monthly: number;
    purchased: number;
    total: number;
    auto_recharge: Record<string, unknown>;
  }>(res);
}

/** Moves the account's buckets to exactly these amounts through the audited admin route. */
export async function setBalance(
  account: TestAccount,
  target: { monthly: number; purchased: number },
) {
  const now = await balanceOf(account);
  const monthly = target.monthly - now.monthly;
  const purchased = target.purchased - now.purchased;
  if (monthly === 0 && purchased === 0) return;
  const res = await admin(`/accounts/${account.id}/credits`, {
    method: "POST",
    body: JSON.stringify({ monthly, purchased, reason: "test setup" }),
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
}

export async function audit(accountId: string) {
  const res = await admin(`/accounts/${accountId}/audit`);
  expect(res.status).toBe(200);
  return json<{ ledger_total: number; balance_total: number; consistent: boolean }>(res);
}

/** A classification request with the account's key (cost 1 on /v1/classify). */
export function classify(account: TestAccount, path = "/v1/classify", init: CallInit = {}) {
  return gateway(path, {
    method: "POST",
    body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
    ...init,
    key: account.api_key,
  });
}
