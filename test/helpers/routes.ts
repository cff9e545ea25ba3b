/**
 * The app's route table, read from `createApp().routes`, and the per-route fixtures the
 * route-wide suites need. A route added to the app is covered by those suites without editing
 * them; one that needs a fixture (a JSON body, or path params) fails until it has one here.
 */
import { expect } from "vitest";
import { createApp } from "../../src/app";
import { admin, BASE, gateway, json, type TestAccount } from "./http";
import { signIn } from "./page";

export interface AppRoute {
  method: string;
  /** As registered, e.g. `/v1/account/keys/:id`. */
  path: string;
  /** `METHOD path`, the key of ROUTE_FIXTURES. */
  name: string;
}

/** What a route's path params are filled from: a fresh account's own ids. */
export interface RouteContext {
  account: TestAccount;
  /** The id of the account's first API key. */
  keyId: string;
  /** Its first owner's Billing page session (`tg_session=…`), for routes that take a person. */
  session: string;
  /** Its first owner's member id. */
  memberId: string;
}

export interface RouteFixture {
  /**
   * A body the route accepts, to which the suites add unknown fields; `null` for a POST, PUT
   * or PATCH route that reads no body.
   */
  body?: Record<string, unknown> | null;
  /** Values for the path's `:params`. */
  params?: (ctx: RouteContext) => Record<string, string>;
  /** The route takes a person's session, not an API key (the members routes). */
  session?: true;
}

const ownAccount = ({ account }: RouteContext) => ({ id: account.id });

/**
 * Needed for every POST/PUT/PATCH route and every route with path params under `/v1/account`
 * and `/admin` (the Billing page and the webhook have their own suites).
 * Keys are `METHOD path` exactly as `createApp().routes` lists them.
 */
export const ROUTE_FIXTURES: Record<string, RouteFixture> = {
  "PUT /v1/account/auto-recharge": { body: { enabled: false } },
  "POST /v1/account/top-ups": { body: { package: "credits_1000" } },
  "POST /v1/account/keys": { body: { name: "ci" } },
  "DELETE /v1/account/keys/:id": { params: ({ keyId }) => ({ id: keyId }) },
  "POST /v1/account/billing-portal": { body: {} },
  "PUT /v1/account/limits": { body: { monthly_spend_limit_cents: 20_000 } },
  "PUT /v1/account/alerts": { body: { low_balance_credits: 100 } },
  "POST /v1/account/checkout": { body: { plan: "starter" } },
  "POST /v1/account/payment-method/setup": { body: {} },
  "GET /v1/account/members": { session: true },
  "POST /v1/account/members": {
    body: { email: "invited@example.com", role: "viewer" },
    session: true,
  },
  "PATCH /v1/account/members/:id": {
    body: { role: "owner" },
    params: ({ memberId }) => ({ id: memberId }),
    session: true,
  },
  "DELETE /v1/account/members/:id": {
    params: ({ memberId }) => ({ id: memberId }),
    session: true,
  },
  "POST /v1/account/webhooks": { body: { url: "http://127.0.0.1:9/hook" } },
  // No endpoint of that id: allowed callers get 404, others 403 before it is looked up.
  "DELETE /v1/account/webhooks/:id": { params: () => ({ id: "we_missing" }) },
  "POST /v1/account/webhooks/:id/test": { body: null, params: () => ({ id: "we_missing" }) },
  "GET /v1/account/webhooks/:id/deliveries": { params: () => ({ id: "we_missing" }) },
  "POST /admin/accounts": { body: { email: "new@example.com" } },
  "POST /admin/email-test": { body: { to: "ops@example.com" } },
  "POST /admin/accounts/:id/credits": {
    body: { monthly: 1, reason: "route test" },
    params: ownAccount,
  },
  "POST /admin/accounts/:id/payment-method": {
    body: { payment_method: "pm_card_visa" },
    params: ownAccount,
  },
  "GET /admin/accounts/:id": { params: ownAccount },
  "PATCH /admin/accounts/:id": { body: { rate_limit_per_minute: 100 }, params: ownAccount },
  "GET /admin/accounts/:id/emails": { params: ownAccount },
  "GET /admin/accounts/:id/audit": { params: ownAccount },
  "POST /admin/reconcile": { body: null },
  "POST /admin/accounts/:id/suspend": { body: { reason: "route test" }, params: ownAccount },
  "POST /admin/accounts/:id/unsuspend": { body: null, params: ownAccount },
  "POST /admin/accounts/:id/sign-in-link": { body: {}, params: ownAccount },
};

const FIXTURES_FILE = "test/helpers/routes.ts";
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

/** Every route the app registers (middleware and the proxy's catch-all left out). */
export function appRoutes(): AppRoute[] {
  const seen = new Map<string, AppRoute>();
  for (const r of createApp().routes) {
    if (r.method === "ALL") continue;
    const path = r.path.length > 1 ? r.path.replace(/\/+$/, "") : r.path;
    const name = `${r.method} ${path}`;
    seen.set(name, { method: r.method, path, name });
  }
  return [...seen.values()];
}

export function hasParams(route: AppRoute): boolean {
  return route.path.split("/").some((part) => part.startsWith(":"));
}

/** Account and operator routes that read a body or take path params (the suites call them). */
export function needsFixture(route: AppRoute): boolean {
  return audienceOf(route) !== null && (BODY_METHODS.has(route.method) || hasParams(route));
}

/** Routes that need a fixture and have none, as messages naming what to add. */
export function missingFixtures(routes = appRoutes()): string[] {
  return routes
    .filter((r) => needsFixture(r) && !(r.name in ROUTE_FIXTURES))
    .map(
      (r) =>
        `${r.name} has no entry in ROUTE_FIXTURES (${FIXTURES_FILE}): add one with ` +
        (BODY_METHODS.has(r.method)
          ? "a valid JSON `body` (or `body: null` if it reads none)"
          : "") +
        (BODY_METHODS.has(r.method) && hasParams(r) ? " and " : "") +
        (hasParams(r) ? "`params` for its path" : ""),
    );
}

export function fixtureFor(route: AppRoute): RouteFixture {
  const fixture = ROUTE_FIXTURES[route.name];
  if (fixture) return fixture;
  if (needsFixture(route)) throw new Error(missingFixtures([route])[0]);
  return {};
}

/** POST/PUT/PATCH account and operator routes, unless their fixture says they read no body. */
export function readsJsonBody(route: AppRoute): boolean {
  return (
    audienceOf(route) !== null &&
    BODY_METHODS.has(route.method) &&
    ROUTE_FIXTURES[route.name]?.body !== null
  );
}

/** The valid JSON body of a route that reads one, or null. */
export function validBody(route: AppRoute): Record<string, unknown> | null {
  if (!BODY_METHODS.has(route.method)) return null;
  return fixtureFor(route).body ?? null;
}

/** The route's path with its params filled from the context. */
export function concretePath(route: AppRoute, ctx: RouteContext): string {
  const params = fixtureFor(route).params?.(ctx) ?? {};
  return route.path.replaceAll(/:([A-Za-z_]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${route.name}: its fixture gives no \`${name}\``);
    return encodeURIComponent(value);
  });
}

export const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };

/** The ids a fresh account's routes are called with, and its owner signed in. */
export async function routeContext(account: TestAccount): Promise<RouteContext> {
  const res = await gateway("/v1/account/keys", { key: account.api_key });
  expect(res.status).toBe(200);
  const { data } = await json<{ data: Array<{ id: string }> }>(res);
  const keyId = data[0]?.id;
  expect(keyId).toBeTruthy();
  const session = await signIn(account);
  const people = await gateway("/v1/account/members", { headers: { Cookie: session } });
  expect(people.status).toBe(200);
  const memberId = (await json<{ data: Array<{ id: string }> }>(people)).data[0]?.id;
  expect(memberId).toBeTruthy();
  return { account, keyId: keyId as string, session, memberId: memberId as string };
}

export type Audience = "account" | "admin";

export function audienceOf(route: AppRoute): Audience | null {
  if (route.path === "/v1/account" || route.path.startsWith("/v1/account/")) return "account";
  // The operator console's pages and forms (HTML) have their own suite, as the Billing page.
  if (route.path.startsWith("/admin/console/")) return null;
  if (route.path.startsWith("/admin/")) return "admin";
  return null;
}

/**
 * Sends `body` to the route with the credentials it takes: the operator token, the owner's
 * session (same-origin, as the page's own calls) where its fixture says so, else the key.
 */
export function sendAs(
  route: AppRoute,
  ctx: RouteContext,
  init: { body?: BodyInit; headers?: Record<string, string>; duplex?: "half" } = {},
): Promise<Response> {
  const path = concretePath(route, ctx);
  const request = { method: route.method, ...init } as RequestInit;
  if (audienceOf(route) === "admin") return admin(path.slice("/admin".length), request);
  if (fixtureFor(route).session) {
    return gateway(path, {
      ...request,
      headers: { ...SAME_ORIGIN, ...init.headers, Cookie: ctx.session },
    });
  }
  return gateway(path, { ...request, key: ctx.account.api_key });
}
