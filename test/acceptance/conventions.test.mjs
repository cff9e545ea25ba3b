// @ts-check
/**
 * Contract: "Conventions", "Authentication" (401), `/healthz`, and the operator routes'
 * own authentication.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  admin,
  call,
  classify,
  createAccount,
  expectError,
  fieldNames,
  startStack,
  uniqueEmail,
  unknownKey,
} from "./helpers.mjs";

/** @type {import("./helpers.mjs").Stack} */
let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe("GET /healthz", () => {
  test('answers 200 {"ok": true}', async () => {
    const res = await call(stack, "/healthz");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { ok: true });
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  });
});

describe("X-Request-Id", () => {
  test("a safe 1–128 character id is echoed", async () => {
    for (const id of ["a", "req-123_abc.DEF:9", "x".repeat(128)]) {
      const res = await call(stack, "/healthz", { headers: { "X-Request-Id": id } });
      assert.equal(res.headers.get("x-request-id"), id);
    }
  });

  test("missing, too long or unsafe ids are replaced by a generated one", async () => {
    const seen = new Set();
    for (const sent of [undefined, "x".repeat(129), "has spaces in it", "semi;colon", "<script>"]) {
      const res = await call(stack, "/healthz", {
        headers: sent === undefined ? {} : { "X-Request-Id": sent },
      });
      const got = res.headers.get("x-request-id");
      assert.ok(got && got.length >= 1 && got.length <= 128, `generated id: ${got}`);
      assert.notEqual(got, sent);
      seen.add(got);
    }
    assert.equal(seen.size, 5, "each request gets its own generated id");
  });

  test("is on every response: errors, account routes, proxied traffic", async () => {
    const account = await createAccount(stack);
    const responses = [
      await call(stack, "/nope", { headers: { "X-Request-Id": "rid-404" } }),
      await call(stack, "/v1/account", { headers: { "X-Request-Id": "rid-401" } }),
      await call(stack, "/v1/account", {
        key: account.api_key,
        headers: { "X-Request-Id": "rid-200" },
      }),
      await classify(stack, account.api_key, { "X-Request-Id": "rid-proxy" }),
    ];
    assert.deepEqual(
      responses.map((r) => r.headers.get("x-request-id")),
      ["rid-404", "rid-401", "rid-200", "rid-proxy"],
    );
    for (const res of [await call(stack, "/nope"), await classify(stack, account.api_key)]) {
      assert.ok(res.headers.get("x-request-id"), "generated when not sent");
    }
  });
});

describe("unknown routes and wrong methods", () => {
  test("unknown route: 404 not_found in the error envelope", async () => {
    expectError(await call(stack, "/nope"), 404, "not_found", "GET /nope");
    const account = await createAccount(stack);
    expectError(
      await call(stack, "/v1/account/no-such-thing", { key: account.api_key }),
      404,
      "not_found",
      "GET /v1/account/no-such-thing",
    );
  });

  test("wrong method on a known route: 405 method_not_allowed", async () => {
    const account = await createAccount(stack);
    expectError(
      await call(stack, "/v1/account/balance", { method: "DELETE", key: account.api_key }),
      405,
      "method_not_allowed",
      "DELETE /v1/account/balance",
    );
    expectError(
      await call(stack, "/healthz", { method: "POST", body: {} }),
      405,
      "method_not_allowed",
      "POST /healthz",
    );
  });
});

describe("400 invalid_request", () => {
  test("malformed JSON is 400 invalid_request with error.fields", async () => {
    const res = await admin(stack, "/accounts", { raw: '{"email": ' });
    const error = expectError(res, 400, "invalid_request", "malformed JSON");
    fieldNames(error);
  });

  test("a body that fails validation names the offending field", async () => {
    const res = await admin(stack, "/accounts", { body: { email: "not an address" } });
    const error = expectError(res, 400, "invalid_request");
    assert.ok(fieldNames(error).includes("email"), `fields: ${JSON.stringify(error.fields)}`);

    const account = await createAccount(stack);
    const put = await call(stack, "/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: { enabled: "yes" },
    });
    const err2 = expectError(put, 400, "invalid_request", "PUT auto-recharge enabled:'yes'");
    assert.ok(fieldNames(err2).includes("enabled"), `fields: ${JSON.stringify(err2.fields)}`);
  });
});

describe("413 payload_too_large", () => {
  test("a body over the configured limit is 413 payload_too_large and costs nothing", async () => {
    const account = await createAccount(stack);
    const before = (await call(stack, "/v1/account/balance", { key: account.api_key })).body;
    const big = JSON.stringify({ title: "x", description: "y".repeat(stack.maxBodyBytes + 1024) });
    const res = await call(stack, "/v1/classify", { key: account.api_key, raw: big });
    expectError(res, 413, "payload_too_large");
    const afterBal = (await call(stack, "/v1/account/balance", { key: account.api_key })).body;
    assert.equal(afterBal.total, before.total, "a refused body is not charged");
  });
});

describe("401 invalid_api_key", () => {
  test("missing, malformed and unknown keys: 401 invalid_api_key with WWW-Authenticate: Bearer", async () => {
    /** @type {Array<[string, Record<string, string>]>} */
    const cases = [
      ["missing", {}],
      ["not bearer", { Authorization: "Basic dXNlcjpwYXNz" }],
      ["malformed", { Authorization: "Bearer not-a-key" }],
      ["empty bearer", { Authorization: "Bearer " }],
      ["unknown", { Authorization: `Bearer ${unknownKey()}` }],
    ];
    for (const path of ["/v1/classify", "/v1/account", "/v1/account/balance"]) {
      for (const [what, headers] of cases) {
        const res = await call(stack, path, {
          method: path === "/v1/classify" ? "POST" : "GET",
          headers,
          body: path === "/v1/classify" ? { title: "x" } : undefined,
        });
        expectError(res, 401, "invalid_api_key", `${what} key on ${path}`);
        assert.equal(res.headers.get("www-authenticate"), "Bearer", `${what} key on ${path}`);
      }
    }
  });

  test("the first key has the documented form", async () => {
    const account = await createAccount(stack);
    assert.match(account.api_key, /^tg_(live|test)_[A-Za-z0-9]{32,}$/);
  });
});

describe("operator routes", () => {
  test("/admin/* without the operator token is refused, with a client key too", async () => {
    const account = await createAccount(stack);
    for (const headers of [
      {},
      { Authorization: "Bearer wrong-token" },
      { Authorization: `Bearer ${account.api_key}` },
    ]) {
      const res = await call(stack, `/admin/accounts/${account.id}`, { headers });
      assert.ok(res.status === 401 || res.status === 404, `got ${res.status} ${res.text}`);
      assert.equal(typeof res.body?.error?.type, "string");
    }
  });

  test("POST /admin/accounts → 201 {id, api_key, stripe_customer_id}", async () => {
    const res = await admin(stack, "/accounts", { body: { email: uniqueEmail() } });
    assert.equal(res.status, 201, res.text);
    for (const field of ["id", "api_key", "stripe_customer_id"])
      assert.ok(field in res.body, field);
  });
});

describe("Stripe webhooks", () => {
  test("a bad signature is 400", async () => {
    const res = await call(stack, "/webhooks/stripe", {
      raw: JSON.stringify({ id: "evt_x", type: "invoice.paid", data: { object: {} } }),
      headers: { "Stripe-Signature": "t=1,v1=deadbeef" },
    });
    assert.equal(res.status, 400, res.text);
  });
});

describe("sign-up", () => {
  test("POST /v1/signup answers 202 whatever the address", async () => {
    for (const email of [uniqueEmail("signup"), uniqueEmail("signup")]) {
      const res = await call(stack, "/v1/signup", { body: { email } });
      assert.equal(res.status, 202, res.text);
    }
  });
});
