/**
 * The checks every route of the contract must pass, generated from the app's own route table
 * (test/helpers/routes.ts), so a route added to the app is covered without editing this file:
 * credentials and the error envelope on every account and operator route, and the JSON body
 * rules on every route that reads a body. A route that needs a fixture (a body, path params)
 * fails "the route table" tests below, naming what to add.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  BASE,
  createAccount,
  type ErrorBody,
  expectError,
  gateway,
  send,
} from "../helpers/http";
import {
  type AppRoute,
  appRoutes,
  audienceOf,
  concretePath,
  missingFixtures,
  ROUTE_FIXTURES,
  type RouteContext,
  readsJsonBody,
  routeContext,
  sendAs,
  validBody,
} from "../helpers/routes";

const JSON_LIMIT = 64 * 1024;
const UNKNOWN_WELL_FORMED_KEY = `tg_live_${"a".repeat(32)}`;

const routes = appRoutes();
const accountRoutes = routes.filter((r) => audienceOf(r) === "account");
const adminRoutes = routes.filter((r) => audienceOf(r) === "admin");

/** The contract's error envelope, exactly: `{ error: { type, message, … } }`, and its headers. */
async function expectEnvelope(res: Response, status: number, type: string): Promise<ErrorBody> {
  const body = await expectError(res, status, type);
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(res.headers.get("X-Request-Id")).toMatch(/^req_[0-9a-f]{32}$/);
  return body;
}

/** The valid body (or `{}`) as a string, for requests that must be refused before it is read. */
function someBody(route: AppRoute): string | undefined {
  if (!["POST", "PUT", "PATCH", "DELETE"].includes(route.method)) return undefined;
  return JSON.stringify(ROUTE_FIXTURES[route.name]?.body ?? {});
}

/** Malformed, unknown-field and oversized bodies, sent with the route's own credentials. */
function jsonBodyTests(route: AppRoute, context: () => RouteContext) {
  it("answers malformed JSON with 400 invalid_request naming the body in error.fields", async () => {
    const res = await sendAs(route, context(), { body: "{not json" });
    const body = await expectEnvelope(res, 400, "invalid_request");
    expect(body.error.fields).toEqual([{ field: "body", message: "malformed JSON" }]);
  });

  it("answers an unknown field with 400 invalid_request naming that field", async () => {
    const valid = validBody(route) ?? {};
    const res = await sendAs(route, context(), {
      body: JSON.stringify({ ...valid, not_a_field: 1 }),
    });
    const body = await expectEnvelope(res, 400, "invalid_request");
    expect(body.error.fields).toContainEqual({ field: "not_a_field", message: "unknown field" });
  });

  it("answers a body over 64 KiB with 413 payload_too_large", async () => {
    const valid = validBody(route) ?? {};
    const res = await sendAs(route, context(), {
      body: JSON.stringify({ ...valid, pad: "x".repeat(JSON_LIMIT) }),
    });
    const body = await expectEnvelope(res, 413, "payload_too_large");
    expect(body.error.limit_bytes).toBe(JSON_LIMIT);
  });
}

describe("the route table", () => {
  it("lists the whole account API and operator API", () => {
    expect(accountRoutes.length).toBeGreaterThanOrEqual(11);
    expect(adminRoutes.length).toBeGreaterThanOrEqual(7);
    expect(accountRoutes.map((r) => r.name)).toContain("GET /v1/account");
  });

  it("gives every route that reads a body or takes path params a fixture", () => {
    expect(missingFixtures(routes)).toEqual([]);
  });

  it("names the fixture a new route would need, and needs none for a plain GET", () => {
    const route = (method: string, path: string) => ({ method, path, name: `${method} ${path}` });
    expect(missingFixtures([route("PATCH", "/admin/accounts/:id/notes")])).toEqual([
      "PATCH /admin/accounts/:id/notes has no entry in ROUTE_FIXTURES (test/helpers/routes.ts): add one with a valid JSON `body` (or `body: null` if it reads none) and `params` for its path",
    ]);
    expect(missingFixtures([route("GET", "/v1/account/limits")])).toEqual([]);
  });

  it("has no fixture for a route the app no longer registers", () => {
    const names = new Set(routes.map((r) => r.name));
    expect(Object.keys(ROUTE_FIXTURES).filter((name) => !names.has(name))).toEqual([]);
  });
});

describe("every account route", () => {
  let ctx: RouteContext;
  beforeAll(async () => {
    ctx = await routeContext(await createAccount());
  });

  for (const route of accountRoutes) {
    describe(route.name, () => {
      it("answers 401 invalid_api_key with WWW-Authenticate: Bearer to no key, a malformed key, an unknown key or the operator token", async () => {
        const path = concretePath(route, ctx);
        for (const auth of [
          undefined,
          "Bearer nope",
          "Basic abc",
          `Bearer ${UNKNOWN_WELL_FORMED_KEY}`,
          `Bearer ${ADMIN_TOKEN}`,
        ]) {
          const res = await gateway(path, {
            method: route.method,
            headers: auth ? { Authorization: auth } : {},
            body: someBody(route),
          });
          const body = await expectEnvelope(res, 401, "invalid_api_key");
          expect(res.headers.get("WWW-Authenticate"), `${auth}`).toBe("Bearer");
          expect(body.error.message).not.toContain(ctx.account.id);
        }
      });

      if (readsJsonBody(route)) jsonBodyTests(route, () => ctx);
    });
  }
});

describe("every operator route", () => {
  let ctx: RouteContext;
  beforeAll(async () => {
    ctx = await routeContext(await createAccount());
  });

  for (const route of adminRoutes) {
    describe(route.name, () => {
      it("answers 401 invalid_api_key to no token, a wrong token, and a customer key", async () => {
        const path = concretePath(route, ctx);
        for (const auth of [
          undefined,
          "Bearer wrong",
          `Basic ${btoa(`admin:${ADMIN_TOKEN}`)}`,
          `Bearer ${ctx.account.api_key}`,
        ]) {
          const res = await gateway(path, {
            method: route.method,
            headers: auth ? { Authorization: auth } : {},
            body: someBody(route),
          });
          await expectEnvelope(res, 401, "invalid_api_key");
          expect(res.headers.get("WWW-Authenticate"), `${auth}`).toBe("Bearer");
        }
      });

      it("answers 404 not_found, even to the right token, when neither ADMIN_TOKEN nor Access is configured", async () => {
        const res = await send(
          new Request(`${BASE}${concretePath(route, ctx)}`, {
            method: route.method,
            headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
          }),
          {
            env: { ...env, ADMIN_TOKEN: undefined, ACCESS_TEAM_DOMAIN: "", ACCESS_AUD: "" },
          },
        );
        await expectEnvelope(res, 404, "not_found");
      });

      if (readsJsonBody(route)) jsonBodyTests(route, () => ctx);
    });
  }
});

/** The proxy is the `/v1/*` catch-all, not a route of the table: its paths are listed here. */
describe("proxied paths", () => {
  for (const [method, path] of [
    ["POST", "/v1/classify"],
    ["GET", "/v1/anything/else"],
  ] as const) {
    it(`${method} ${path} answers 401 invalid_api_key with WWW-Authenticate: Bearer to no key, a malformed key or an unknown key`, async () => {
      for (const auth of [
        undefined,
        "Bearer nope",
        `Bearer ${UNKNOWN_WELL_FORMED_KEY}`,
        "Basic abc",
      ]) {
        const res = await gateway(path, {
          method,
          headers: auth ? { Authorization: auth } : {},
          body: method === "GET" ? undefined : "{}",
        });
        await expectEnvelope(res, 401, "invalid_api_key");
        expect(res.headers.get("WWW-Authenticate")).toBe("Bearer");
      }
    });
  }
});
