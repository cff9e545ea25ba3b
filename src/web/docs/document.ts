/**
 * The OpenAPI 3.1 document of the app: hono-openapi's `generateSpecs` walks the app's routes and
 * collects each route's `describe()` metadata (http/openapi.ts), whose schemas are the ones
 * the handlers validate with. Built once per isolate, on the first request that needs it.
 */
import type { Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import { ERROR_ENVELOPE, errorResponse, SECURITY_SCHEMES } from "../../http/openapi";
import { DEFAULT_ROUTE_COST, ROUTE_COSTS } from "../../pricing";

export type OpenApiDocument = Awaited<ReturnType<typeof generateSpecs>>;

const DESCRIPTION = [
  'Every error is `{"error": {"type", "message", ...}}` with a stable `type`.',
  "Proxied routes (everything under `/v1` but `/v1/account`) cost credits, debited before the",
  "request is forwarded and refunded when the upstream fails.",
].join(" ");

const PROXY_ERRORS = Object.fromEntries(
  [401, 403, 413, 429, 502, 503, 504].map((status) => [String(status), errorResponse(status)]),
);

/**
 * The proxied routes that the pricing table names (the proxy itself is one catch-all, so its
 * routes come from the table that prices them); any other path is forwarded the same way.
 */
function proxyPaths() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTE_COSTS) {
    const operation = {
      summary: `Forwarded to the API (${route.cost} credit${route.cost === 1 ? "" : "s"})`,
      tags: ["Proxied API"],
      security: [{ api_key: [] }],
      description: `Any other path under /v1 is forwarded too, at ${DEFAULT_ROUTE_COST} credit.`,
      responses: { "200": { description: "The upstream's answer" }, ...PROXY_ERRORS },
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  return paths;
}

/** The document, without `servers` (the caller adds the origin it is served from). */
export function buildDocument(app: Hono<never>, title: string): Promise<OpenApiDocument> {
  return generateSpecs(app, {
    // Its default leaves out paths that look like files, `/openapi.json` among them.
    excludeStaticFile: false,
    documentation: {
      openapi: "3.1.0",
      info: { title: `${title} API`, version: "1", description: DESCRIPTION },
      tags: [],
      paths: proxyPaths() as never,
      components: {
        securitySchemes: SECURITY_SCHEMES as never,
        schemas: { Error: ERROR_ENVELOPE as never },
        responses: {
          Error: {
            description: "The error envelope",
            content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
          },
        },
      },
    },
  });
}
