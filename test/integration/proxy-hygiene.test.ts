import { request } from "node:http";
import { describe, expect, it } from "vitest";
import {
  balanceOf,
  createAccount,
  expectError,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";

interface Echo {
  echo: { method: string; path: string; query: string; headers: Record<string, string> };
}

async function forwarded(account: TestAccount, path: string, init: RequestInit = {}) {
  const res = await gateway(path, { ...init, key: account.api_key });
  expect(res.status).toBe(200);
  return (await json<Echo>(res)).echo;
}

describe("proxy hygiene", () => {
  it("headers named in Connection are not forwarded", async () => {
    const account = await createAccount();
    const echo = await forwarded(account, "/v1/classify", {
      method: "POST",
      body: "{}",
      headers: {
        Connection: "close, X-Secret-Hop, x-other-hop",
        "X-Secret-Hop": "1",
        "X-Other-Hop": "2",
        "X-Kept": "yes",
      },
    });
    expect(echo.headers["x-secret-hop"]).toBeUndefined();
    expect(echo.headers["x-other-hop"]).toBeUndefined();
    expect(echo.headers["x-kept"]).toBe("yes");
  });

  it("client-sent Forwarded, X-Forwarded-*, X-Real-IP and X-HTTP-Method-Override never reach the upstream", async () => {
    const account = await createAccount();
    const echo = await forwarded(account, "/v1/classify", {
      method: "POST",
      body: "{}",
      headers: {
        Forwarded: "for=6.6.6.6",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "gopher",
        "X-Real-IP": "6.6.6.6",
        "X-HTTP-Method-Override": "DELETE",
        "CF-Connecting-IP": "203.0.113.7",
      },
    });
    expect(echo.method).toBe("POST");
    expect(echo.headers.forwarded).toBeUndefined();
    expect(echo.headers["x-forwarded-host"]).toBeUndefined();
    expect(echo.headers["x-forwarded-proto"]).toBeUndefined();
    expect(echo.headers["x-real-ip"]).toBeUndefined();
    expect(echo.headers["x-http-method-override"]).toBeUndefined();
    // The gateway's own X-Forwarded-For: the client's address as the edge saw it.
    expect(echo.headers["x-forwarded-for"]).toBe("203.0.113.7");
  });

  it("OPTIONS is answered by the gateway with 204 and Allow, and costs nothing", async () => {
    const account = await createAccount();
    const before = (await balanceOf(account)).total;
    const res = await gateway("/v1/classify", { method: "OPTIONS", key: account.api_key });
    expect(res.status).toBe(204);
    expect(res.headers.get("Allow")).toBe("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    expect(res.headers.get("X-Upstream")).toBeNull();
    await res.arrayBuffer();
    expect((await balanceOf(account)).total).toBe(before);
  });

  it("TRACE, PROPFIND and other methods are 405 with Allow, not forwarded, and cost nothing", async () => {
    const account = await createAccount();
    const before = (await balanceOf(account)).total;
    for (const method of ["PROPFIND", "MKCOL"]) {
      const res = await gateway("/v1/classify", { method, key: account.api_key });
      const body = await expectError(res, 405, "method_not_allowed");
      expect(body.error.message).toContain(method);
      expect(res.headers.get("Allow")).toBe("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    }
    // Node's fetch refuses TRACE; the gateway sees it through its own fetch handler here.
    const trace = await gateway("/v1/classify", { method: "TRACE", key: account.api_key }).catch(
      () => null,
    );
    if (trace) await expectError(trace, 405, "method_not_allowed");
    expect((await balanceOf(account)).total).toBe(before);
  });

  it("a trailing slash changes neither price nor path: GET /v1/categories/ is free and forwarded as /v1/categories", async () => {
    const account = await createAccount();
    const before = (await balanceOf(account)).total;
    const res = await gateway("/v1/categories/", { key: account.api_key });
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Credits-Charged")).toBe("0");
    expect((await json<Echo>(res)).echo.path).toBe("/v1/categories");
    const classify = await forwarded(account, "/v1/classify//", { method: "POST", body: "{}" });
    expect(classify.path).toBe("/v1/classify");
    expect((await balanceOf(account)).total).toBe(before - 1);
  });
});

// node:http is imported to keep the door open for raw requests in Node-side suites; workerd's
// fetch accepts a Connection header, so the cases above go through the worker directly.
void request;
