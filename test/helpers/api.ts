import { env, SELF } from "cloudflare:test";
import { expect } from "vitest";

export const ADMIN_TOKEN = "test-admin-token";
export const BASE = "https://gateway.test";

export interface TestAccount {
  id: string;
  api_key: string;
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

/** A request to the gateway through the worker's own fetch handler. */
export function gateway(
  path: string,
  init: RequestInit & { key?: string } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("Authorization", `Bearer ${init.key}`);
  if (init.body !== undefined && !headers.has("Content-Type"))
    headers.set("Content-Type", "application/json");
  return SELF.fetch(`${BASE}${path}`, { ...init, headers });
}

export function admin(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${ADMIN_TOKEN}`);
  if (init.body !== undefined && !headers.has("Content-Type"))
    headers.set("Content-Type", "application/json");
  return SELF.fetch(`${BASE}/admin${path}`, { ...init, headers });
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
    body: JSON.stringify({ email: email ?? `${crypto.randomUUID()}@example.com`, plan }),
  });
  expect(res.status).toBe(201);
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

export function classify(account: TestAccount, path = "/v1/classify", init: RequestInit = {}) {
  return gateway(path, {
    method: "POST",
    body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
    ...init,
    key: account.api_key,
  });
}

export { env };
