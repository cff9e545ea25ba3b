import { describe, expect, it } from "vitest";
import {
  audit,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
} from "../helpers/http";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

interface Echo {
  category: string;
  echo: {
    method: string;
    path: string;
    query: string;
    headers: Record<string, string>;
    body: string;
  };
}

describe("proxied classification traffic", () => {
  it("forwards method, path, query and body, and adds the credit headers", async () => {
    const account = await createAccount();
    const res = await classify(account, "/v1/classify?lang=en", {
      headers: { "X-Request-Id": "my-trace-1" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Credits-Charged")).toBe("1");
    expect(res.headers.get("X-Credits-Remaining")).toBe("499");
    expect(res.headers.get("X-Request-Id")).toBe("my-trace-1");
    expect(res.headers.get("X-Upstream")).toBe("stub");
    const body = await json<Echo>(res);
    expect(body.echo).toMatchObject({ method: "POST", path: "/v1/classify", query: "?lang=en" });
    expect(JSON.parse(body.echo.body)).toEqual({
      title: "Wireless earbuds",
      description: "Bluetooth 5.3",
    });
    // Passed on as the stream it came in, with its length (not re-chunked).
    expect(body.echo.headers["content-length"]).toBe(String(body.echo.body.length));
    expect(body.echo.headers["transfer-encoding"]).toBeUndefined();
    // The client's key never reaches the upstream; the gateway's own secret does.
    expect(body.echo.headers.authorization).toBe("Bearer upstream-secret");
    expect(JSON.stringify(body.echo.headers)).not.toContain(account.api_key);
    expect(body.echo.headers["x-request-id"]).toBe("my-trace-1");
  });

  it("generates a request id when the client's is missing or unsafe", async () => {
    const account = await createAccount();
    const res = await classify(account, "/v1/classify", {
      headers: { "X-Request-Id": "bad id with spaces" },
    });
    await res.arrayBuffer();
    expect(res.headers.get("X-Request-Id")).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it("spends monthly credits before purchased ones through the gateway", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 1, purchased: 2 });
    await (await classify(account)).arrayBuffer();
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 2, total: 2 });
    await (await classify(account)).arrayBuffer();
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 1, total: 1 });
  });

  it("answers 403 insufficient_credits at zero, forwards nothing and debits nothing", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 0 });
    const requestId = uniqueRequestId();
    const res = await classify(account, "/v1/classify", { headers: { "X-Request-Id": requestId } });
    const body = await expectError(res, 403, "insufficient_credits");
    expect(body.error.balance).toEqual({ monthly: 0, purchased: 0, total: 0 });
    expect(await balanceOf(account)).toMatchObject({ total: 0 });
    expect(await upstreamRequests(requestId)).toEqual([]);
    // The same request with a credit is forwarded, once: the check above can see a forward.
    await setBalance(account, { monthly: 0, purchased: 1 });
    const served = await classify(account, "/v1/classify", {
      headers: { "X-Request-Id": requestId },
    });
    expect(served.status).toBe(200);
    await served.arrayBuffer();
    expect(await upstreamRequests(requestId)).toEqual([
      { method: "POST", path: "/v1/classify", request_id: requestId },
    ]);
  });

  it("passes an upstream 4xx through and keeps it charged", async () => {
    const account = await createAccount();
    const res = await gateway("/v1/status/422", {
      method: "POST",
      body: "{}",
      key: account.api_key,
    });
    expect(res.status).toBe(422);
    // The upstream's headers pass through unchanged.
    expect(res.headers.get("Content-Type")).toBe("application/json");
    expect(res.headers.get("X-Upstream")).toBe("stub");
    expect(res.headers.get("X-Credits-Charged")).toBe("1");
    await res.arrayBuffer();
    expect((await balanceOf(account)).total).toBe(499);
  });

  it("refunds an upstream 5xx exactly and answers 502 upstream_error", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 1, purchased: 3 });
    const res = await gateway("/v1/status/503", {
      method: "POST",
      body: "{}",
      key: account.api_key,
    });
    await expectError(res, 502, "upstream_error");
    expect(await balanceOf(account)).toMatchObject({ monthly: 1, purchased: 3 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("refunds a dropped connection with 502 and a timeout with 504", async () => {
    const account = await createAccount();
    await expectError(
      await gateway("/v1/drop", { method: "POST", body: "{}", key: account.api_key }),
      502,
      "upstream_error",
    );
    await expectError(
      await gateway("/v1/slow?ms=3000", { key: account.api_key }),
      504,
      "upstream_timeout",
    );
    expect((await balanceOf(account)).total).toBe(500);
  });

  it("refuses an oversized body with 413 before the debit, forwarding nothing", async () => {
    const account = await createAccount();
    const requestId = uniqueRequestId();
    const res = await classify(account, "/v1/classify", {
      body: "x".repeat(1_048_577),
      headers: { "X-Request-Id": requestId },
    });
    await expectError(res, 413, "payload_too_large");
    expect((await balanceOf(account)).total).toBe(500);
    expect(await upstreamRequests(requestId)).toEqual([]);
  });

  it("serves exactly 7 of 50 concurrent requests on a balance of 7 (money rule 2)", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 3, purchased: 4 });
    const responses = await Promise.all(Array.from({ length: 50 }, () => classify(account)));
    const statuses = responses.map((r) => r.status);
    const bodies = await Promise.all(responses.map((r) => r.json<{ error?: { type: string } }>()));
    expect(statuses.filter((s) => s === 200)).toHaveLength(7);
    expect(statuses.filter((s) => s === 403)).toHaveLength(43);
    expect(bodies.filter((b) => b.error?.type === "insufficient_credits")).toHaveLength(43);
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 0, total: 0 });
    expect(await audit(account.id)).toMatchObject({
      consistent: true,
      ledger_total: 0,
      balance_total: 0,
    });
  });
});

describe("rate limits per key", () => {
  it("answers 429 rate_limited past the plan's requests per minute, before any debit", async () => {
    const account = await createAccount("free"); // 60 requests per minute per key, 500 credits
    const first = await classify(account);
    expect(first.headers.get("RateLimit-Policy")).toBe('"per-account";q=60;w=60');
    expect(first.headers.get("RateLimit")).toMatch(/^"per-account";r=59;t=\d+$/);
    await first.arrayBuffer();
    // 125 requests span at most two windows, so at least 5 are over the limit whatever the clock.
    const rest = await Promise.all(Array.from({ length: 124 }, () => classify(account)));
    const limited = rest.filter((r) => r.status === 429);
    const served = rest.filter((r) => r.status === 200);
    expect(limited.length).toBeGreaterThanOrEqual(5);
    expect(served.length + limited.length).toBe(124);
    const body = await expectError(limited[0] as Response, 429, "rate_limited");
    expect(Number(limited[0]?.headers.get("Retry-After"))).toBeGreaterThan(0);
    expect(limited[0]?.headers.get("RateLimit")).toMatch(/r=0;/);
    expect(body.error.retry_after_seconds).toBeGreaterThan(0);
    await Promise.all([...served, ...limited.slice(1)].map((r) => r.arrayBuffer()));
    // Throttled requests cost nothing.
    expect(500 - (await balanceOf(account)).total).toBe(1 + served.length);
  });
});
