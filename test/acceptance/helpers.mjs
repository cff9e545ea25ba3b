// @ts-check
/**
 * Helpers for the acceptance suite: start (or find) a stack, talk to it over HTTP as an
 * outside client does, and an echo upstream that records exactly what the gateway forwarded.
 *
 * Nothing here imports the gateway's source: the suite knows only the contract
 * (/work/shared/API.md) and the product doc (product/auto-recharge.md).
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Set: run against an already running `npm start` instead of starting a stack per file. */
export const EXTERNAL_BASE_URL = process.env.ACCEPTANCE_BASE_URL?.replace(/\/+$/, "") || null;
export const EXTERNAL = EXTERNAL_BASE_URL !== null;
/** Tests that must see what the upstream received need our own echo upstream. */
export const NEEDS_ECHO = EXTERNAL
  ? "needs the suite's own echo upstream (not available with ACCEPTANCE_BASE_URL)"
  : false;

/** Per-request client timeout: a test for a missing feature fails, it does not hang. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** "within seconds": how long a background effect (recharge, email, revocation) may take. */
export const WITHIN_SECONDS_MS = Number(process.env.ACCEPTANCE_WITHIN_MS ?? 12_000);
/** The body limit the self-started stack is configured with (MAX_BODY_BYTES). */
export const SELF_MAX_BODY_BYTES = 65_536;

export const UPSTREAM_TOKEN = "acceptance-upstream-secret";

/**
 * @typedef {{ method: string, url: string, path: string, headers: Record<string, string>,
 *   rawHeaders: string[], body: string, at: number }} UpstreamRequest
 * @typedef {{ url: string, requests: UpstreamRequest[], close: () => Promise<void>,
 *   find: (probe: string) => UpstreamRequest[] }} EchoUpstream
 * @typedef {{ base: string, adminToken: string | null, stripeUrl: string | null,
 *   echo: EchoUpstream | null, maxBodyBytes: number, external: boolean,
 *   stop: () => Promise<void> }} Stack
 */

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * An upstream that records every request and answers 200 JSON describing it.
 * - `/v1/echo/status/<code>` answers with that status;
 * - `/v1/echo/slow` answers after 5 s (longer than the suite's UPSTREAM_TIMEOUT_MS).
 * Tests tag their requests with a `probe` query parameter or `X-Probe` header to find them.
 * @returns {Promise<EchoUpstream>}
 */
export async function startEchoUpstream() {
  /** @type {UpstreamRequest[]} */
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const url = new URL(req.url ?? "/", "http://upstream");
    /** @type {UpstreamRequest} */
    const record = {
      method: req.method ?? "",
      url: req.url ?? "",
      path: url.pathname,
      headers: /** @type {Record<string, string>} */ (
        Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [
            k,
            Array.isArray(v) ? v.join(", ") : String(v),
          ]),
        )
      ),
      rawHeaders: req.rawHeaders,
      body: Buffer.concat(chunks).toString("utf8"),
      at: Date.now(),
    };
    requests.push(record);
    const statusMatch = /^\/v1\/echo\/status\/(\d{3})$/.exec(url.pathname);
    const status = statusMatch ? Number(statusMatch[1]) : 200;
    const send = () => {
      if (res.destroyed) return;
      const text = JSON.stringify({ echo: true, method: record.method, path: record.path });
      res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(text),
        "X-Upstream-Marker": "echo",
      });
      res.end(req.method === "HEAD" ? undefined : text);
    };
    // Kept fixed: this delay is the behaviour under test (an upstream slower than the gateway's
    // UPSTREAM_TIMEOUT_MS), not a test waiting for something.
    if (url.pathname === "/v1/echo/slow") setTimeout(send, 5_000).unref();
    else send();
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("echo upstream has no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    find: (probe) =>
      requests.filter((r) => r.url.includes(probe) || r.headers["x-probe"] === probe),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve(undefined));
      }),
  };
}

/**
 * The stack a test file runs against: `startLocalStack` on free ports with a fresh state
 * directory and our echo upstream, or (ACCEPTANCE_BASE_URL set) an already running one.
 * @param {{ env?: Record<string, string>, echo?: boolean }} [options]
 * @returns {Promise<Stack>}
 */
export async function startStack(options = {}) {
  if (EXTERNAL_BASE_URL) {
    return {
      base: EXTERNAL_BASE_URL,
      adminToken: process.env.ADMIN_TOKEN ?? "dev-admin-token",
      stripeUrl: process.env.ACCEPTANCE_STRIPE_URL ?? null,
      echo: null,
      maxBodyBytes: Number(process.env.ACCEPTANCE_MAX_BODY_BYTES ?? 1_048_576),
      external: true,
      stop: async () => {},
    };
  }
  const { startLocalStack } = await import(path.join(root, "scripts", "local-stack.mjs"));
  const echo = options.echo === false ? null : await startEchoUpstream();
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "tollgate-acceptance-"));
  const port = await freePort();
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env };
  // startLocalStack prefers these over its options; the suite decides them itself.
  for (const name of ["PORT", "ADMIN_TOKEN", "UPSTREAM_URL", "STRIPE_API_URL", "STRIPE_SECRET_KEY"])
    delete env[name];
  env.MAX_BODY_BYTES = String(SELF_MAX_BODY_BYTES);
  env.UPSTREAM_TIMEOUT_MS = "2000";
  env.UPSTREAM_TOKEN = UPSTREAM_TOKEN;
  if (echo) env.UPSTREAM_URL = echo.url;
  Object.assign(env, options.env ?? {});
  let stack;
  try {
    stack = await startLocalStack({
      port,
      persistTo,
      quiet: true,
      demoAccount: false,
      stripePort: await freePort(),
      env,
    });
  } catch (err) {
    await echo?.close();
    rmSync(persistTo, { recursive: true, force: true });
    throw err;
  }
  return {
    base: stack.gatewayUrl,
    adminToken: stack.adminToken || null,
    stripeUrl: stack.stripeUrl,
    echo,
    maxBodyBytes: SELF_MAX_BODY_BYTES,
    external: false,
    stop: async () => {
      await stack.stop();
      await echo?.close();
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}

/**
 * @typedef {{ status: number, headers: Headers, text: string, body: any }} Reply
 * @typedef {{ method?: string, key?: string | null, body?: unknown, raw?: string,
 *   headers?: Record<string, string> }} CallInit
 */

/**
 * One HTTP request to the gateway with fetch. `body` is sent as JSON; `raw` as is.
 * @param {Stack} stack @param {string} pathname @param {CallInit} [init]
 * @returns {Promise<Reply>}
 */
export async function call(stack, pathname, init = {}) {
  /** @type {Record<string, string>} */
  const headers = { ...(init.headers ?? {}) };
  if (init.key) headers.Authorization = `Bearer ${init.key}`;
  /** @type {string | undefined} */
  let body;
  if (init.raw !== undefined) body = init.raw;
  else if (init.body !== undefined) body = JSON.stringify(init.body);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
    headers["Content-Type"] = "application/json";
  const method = init.method ?? (body === undefined ? "GET" : "POST");
  let res;
  try {
    res = await fetch(`${stack.base}${pathname}`, {
      method,
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new Error(`${method} ${pathname} failed: ${err instanceof Error ? err.message : err}`);
  }
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/** @param {Stack} stack @param {string} pathname @param {CallInit} [init] */
export function admin(stack, pathname, init = {}) {
  return call(stack, `/admin${pathname}`, {
    ...init,
    headers: { Authorization: `Bearer ${stack.adminToken}`, ...(init.headers ?? {}) },
  });
}

/**
 * A request with node:http, for what fetch refuses (TRACE, a `Connection` request header).
 * @param {Stack} stack
 * @param {{ method: string, path: string, headers?: Record<string, string>, body?: string }} req
 * @returns {Promise<{ status: number, headers: http.IncomingHttpHeaders, text: string, body: any }>}
 */
export function rawRequest(stack, req) {
  const url = new URL(req.path, stack.base);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: url.pathname + url.search,
        headers: req.headers,
        agent: false,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on("error", reject);
      },
    );
    r.on("timeout", () => r.destroy(new Error(`${req.method} ${req.path} timed out`)));
    r.on("error", reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

/** A unique address in a reserved domain. */
export function uniqueEmail(tag = "acc") {
  return `${tag}-${randomUUID()}@example.com`;
}

/** A string that the echo upstream can find the request by. */
export function probe() {
  return `p${randomUUID().replaceAll("-", "")}`;
}

/** A well-formed key nobody was given. */
export function unknownKey() {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(32);
  return `tg_test_${Array.from(bytes, (b) => alphabet[b % 62]).join("")}`;
}

/**
 * A fresh account through the operator route (free plan unless told).
 * @param {Stack} stack
 * @param {{ plan?: string, complimentary?: boolean, email?: string }} [opts]
 * @returns {Promise<{ id: string, api_key: string, stripe_customer_id: string | null, email: string }>}
 */
export async function createAccount(stack, opts = {}) {
  const email = opts.email ?? uniqueEmail();
  /** @type {Record<string, unknown>} */
  const body = { email };
  if (opts.plan) body.plan = opts.plan;
  if (opts.complimentary !== undefined) body.complimentary = opts.complimentary;
  const res = await admin(stack, "/accounts", { body });
  assert.equal(res.status, 201, `POST /admin/accounts → ${res.status} ${res.text}`);
  assert.equal(typeof res.body.id, "string");
  assert.equal(typeof res.body.api_key, "string");
  return { ...res.body, email };
}

/** @param {Stack} stack @param {string} key */
export async function balanceOf(stack, key) {
  const res = await call(stack, "/v1/account/balance", { key });
  assert.equal(res.status, 200, `GET /v1/account/balance → ${res.status} ${res.text}`);
  return res.body;
}

/**
 * Moves the buckets to exactly these amounts with POST /admin/accounts/:id/credits.
 * @param {Stack} stack @param {{ id: string, api_key: string }} account
 * @param {{ monthly: number, purchased: number }} target
 */
export async function setBalance(stack, account, target) {
  const now = await balanceOf(stack, account.api_key);
  const monthly = target.monthly - now.monthly;
  const purchased = target.purchased - now.purchased;
  if (monthly === 0 && purchased === 0) return now;
  /** @type {Record<string, unknown>} */
  const body = { reason: "acceptance test setup" };
  if (monthly !== 0) body.monthly = monthly;
  if (purchased !== 0) body.purchased = purchased;
  const res = await admin(stack, `/accounts/${account.id}/credits`, { body });
  assert.equal(res.status, 200, `POST /admin/accounts/:id/credits → ${res.status} ${res.text}`);
  const after = await balanceOf(stack, account.api_key);
  assert.deepEqual(
    { monthly: after.monthly, purchased: after.purchased },
    target,
    "the balance after the operator adjustment",
  );
  return after;
}

/** @param {Stack} stack @param {string} accountId @param {string} pm */
export async function attachPaymentMethod(stack, accountId, pm = "pm_card_visa") {
  const res = await admin(stack, `/accounts/${accountId}/payment-method`, {
    body: { payment_method: pm },
  });
  assert.equal(
    res.status,
    200,
    `POST /admin/accounts/:id/payment-method → ${res.status} ${res.text}`,
  );
  return res.body;
}

/** One 1-credit classification request (the default route cost). @param {Stack} stack @param {string} key */
export function classify(stack, key, extraHeaders = {}) {
  return call(stack, "/v1/classify", {
    key,
    body: { title: "Wireless earbuds", description: "Bluetooth 5.3" },
    headers: extraHeaders,
  });
}

/** The account's emails, newest first (accepts a bare array or a `{data}` list). @param {Stack} stack @param {string} accountId */
export async function emailsOf(stack, accountId) {
  const res = await admin(stack, `/accounts/${accountId}/emails`);
  assert.equal(res.status, 200, `GET /admin/accounts/:id/emails → ${res.status} ${res.text}`);
  const list = Array.isArray(res.body) ? res.body : res.body?.data;
  assert.ok(Array.isArray(list), `emails list: ${res.text}`);
  return /** @type {any[]} */ (list);
}

/**
 * Asserts the contract's error envelope: status, `error.type`, a message, the JSON type.
 * @param {{ status: number, headers: Headers | http.IncomingHttpHeaders, body: any, text: string }} res
 * @param {number} status @param {string} type @param {string} [what]
 */
export function expectError(res, status, type, what = "") {
  const got = { status: res.status, type: res.body?.error?.type };
  assert.deepEqual(
    got,
    { status, type },
    `${what ? `${what}: ` : ""}expected ${status} ${type}, got ${res.status} ${res.text.slice(0, 300)}`,
  );
  assert.equal(typeof res.body.error.message, "string", "error.message is a string");
  const ct =
    res.headers instanceof Headers ? res.headers.get("content-type") : res.headers["content-type"];
  assert.equal(ct, "application/json; charset=utf-8", "error Content-Type");
  return res.body.error;
}

/** The names in `error.fields` (a list of `{field}` objects or of strings). @param {any} error */
export function fieldNames(error) {
  const fields = error?.fields;
  assert.ok(Array.isArray(fields), `error.fields is a list: ${JSON.stringify(error)}`);
  return fields.map((f) => (typeof f === "string" ? f : f?.field));
}

/**
 * Polls `fn` until it returns a truthy value; fails with `message` (and the last value) after
 * `timeoutMs`.
 * @template T
 * @param {() => Promise<T>} fn @param {string} message
 * @param {{ timeoutMs?: number, intervalMs?: number }} [opts]
 * @returns {Promise<NonNullable<T>>}
 */
export async function waitFor(fn, message, opts = {}) {
  const deadline = Date.now() + (opts.timeoutMs ?? WITHIN_SECONDS_MS);
  /** @type {unknown} */
  let last;
  while (true) {
    try {
      last = await fn();
      if (last) return /** @type {NonNullable<T>} */ (last);
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline) {
      assert.fail(
        `${message} (waited ${opts.timeoutMs ?? WITHIN_SECONDS_MS} ms; last: ${JSON.stringify(last)?.slice(0, 400)})`,
      );
    }
    await sleep(opts.intervalMs ?? 250); // the poll interval, not a wait for an outcome
  }
}

/**
 * A fixed pause. Only for the poll interval and the clock below: a test that waits for an
 * effect uses `waitFor`, and one that proves an effect did NOT happen first waits for a later
 * event that could only come after it (a barrier), never for a while.
 * @param {number} ms
 */
export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Waits out the last `marginMs` of a UTC calendar period, so a test whose steps must fall in
 * one period (a rate-limit minute, a spending-limit month) cannot straddle its turn.
 * @param {"minute" | "month"} period
 * @param {number} [marginMs]
 */
export async function awayFromTurnOf(period, marginMs = period === "minute" ? 8_000 : 20_000) {
  const now = new Date();
  const next =
    period === "minute"
      ? Math.ceil((now.getTime() + 1) / 60_000) * 60_000
      : Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  const left = next - now.getTime();
  // Kept fixed: what is waited for is the wall clock itself passing the turn; nothing in the
  // stack marks it, and the time left is known exactly.
  if (left < marginMs) await sleep(left + 50);
}

/** RFC 3339 UTC, e.g. 2026-01-01T00:00:00Z or with fractional seconds. @param {unknown} v */
export function isRfc3339Utc(v) {
  return typeof v === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(v);
}

/** @param {string} key */
export function isApiKey(key) {
  return /^tg_(live|test)_[A-Za-z0-9]{32,}$/.test(key);
}

/**
 * POST /v1/account/keys. The contract fixes no name for the field holding the full key, so it
 * is the one string value that has the key form.
 * @param {Stack} stack @param {string} key @param {Record<string, unknown>} [body]
 * @returns {Promise<{ id: string, key: string, body: any, status: number }>}
 */
export async function createKey(stack, key, body = {}) {
  const res = await call(stack, "/v1/account/keys", { key, body });
  assert.ok(
    [200, 201].includes(res.status),
    `POST /v1/account/keys ${JSON.stringify(body)} → ${res.status} ${res.text}`,
  );
  const full = Object.values(res.body ?? {}).find((v) => typeof v === "string" && isApiKey(v));
  assert.ok(full, `the full key is in the answer: ${res.text}`);
  assert.equal(typeof res.body.id, "string", "the new key's id");
  return { id: res.body.id, key: /** @type {string} */ (full), body: res.body, status: res.status };
}

/** GET /v1/account/keys as a list (a bare array or `{data}`). @param {Stack} stack @param {string} key */
export async function listKeys(stack, key) {
  const res = await call(stack, "/v1/account/keys", { key });
  assert.equal(res.status, 200, `GET /v1/account/keys → ${res.status} ${res.text}`);
  const list = Array.isArray(res.body) ? res.body : res.body?.data;
  assert.ok(Array.isArray(list), `keys list: ${res.text}`);
  return /** @type {any[]} */ (list);
}
