/**
 * The API description (contract: "API description"): `/openapi.json` lists every route of the
 * app (read from the app's own route table, as the every-route suites do), with the request
 * schemas the routes validate with; `/docs` renders it with nothing from elsewhere.
 */
import { describe, expect, it } from "vitest";
import { BASE, gateway, json } from "../helpers/http";
import { type AppRoute, appRoutes } from "../helpers/routes";

interface Doc {
  openapi: string;
  servers: Array<{ url: string }>;
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
}

/** Pages (HTML forms with their own session and CSRF token) are not the API. */
function isPage(route: AppRoute): boolean {
  return (
    route.path === "/account" ||
    route.path.startsWith("/account/") ||
    route.path === "/admin" ||
    route.path.startsWith("/admin/console/")
  );
}

const openApiPath = (path: string) => path.replaceAll(/:([A-Za-z_]+)/g, "{$1}");

async function document(): Promise<Doc> {
  const res = await gateway("/openapi.json");
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  return json<Doc>(res);
}

describe("GET /openapi.json", () => {
  it("answers without a key: OpenAPI 3.1, served from the request's origin", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([{ url: BASE }]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([
      "api_key",
      "operator",
      "session",
    ]);
  });

  it("has every route of the app but its pages", async () => {
    const doc = await document();
    const routes = appRoutes().filter((r) => !isPage(r));
    expect(routes.length).toBeGreaterThan(40);
    const missing = routes
      .filter((r) => !doc.paths[openApiPath(r.path)]?.[r.method.toLowerCase()])
      .map(
        (r) =>
          `${r.name}: add describe({...}) from src/http/openapi.ts before its handler, with the zod schemas it validates`,
      );
    expect(missing).toEqual([]);
  });

  it("documents bodies and queries with the schemas the routes validate with", async () => {
    const doc = await document();
    const create = doc.paths["/v1/account/keys"]?.post as {
      requestBody: { content: { "application/json": { schema: Record<string, unknown> } } };
      security: unknown[];
      responses: Record<string, unknown>;
    };
    expect(create.requestBody.content["application/json"].schema).toMatchObject({
      type: "object",
      additionalProperties: false,
      properties: {
        name: { type: "string", minLength: 1, maxLength: 100 },
        scope: { enum: ["classify", "full"] },
      },
    });
    expect(create.security).toEqual([{ api_key: [] }, { session: [] }]);
    expect(Object.keys(create.responses)).toEqual(
      expect.arrayContaining(["201", "400", "401", "413", "default"]),
    );
    const list = doc.paths["/v1/account/transactions"]?.get as {
      parameters: Array<{ name: string; in: string }>;
    };
    expect(list.parameters.map((p) => `${p.in} ${p.name}`).sort()).toEqual([
      "query cursor",
      "query format",
      "query limit",
    ]);
    const members = doc.paths["/v1/account/members/{id}"]?.patch as {
      parameters: Array<{ name: string; in: string; required: boolean }>;
      security: unknown[];
    };
    expect(members.parameters).toContainEqual(
      expect.objectContaining({ name: "id", in: "path", required: true }),
    );
    expect(members.security).toEqual([{ session: [] }]);
    expect(doc.paths["/v1/classify"]?.post).toBeTruthy();
    expect(doc.components.schemas.Error).toMatchObject({ required: ["error"] });
  });
});

describe("GET /docs", () => {
  it("renders the reference as HTML with no URL of another origin and the pages' CSP", async () => {
    const res = await gateway("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    const csp = res.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain("POST /v1/account/keys");
    expect(html).toContain('href="/openapi.json"');
    const urls = [...html.matchAll(/(?:https?:)?\/\/[^\s"'<>)]+/g)].map((m) => m[0]);
    const foreign = urls.filter((u) => new URL(u, BASE).origin !== BASE);
    expect(foreign).toEqual([]);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet/);
  });
});
