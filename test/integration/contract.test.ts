import { describe, expect, it } from "vitest";
import { admin, createAccount, expectError, gateway, json } from "../helpers/http";

describe("the contract's envelope", () => {
  // Credentials, the envelope and the body rules on each route of the table are checked in
  // every-route.test.ts, generated from the app's routes.

  it("unknown routes are 404 not_found, wrong methods 405 method_not_allowed", async () => {
    const account = await createAccount();
    await expectError(await gateway("/nope"), 404, "not_found");
    await expectError(
      await gateway("/v1/account/nope", { key: account.api_key }),
      404,
      "not_found",
    );
    const res = await gateway("/v1/account/balance", {
      method: "POST",
      key: account.api_key,
      body: "{}",
    });
    await expectError(res, 405, "method_not_allowed");
    expect(res.headers.get("Allow")).toContain("GET");
    await expectError(await gateway("/healthz", { method: "DELETE" }), 405, "method_not_allowed");
  });

  it("malformed JSON and invalid bodies get 400 invalid_request naming the fields", async () => {
    let res = await admin("/accounts", { method: "POST", body: "{not json" });
    let body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.[0]?.field).toBe("body");

    res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: "nope", plan: "gold" }),
    });
    body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.map((f) => f.field).sort()).toEqual(["email", "plan"]);

    const account = await createAccount();
    for (const bad of [
      { monthly: 1.5, reason: "x" },
      { monthly: "5", reason: "x" },
      { monthly: 5 },
      { reason: "x" },
      { monthly: 1e12, reason: "x" },
    ]) {
      res = await admin(`/accounts/${account.id}/credits`, {
        method: "POST",
        body: JSON.stringify(bad),
      });
      await expectError(res, 400, "invalid_request");
    }
  });

  it("an oversized JSON body gets 413 payload_too_large", async () => {
    const res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: `${"a".repeat(70_000)}@x.com` }),
    });
    await expectError(res, 413, "payload_too_large");
  });

  it('GET /healthz answers 200 {"ok": true} as JSON', async () => {
    const res = await gateway("/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/json; charset=utf-8");
    expect(await res.json()).toEqual({ ok: true });
  });
});

describe("operator routes", () => {
  it("POST /admin/accounts creates an account with a key, a Stripe customer and the plan's credits", async () => {
    const res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: "new@example.com", plan: "pro", complimentary: true }),
    });
    expect(res.status).toBe(201);
    const created = await json<{ id: string; api_key: string; stripe_customer_id: string }>(res);
    expect(created.id).toMatch(/^acct_/);
    expect(created.api_key).toMatch(/^tg_(live|test)_[0-9A-Za-z]{32,}$/);
    expect(created.stripe_customer_id).toMatch(/^cus_/);
    const account = await json<Record<string, unknown>>(
      await gateway("/v1/account", { key: created.api_key }),
    );
    expect(account).toMatchObject({ id: created.id, email: "new@example.com", plan: "pro" });
    expect(typeof account.created_at).toBe("string");
    const balance = await json<Record<string, unknown>>(
      await gateway("/v1/account/balance", { key: created.api_key }),
    );
    expect(balance).toMatchObject({
      monthly: 8000,
      purchased: 0,
      total: 8000,
      plan: "pro",
      monthly_allowance: 8000,
    });
    expect(balance.auto_recharge).toMatchObject({
      enabled: false,
      threshold: 100,
      pending: false,
      last_failure: null,
    });
  });

  it("POST /admin/accounts/:id/credits adjusts both buckets as one audited entry; below zero is 409", async () => {
    const account = await createAccount();
    let res = await admin(`/accounts/${account.id}/credits`, {
      method: "POST",
      body: JSON.stringify({ monthly: -100, purchased: 250, reason: "goodwill" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ monthly: 400, purchased: 250, total: 650 });
    res = await admin(`/accounts/${account.id}/credits`, {
      method: "POST",
      body: JSON.stringify({ purchased: -251, reason: "too much" }),
    });
    const body = await expectError(res, 409, "insufficient_credits");
    expect(body.error.balance).toEqual({ monthly: 400, purchased: 250, total: 650 });
    const audit = await json(await admin(`/accounts/${account.id}/audit`));
    expect(audit).toMatchObject({ ledger_total: 650, balance_total: 650, consistent: true });
  });

  it("an Idempotency-Key makes a retried adjustment apply once", async () => {
    const account = await createAccount();
    for (let i = 0; i < 2; i++) {
      const res = await admin(`/accounts/${account.id}/credits`, {
        method: "POST",
        headers: { "Idempotency-Key": "adj-1" },
        body: JSON.stringify({ purchased: 10, reason: "retry me" }),
      });
      expect(await res.json()).toEqual({ monthly: 500, purchased: 10, total: 510 });
    }
  });

  it("a malformed Idempotency-Key is 400 on operator routes too, naming the header, changing nothing", async () => {
    const account = await createAccount();
    for (const [path, body] of [
      [`/accounts/${account.id}/credits`, { purchased: 10, reason: "bad key" }],
      [`/accounts/${account.id}/payment-method`, { payment_method: "pm_card_visa" }],
    ] as const) {
      for (const key of ["café", "a b", "x".repeat(256)]) {
        const res = await admin(path, {
          method: "POST",
          headers: { "Idempotency-Key": key },
          body: JSON.stringify(body),
        });
        const err = await expectError(res, 400, "invalid_request");
        expect(err.error.fields).toEqual([{ field: "Idempotency-Key", message: "invalid header" }]);
      }
    }
    const balance = await gateway("/v1/account/balance", { key: account.api_key });
    expect(await json(balance)).toMatchObject({ purchased: 0 });
  });

  it("operator routes answer 404 not_found for an unknown account id", async () => {
    await expectError(await admin("/accounts/acct_missing/audit"), 404, "not_found");
    await expectError(
      await admin("/accounts/acct_missing/credits", {
        method: "POST",
        body: JSON.stringify({ monthly: 1, reason: "x" }),
      }),
      404,
      "not_found",
    );
  });
});

describe("response headers of the gateway's own JSON", () => {
  it("are not cacheable and not sniffable", async () => {
    const account = await createAccount();
    const res = await gateway("/v1/account/balance", { key: account.api_key });
    await res.arrayBuffer();
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
  });
});

describe("X-Request-Id", () => {
  // The rule is ours (src/http/request-id.ts), not Hono's requestId middleware, whose fixed
  // character check (`[\w=-]`, up to 255) refuses `.` and `:` and accepts `=`: these cases
  // would change under it.
  it("echoes 1-128 of [A-Za-z0-9._:-], and replaces anything else with req_<32 hex>", async () => {
    const echoed = ["a", "trace.id:42", "span_1-x", "r".repeat(128)];
    for (const id of echoed) {
      const res = await gateway("/healthz", { headers: { "X-Request-Id": id } });
      expect(res.headers.get("X-Request-Id"), id).toBe(id);
      await res.arrayBuffer();
    }
    const replaced = ["r".repeat(129), "a=b", "has space", "semi;colon", "slash/ed"];
    for (const id of replaced) {
      const res = await gateway("/healthz", { headers: { "X-Request-Id": id } });
      expect(res.headers.get("X-Request-Id"), id).toMatch(/^req_[0-9a-f]{32}$/);
      await res.arrayBuffer();
    }
    // Generated when absent or empty, and on error responses too (404 envelope).
    const none: Array<Record<string, string>> = [{}, { "X-Request-Id": "" }];
    for (const headers of none) {
      const res = await gateway("/nope", { headers });
      expect(res.status).toBe(404);
      expect(res.headers.get("X-Request-Id")).toMatch(/^req_[0-9a-f]{32}$/);
      await res.arrayBuffer();
    }
  });
});
