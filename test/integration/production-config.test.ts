/**
 * An unsafe production configuration serves nothing (API.md "Production"): /healthz answers
 * 503 naming what is wrong, every other route 503 `misconfigured`, nothing debited or
 * forwarded. The test environment is local mode on 127.0.0.1; the same bindings with
 * ENVIRONMENT=production are exactly the unsafe deployment issue 21 found.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/platform/env";
import {
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
} from "../helpers/http";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

/** Local mode's bindings as a production deployment (each test its own object: parsed once). */
const unsafeProduction = (): Bindings => ({ ...env, ENVIRONMENT: "production" });

describe("an unsafe production configuration serves nothing", () => {
  it("/healthz answers 503 and names every problem, by var name only", async () => {
    const res = await gateway("/healthz", {
      env: { ...unsafeProduction(), SIGNUP_STORE_LINKS: "true", SESSION_SECRET: undefined },
    });
    expect(res.status).toBe(503);
    const body = await json<{ ok: boolean; error: { type: string; problems: string[] } }>(res);
    expect(body.ok).toBe(false);
    expect(body.error.type).toBe("misconfigured");
    expect(body.error.problems).toEqual(
      expect.arrayContaining([
        "UPSTREAM_URL names a local or placeholder host (127.0.0.1)",
        "DASHBOARD_URL names a local or placeholder host (127.0.0.1)",
        "STRIPE_API_URL names a local or placeholder host (127.0.0.1)",
        "the secret SESSION_SECRET is not set",
        "EMAIL_FROM is on a local or placeholder domain (tollgate.example)",
        "SIGNUP_STORE_LINKS is on (local development only: it stores sign-in links)",
      ]),
    );
    // Names, never values: no secret reaches a public endpoint.
    expect(JSON.stringify(body)).not.toContain(env.STRIPE_SECRET_KEY as string);
  });

  it("every other route answers 503 misconfigured: a proxied request is neither debited nor forwarded", async () => {
    const account = await createAccount("free");
    await setBalance(account, { monthly: 0, purchased: 10 });
    const production = unsafeProduction();
    const requestId = uniqueRequestId();
    const res = await classify(account, "/v1/classify", {
      env: production,
      headers: { "X-Request-Id": requestId },
    });
    const body = await expectError(res, 503, "misconfigured");
    expect(body.error.problems).toBeUndefined();
    expect(res.headers.get("Retry-After")).toBe("300");
    expect(await upstreamRequests(requestId)).toEqual([]);
    expect((await balanceOf(account)).purchased).toBe(10);

    for (const [method, path] of [
      ["GET", "/v1/account"],
      ["POST", "/admin/accounts"],
      ["GET", "/account/billing"],
      ["POST", "/webhooks/stripe"],
      ["GET", "/no-such-route"],
    ] as const) {
      const r = await gateway(path, {
        method,
        env: production,
        body: method === "POST" ? "{}" : undefined,
      });
      await expectError(r, 503, "misconfigured");
    }
  });

  it("a single unsafe value is enough", async () => {
    const safe: Bindings = {
      ...env,
      ENVIRONMENT: "production",
      UPSTREAM_URL: "https://classifier.acme.io",
      DASHBOARD_URL: "https://api.acme.io/account/billing",
      STRIPE_API_URL: undefined,
      EMAIL_FROM: "billing@acme.io",
      SUPPORT_EMAIL: "help@acme.io",
      LEDGER_TEST_CLOCK: undefined,
    };
    const health = await gateway("/healthz", { env: safe });
    expect(health.status).toBe(200);
    expect(await json(health)).toEqual({ ok: true });
    // Served: an unknown key is refused by the API, not by the configuration check.
    await expectError(
      await gateway("/v1/account", { env: safe, key: "tg_nope" }),
      401,
      "invalid_api_key",
    );

    const local = await gateway("/healthz", {
      env: { ...safe, STRIPE_API_URL: "http://127.0.0.1:12111" },
    });
    expect(local.status).toBe(503);
    expect((await json<{ error: { problems: string[] } }>(local)).error.problems).toEqual([
      "STRIPE_API_URL names a local or placeholder host (127.0.0.1)",
    ]);
  });

  it("local mode, as the tests run, serves", async () => {
    expect((await gateway("/healthz")).status).toBe(200);
  });
});
