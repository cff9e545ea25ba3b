// @ts-check
/**
 * Contract: "Proxied classification traffic" — forwarding, header hygiene, methods, path
 * normalisation, the per-request order (auth, rate limit, debit, forward, refund), and the
 * credit headers. What the upstream received is read from the suite's echo upstream.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  admin,
  awayFromTurnOf,
  balanceOf,
  call,
  classify,
  createAccount,
  createKey,
  expectError,
  NEEDS_ECHO,
  probe,
  rawRequest,
  setBalance,
  startStack,
  UPSTREAM_TOKEN,
} from "./helpers.mjs";

/** @type {import("./helpers.mjs").Stack} */
let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** The echo upstream's record of the request tagged `p`; fails when there is not exactly one. */
function received(/** @type {string} */ p) {
  assert.ok(stack.echo, "echo upstream");
  const hits = stack.echo.find(p);
  assert.equal(hits.length, 1, `the upstream received ${hits.length} requests tagged ${p}`);
  return hits[0];
}

describe("forwarding", { skip: NEEDS_ECHO }, () => {
  test("same method, path, query and body; the client's Authorization is not forwarded", async () => {
    const account = await createAccount(stack);
    const p = probe();
    const body = JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" });
    const res = await call(stack, `/v1/classify?probe=${p}&lang=en`, {
      key: account.api_key,
      raw: body,
    });
    assert.equal(res.status, 200, res.text);
    const got = received(p);
    assert.equal(got.method, "POST");
    assert.equal(got.url, `/v1/classify?probe=${p}&lang=en`);
    assert.equal(got.body, body);
    assert.notEqual(got.headers.authorization, `Bearer ${account.api_key}`);
    assert.ok(
      !JSON.stringify(got.headers).includes(account.api_key),
      "the key is not forwarded at all",
    );
    assert.equal(got.headers.authorization, `Bearer ${UPSTREAM_TOKEN}`, "the gateway's own secret");
  });

  test("GET, HEAD, PUT, PATCH and DELETE are forwarded with their method", async () => {
    const account = await createAccount(stack);
    for (const method of ["GET", "HEAD", "PUT", "PATCH", "DELETE"]) {
      const p = probe();
      const hasBody = !["GET", "HEAD"].includes(method);
      const res = await call(stack, `/v1/things/1?probe=${p}`, {
        method,
        key: account.api_key,
        raw: hasBody ? '{"a":1}' : undefined,
      });
      assert.equal(res.status, 200, `${method}: ${res.status} ${res.text}`);
      const got = received(p);
      assert.equal(got.method, method);
      assert.equal(got.path, "/v1/things/1");
      if (hasBody) assert.equal(got.body, '{"a":1}', `${method} body`);
    }
  });

  test("the upstream's status, headers and body pass through, with X-Credits-Charged/Remaining", async () => {
    const account = await createAccount(stack);
    const startTotal = (await balanceOf(stack, account.api_key)).total;
    const p = probe();
    const res = await call(stack, `/v1/classify?probe=${p}`, {
      key: account.api_key,
      body: { title: "x" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-upstream-marker"), "echo");
    assert.deepEqual(res.body, { echo: true, method: "POST", path: "/v1/classify" });
    const charged = Number(res.headers.get("x-credits-charged"));
    assert.ok(
      Number.isInteger(charged) && charged >= 0,
      `X-Credits-Charged: ${res.headers.get("x-credits-charged")}`,
    );
    assert.equal(Number(res.headers.get("x-credits-remaining")), startTotal - charged);
    assert.equal((await balanceOf(stack, account.api_key)).total, startTotal - charged);
  });
});

describe("request header hygiene", { skip: NEEDS_ECHO }, () => {
  // wrangler dev's own proxy strips the Connection header before the Worker sees it, and keeps
  // the headers it names (checked with a bare Worker under wrangler 4.84.1; the Miniflare API
  // and workerd pass it through). The gateway's handling is tested inside workerd instead:
  // test/integration/proxy-hygiene.test.ts › headers named in Connection are not forwarded.
  test("headers named in Connection are not forwarded", {
    skip: "wrangler dev strips Connection before the Worker (see comment)",
  }, async () => {
    const account = await createAccount(stack);
    const p = probe();
    const res = await rawRequest(stack, {
      method: "POST",
      path: `/v1/classify?probe=${p}`,
      headers: {
        Authorization: `Bearer ${account.api_key}`,
        "Content-Type": "application/json",
        Connection: "close, X-Hop-Secret, X-Other-Hop",
        "X-Hop-Secret": "must-not-arrive",
        "X-Other-Hop": "must-not-arrive-either",
        "X-End-To-End": "arrives",
      },
      body: '{"title":"x"}',
    });
    assert.equal(res.status, 200, res.text);
    const got = received(p);
    assert.equal(got.headers["x-end-to-end"], "arrives", "an ordinary header is forwarded");
    assert.equal(got.headers["x-hop-secret"], undefined, "X-Hop-Secret (named in Connection)");
    assert.equal(got.headers["x-other-hop"], undefined, "X-Other-Hop (named in Connection)");
  });

  test("hop-by-hop headers are not forwarded", async () => {
    const account = await createAccount(stack);
    const p = probe();
    const res = await rawRequest(stack, {
      method: "POST",
      path: `/v1/classify?probe=${p}`,
      headers: {
        Authorization: `Bearer ${account.api_key}`,
        "Content-Type": "application/json",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0OnNlY3JldA==",
      },
      body: '{"title":"x"}',
    });
    assert.equal(res.status, 200, res.text);
    const got = received(p);
    assert.equal(got.headers["proxy-authorization"], undefined, "Proxy-Authorization");
    assert.equal(got.headers["keep-alive"], undefined, "Keep-Alive");
  });

  test("client Forwarded / X-Forwarded-* / X-Real-IP are replaced by the gateway's X-Forwarded-For", async () => {
    const account = await createAccount(stack);
    const p = probe();
    const res = await call(stack, `/v1/classify?probe=${p}`, {
      key: account.api_key,
      body: { title: "x" },
      headers: {
        Forwarded: "for=203.0.113.7;proto=https;host=evil.example",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Real-IP": "203.0.113.7",
      },
    });
    assert.equal(res.status, 200, res.text);
    const got = received(p);
    assert.equal(got.headers.forwarded, undefined, "Forwarded");
    assert.equal(got.headers["x-forwarded-host"], undefined, "X-Forwarded-Host");
    assert.equal(got.headers["x-forwarded-proto"], undefined, "X-Forwarded-Proto");
    assert.equal(got.headers["x-forwarded-port"], undefined, "X-Forwarded-Port");
    assert.equal(got.headers["x-real-ip"], undefined, "X-Real-IP");
    const xff = got.headers["x-forwarded-for"];
    assert.ok(xff, "the gateway sets X-Forwarded-For");
    assert.ok(!xff.includes("203.0.113.7"), `the client's X-Forwarded-For is not kept: ${xff}`);
    assert.match(xff, /^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/, "the client's own address");
  });

  test("without client forwarding headers the upstream still gets X-Forwarded-For", async () => {
    const account = await createAccount(stack);
    const p = probe();
    assert.equal((await classify(stack, account.api_key, { "X-Probe": p })).status, 200);
    assert.match(
      received(p).headers["x-forwarded-for"] ?? "",
      /^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/,
    );
  });

  test("X-HTTP-Method-Override is neither honoured nor forwarded", async () => {
    const account = await createAccount(stack);
    const p = probe();
    const res = await call(stack, `/v1/classify?probe=${p}`, {
      key: account.api_key,
      body: { title: "x" },
      headers: { "X-HTTP-Method-Override": "DELETE", "X-Method-Override": "DELETE" },
    });
    assert.equal(res.status, 200, res.text);
    const got = received(p);
    assert.equal(got.method, "POST");
    assert.equal(got.headers["x-http-method-override"], undefined, "X-HTTP-Method-Override");
    assert.equal(got.headers["x-method-override"], undefined, "X-Method-Override");
  });
});

describe("X-HTTP-Method-Override on the account routes", () => {
  test("POST with an override to DELETE does not revoke a key", async () => {
    const account = await createAccount(stack);
    const created = await createKey(stack, account.api_key, { name: "victim" });
    const res = await call(stack, `/v1/account/keys/${created.id}`, {
      method: "POST",
      key: account.api_key,
      body: {},
      headers: { "X-HTTP-Method-Override": "DELETE" },
    });
    expectError(res, 405, "method_not_allowed", "POST /v1/account/keys/:id with an override");
    const check = await call(stack, "/v1/account", { key: created.key });
    assert.equal(check.status, 200, "the key still works");
  });
});

describe("methods the gateway answers itself", () => {
  test("OPTIONS is 204 with Allow, not forwarded, costs nothing", async () => {
    const account = await createAccount(stack);
    const before = await balanceOf(stack, account.api_key);
    const p = probe();
    const res = await call(stack, `/v1/classify?probe=${p}`, {
      method: "OPTIONS",
      key: account.api_key,
    });
    assert.equal(res.status, 204, `OPTIONS → ${res.status} ${res.text}`);
    const allow = res.headers.get("allow");
    assert.ok(allow, "Allow header");
    for (const m of ["GET", "POST"]) assert.ok(allow.toUpperCase().includes(m), `Allow: ${allow}`);
    assert.ok(!/TRACE/i.test(allow), `Allow does not offer TRACE: ${allow}`);
    if (stack.echo) assert.equal(stack.echo.find(p).length, 0, "not forwarded");
    assert.equal((await balanceOf(stack, account.api_key)).total, before.total, "costs nothing");
  });

  for (const method of ["TRACE", "PROPFIND"]) {
    test(`${method} is 405 method_not_allowed, not forwarded, costs nothing`, async () => {
      const account = await createAccount(stack);
      const before = await balanceOf(stack, account.api_key);
      const p = probe();
      const res = await rawRequest(stack, {
        method,
        path: `/v1/classify?probe=${p}`,
        headers: { Authorization: `Bearer ${account.api_key}` },
      });
      expectError(res, 405, "method_not_allowed", method);
      if (stack.echo) assert.equal(stack.echo.find(p).length, 0, "not forwarded");
      assert.equal((await balanceOf(stack, account.api_key)).total, before.total, "costs nothing");
    });
  }
});

describe("path normalisation", () => {
  test("GET /v1/categories/ is priced and forwarded as /v1/categories", async () => {
    const account = await createAccount(stack);
    const p1 = probe();
    const p2 = probe();
    const plain = await call(stack, `/v1/categories?probe=${p1}`, { key: account.api_key });
    const slash = await call(stack, `/v1/categories/?probe=${p2}`, { key: account.api_key });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(slash.status, 200, `GET /v1/categories/ → ${slash.status} ${slash.text}`);
    assert.equal(
      slash.headers.get("x-credits-charged"),
      plain.headers.get("x-credits-charged"),
      "a trailing slash does not change the price",
    );
    if (stack.echo) {
      assert.equal(received(p1).path, "/v1/categories");
      assert.equal(received(p2).path, "/v1/categories", "forwarded in the normalized form");
    }
  });
});

describe("credits", () => {
  test("monthly credits are spent before purchased ones", async () => {
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 2, purchased: 5 });
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const res = await classify(stack, account.api_key);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get("x-credits-charged"), "1");
      const b = await balanceOf(stack, account.api_key);
      seen.push([b.monthly, b.purchased, Number(res.headers.get("x-credits-remaining"))]);
    }
    assert.deepEqual(seen, [
      [1, 5, 6],
      [0, 5, 5],
      [0, 4, 4],
    ]);
  });

  test("concurrent requests on one account: exactly min(N, B) served, each told its own balance, none lost", async () => {
    // Each request is its own context in the runtime; the gateway coalesces their debits into
    // shared ledger calls (src/gateway/debit-lanes.ts), so a request may wait on a call another
    // request made: it must neither hang nor be cancelled as hung (a 500).
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 0, purchased: 30 });
    const responses = await Promise.all(
      Array.from({ length: 48 }, () => classify(stack, account.api_key)),
    );
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 30, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 403).length, 18, JSON.stringify(statuses));
    const remaining = responses
      .filter((r) => r.status === 200)
      .map((r) => Number(r.headers.get("x-credits-remaining")))
      .sort((a, b) => a - b);
    assert.deepEqual(
      remaining,
      Array.from({ length: 30 }, (_, i) => i),
    );
    const b = await balanceOf(stack, account.api_key);
    assert.equal(b.total, 0);
    const audit = await admin(stack, `/accounts/${account.id}/audit`);
    assert.equal(audit.body?.consistent, true);
  });

  test("403 insufficient_credits with balance {monthly, purchased, total}: nothing forwarded, nothing debited", async () => {
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 0, purchased: 0 });
    const p = probe();
    const res = await classify(stack, account.api_key, { "X-Probe": p });
    const error = expectError(res, 403, "insufficient_credits");
    assert.deepEqual(error.balance, { monthly: 0, purchased: 0, total: 0 });
    if (stack.echo) assert.equal(stack.echo.find(p).length, 0, "nothing forwarded");
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual([b.monthly, b.purchased, b.total], [0, 0, 0], "nothing debited");
    const audit = await admin(stack, `/accounts/${account.id}/audit`);
    assert.equal(audit.body?.consistent, true);
  });
});

describe("upstream failures", { skip: NEEDS_ECHO }, () => {
  test("an upstream 4xx is passed through and stays charged", async () => {
    const account = await createAccount(stack);
    const before = await balanceOf(stack, account.api_key);
    const res = await call(stack, "/v1/echo/status/422", { key: account.api_key, body: {} });
    assert.equal(res.status, 422);
    assert.equal(res.headers.get("x-upstream-marker"), "echo");
    const charged = Number(res.headers.get("x-credits-charged"));
    assert.ok(charged >= 1);
    assert.equal((await balanceOf(stack, account.api_key)).total, before.total - charged);
  });

  test("an upstream 5xx is 502 upstream_error and the debit is reversed", async () => {
    const account = await createAccount(stack);
    const before = await balanceOf(stack, account.api_key);
    const res = await call(stack, "/v1/echo/status/503", { key: account.api_key, body: {} });
    expectError(res, 502, "upstream_error");
    assert.equal((await balanceOf(stack, account.api_key)).total, before.total);
  });

  test("an upstream timeout is 504 upstream_timeout and the debit is reversed", async () => {
    const account = await createAccount(stack);
    const before = await balanceOf(stack, account.api_key);
    const res = await call(stack, "/v1/echo/slow", { key: account.api_key, body: {} });
    expectError(res, 504, "upstream_timeout");
    assert.equal((await balanceOf(stack, account.api_key)).total, before.total);
  });
});

describe("rate limits", () => {
  /** @param {string} accountId @param {number | null} limit */
  const setLimit = async (accountId, limit) => {
    const res = await admin(stack, `/accounts/${accountId}`, {
      method: "PATCH",
      body: { rate_limit_per_minute: limit },
    });
    assert.equal(
      res.status,
      200,
      `PATCH /admin/accounts/:id {rate_limit_per_minute: ${limit}} → ${res.status} ${res.text}`,
    );
    return res;
  };

  test("operator override: over rate_limit_per_minute is 429 rate_limited with Retry-After and RateLimit-*, not debited", async () => {
    const account = await createAccount(stack);
    await setLimit(account.id, 3);
    await awayFromTurnOf("minute"); // the limit counts calendar minutes
    for (let i = 0; i < 3; i++)
      assert.equal((await classify(stack, account.api_key)).status, 200, `request ${i + 1}`);
    const before = await balanceOf(stack, account.api_key);
    const res = await classify(stack, account.api_key);
    expectError(res, 429, "rate_limited", "4th request with a limit of 3/min");
    const retry = res.headers.get("retry-after");
    assert.ok(retry && /^\d+$/.test(retry) && Number(retry) <= 60, `Retry-After: ${retry}`);
    const names = [...res.headers.keys()];
    assert.ok(
      names.some((n) => n.startsWith("ratelimit")),
      `RateLimit-* headers: ${names.join(", ")}`,
    );
    assert.equal(
      (await balanceOf(stack, account.api_key)).total,
      before.total,
      "a 429 is not debited",
    );
  });

  test("the limit counts all the account's keys together", async () => {
    const account = await createAccount(stack);
    const key2 = (await createKey(stack, account.api_key, { name: "second" })).key;
    await setLimit(account.id, 4);
    await awayFromTurnOf("minute"); // the limit counts calendar minutes
    const statuses = [];
    for (const key of [account.api_key, key2, account.api_key, key2, key2, account.api_key]) {
      statuses.push((await classify(stack, key)).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  });

  test("PATCH rate_limit_per_minute: null goes back to the plan's limit", async () => {
    const account = await createAccount(stack);
    await setLimit(account.id, 1);
    await awayFromTurnOf("minute"); // the limit counts calendar minutes
    assert.equal((await classify(stack, account.api_key)).status, 200);
    expectError(await classify(stack, account.api_key), 429, "rate_limited");
    await setLimit(account.id, null);
    // The plan's limit is well above two requests a minute; the PATCH is applied in the
    // account's Durable Object before it answers, so no wait is needed.
    assert.equal((await classify(stack, account.api_key)).status, 200);
  });

  test("PATCH /admin/accounts/:id with a bad rate_limit_per_minute is 400 naming it", async () => {
    const account = await createAccount(stack);
    const res = await admin(stack, `/accounts/${account.id}`, {
      method: "PATCH",
      body: { rate_limit_per_minute: "lots" },
    });
    const error = expectError(res, 400, "invalid_request");
    const names = (error.fields ?? []).map((/** @type {any} */ f) =>
      typeof f === "string" ? f : f.field,
    );
    assert.ok(names.includes("rate_limit_per_minute"), JSON.stringify(error));
  });
});
