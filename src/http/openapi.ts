/**
 * Route-level OpenAPI metadata, registered beside each route with the same zod schemas the route
 * validates with (`parseJson` / `parseQuery`): the document (`GET /openapi.json`, built by
 * hono-openapi's `generateSpecs` over the app's routes) never holds a second copy of a schema.
 *
 * Why metadata beside the routes rather than `@hono/zod-openapi`'s `app.openapi(createRoute…)`:
 * the routes validate inside the handler on purpose (platform/body.ts: the body limit and the
 * order of 404/413/400 are exact there), and a validator middleware would move that order.
 * `describe()` is a pass-through middleware; it changes nothing a request sees.
 */
import type { MiddlewareHandler } from "hono";
import { describeRoute, resolver } from "hono-openapi";
import { z } from "zod";
import { ERROR_TYPES, statusOf } from "../platform/errors";

/** The three ways a caller proves who it is (components.securitySchemes of the document). */
export type Security = "api_key" | "session" | "operator" | "none";

export const SECURITY_SCHEMES = {
  api_key: {
    type: "http",
    scheme: "bearer",
    description: "An API key (`tg_…`), sent as `Authorization: Bearer <key>`.",
  },
  session: {
    type: "apiKey",
    in: "cookie",
    name: "tg_session",
    description:
      "A person's Billing page session (set by signing in by email); same-origin requests only.",
  },
  operator: {
    type: "http",
    scheme: "bearer",
    description:
      "The operator token (`ADMIN_TOKEN`), or a Cloudflare Access identity in `Cf-Access-Jwt-Assertion`.",
  },
} as const;

/** The contract's error envelope, every error status of every route. */
export const ERROR_ENVELOPE = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["type", "message"],
      properties: {
        type: { type: "string", description: "A stable word, e.g. `invalid_request`." },
        message: { type: "string" },
        fields: {
          type: "array",
          items: {
            type: "object",
            required: ["field", "message"],
            properties: { field: { type: "string" }, message: { type: "string" } },
          },
        },
      },
      additionalProperties: true,
    },
  },
} as const;

const ERROR_TEXT: Record<number, string> = {
  400: "Invalid request",
  401: "Missing or unknown credentials",
  403: "Not allowed",
  404: "Not found",
  405: "Method not allowed",
  409: "Conflicts with the account's state",
  413: "Body too large",
  429: "Rate limited (see Retry-After)",
  500: "Our error",
  502: "The payment provider or the upstream failed",
  503: "Unavailable for now (see Retry-After)",
  504: "The upstream did not answer in time",
};

/**
 * A response of the error envelope: the status in words and the error types that answer it,
 * read from the one table of types and statuses (platform/errors.ts), so the two never drift.
 */
export const errorResponse = (status: number) => ({
  description: [
    ERROR_TEXT[status] ?? "Error",
    ERROR_TYPES.filter((type) => statusOf(type) === status)
      .map((type) => `\`${type}\``)
      .join(", "),
  ]
    .filter(Boolean)
    .join(": "),
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

export interface RouteDoc {
  summary: string;
  tag: string;
  /** Who may call it; several are alternatives (any one is enough). */
  security: Security | Security[];
  /** The JSON body's schema, the one the handler passes to `parseJson`. */
  body?: z.ZodType;
  /** The query's schema, the one the handler passes to `parseQuery`. */
  query?: z.ZodType;
  /** The success status and what it returns (default 200, JSON). */
  ok?: { status?: number; description?: string; contentType?: string };
  /** Error statuses beyond those implied by the body, the query and the security. */
  errors?: number[];
  description?: string;
}

/**
 * The query parameters of a schema, computed when the document is built (a getter, so an
 * isolate that never serves `/openapi.json` never converts a schema).
 */
function queryParameters(schema: z.ZodType) {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: "query" as const,
    required: json.required?.includes(name) ?? false,
    schema: property,
  }));
}

/** The route's entry in the document, as a pass-through middleware placed before its handler. */
export function describe(doc: RouteDoc): MiddlewareHandler {
  const security = (Array.isArray(doc.security) ? doc.security : [doc.security]).filter(
    (s) => s !== "none",
  );
  const ok = doc.ok ?? {};
  const errors = new Set(doc.errors ?? []);
  if (doc.body) {
    errors.add(400);
    errors.add(413);
  }
  if (doc.query) errors.add(400);
  if (security.length > 0) errors.add(401);
  const responses: Record<string, unknown> = {
    [String(ok.status ?? 200)]: {
      description: ok.description ?? "OK",
      ...(ok.contentType === "none"
        ? {}
        : { content: { [ok.contentType ?? "application/json"]: {} } }),
    },
  };
  for (const status of [...errors].sort()) responses[String(status)] = errorResponse(status);
  responses.default = { ...errorResponse(500), description: "Any other error, same envelope" };
  const query = doc.query;
  const spec = {
    summary: doc.summary,
    tags: [doc.tag],
    ...(doc.description ? { description: doc.description } : {}),
    security: security.map((s) => ({ [s]: [] })),
    ...(doc.body
      ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: resolver(doc.body) } },
          },
        }
      : {}),
    get parameters() {
      return query ? queryParameters(query) : undefined;
    },
    responses,
  };
  return describeRoute(spec as Parameters<typeof describeRoute>[0]);
}
