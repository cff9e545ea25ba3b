import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import Stripe from "stripe";
import { adminRoutes } from "./admin/routes";
import { accountRouter } from "./api/account-router";
import { emailTestRoutes } from "./api/email-test";
import { dbFor } from "./db/client";
import { apiKeyAuth } from "./gateway/auth";
import { proxyRoutes } from "./gateway/proxy-routes";
import type { AppEnv } from "./http/context";
import { describe } from "./http/openapi";
import { requestId } from "./http/request-id";
import { configProblemsOnce } from "./platform/config";
import { ApiError, type ErrorType, serviceUnavailable } from "./platform/errors";
import { refusal } from "./platform/refusals";
import { billingPageRoutes } from "./web/billing/routes";
import { consoleRoutes } from "./web/console/routes";
import { buildDocument, type OpenApiDocument } from "./web/docs/document";
import { apiDescriptionRoutes } from "./web/docs/routes";
import { signupAdminRoutes, signupApiRoutes, signupPageRoutes } from "./web/signup/routes";
import {
  invitationPageRoutes,
  passkeySignInRoutes,
  signInApiRoutes,
  signInPageRoutes,
} from "./web/signup/sign-in-routes";
import { webhookRoutes } from "./webhooks/stripe-webhooks";

/** What an HTTPException's status means in the contract; its status is kept either way. */
const HTTP_EXCEPTION_TYPES: Partial<Record<number, ErrorType>> = {
  400: "invalid_request",
  401: "invalid_api_key",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  429: "rate_limited",
  503: "service_unavailable",
};

/** Builds the gateway: middleware, the route tree, and the one place errors become the envelope. */
export function createApp() {
  const app = new Hono<AppEnv>();

  app.use(requestId);
  // An unsafe production configuration serves nothing: before any route, so no card is
  // charged, no request forwarded and no email sent by a gateway that cannot finish the job.
  // /healthz names the problems (var names only, never values); every other route is 503.
  // The same middleware gives every request its D1 client (one layer fewer on the hot path).
  app.use(async (c, next) => {
    const problems = configProblemsOnce(c.env);
    if (problems.length === 0) {
      c.set("db", dbFor(c.env.DB));
      return next();
    }
    const refused = refusal("misconfigured");
    if (c.req.path === "/healthz") {
      const body = refused.toBody();
      return c.json(
        { ok: false, error: { ...body.error, problems } },
        refused.status,
        refused.headers,
      );
    }
    throw refused;
  });

  const healthDoc = describe({ summary: "Liveness", tag: "API description", security: "none" });
  app.get("/healthz", healthDoc, (c) => c.json({ ok: true }, 200));
  // The document is built from this app's own route table, once per isolate.
  let document: Promise<OpenApiDocument> | null = null;
  app.route(
    "/",
    apiDescriptionRoutes((title) => {
      document ??= buildDocument(app as never, title);
      return document;
    }),
  );

  // Sign-up (off unless SIGNUP_ENABLED): before the API-key middleware, as the caller has no
  // key yet, and before /admin and /account, whose catch-alls would answer first.
  app.route("/v1", signupApiRoutes);
  app.route("/v1", signInApiRoutes);
  app.route("/admin/signup-emails", signupAdminRoutes);
  app.route("/admin/email-test", emailTestRoutes);
  app.route("/account/sign-up", signupPageRoutes);
  // Sign-in and invitations (always on): before /account's catch-all too.
  // "Sign in with a passkey" and its account choice (the sign-in page offers both ways).
  app.route("/account/sign-in/passkey", passkeySignInRoutes);
  app.route("/account/sign-in", signInPageRoutes);
  app.route("/account/invitation", invitationPageRoutes);

  app.use("/v1/*", apiKeyAuth);
  // The account API answers everything under /v1/account itself (404/405 included), and the
  // proxy refuses those paths too: neither depends on the order of these two lines.
  app.route("/v1/account", accountRouter(unmatched));
  app.route("/v1", proxyRoutes(unmatched));
  // The operator console (HTML) first: its pages are GET /admin and /admin/console/*; the
  // JSON routes' bearer check would answer a browser before it otherwise.
  app.route("/admin", consoleRoutes);
  app.route("/admin", adminRoutes);
  // The Billing page: HTML, its own session auth and its own (HTML) error pages.
  app.route("/account", billingPageRoutes);
  app.route("/webhooks", webhookRoutes);

  const routes = () =>
    app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method, pattern: toPattern(r.path) }));
  let table: ReturnType<typeof routes> | null = null;

  /** 404, or 405 with `Allow` when the path exists under another method. */
  function unmatched(c: { req: { method: string; path: string } }): never {
    const { method, path } = c.req;
    table ??= routes();
    const normalized = path.length > 1 ? path.replace(/\/+$/, "") : path;
    const allowed = [
      ...new Set(table.filter((r) => r.pattern.test(normalized)).map((r) => r.method)),
    ];
    if (allowed.length > 0 && !allowed.includes(method)) {
      throw new ApiError("method_not_allowed", `${method} is not allowed on ${path}.`, {
        headers: { Allow: allowed.join(", ") },
      });
    }
    throw ApiError.notFound(`No route for ${method} ${path}.`);
  }

  app.notFound((c) => unmatched(c));

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json(err.toBody(), err.status, err.headers);
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      const type =
        HTTP_EXCEPTION_TYPES[status] ?? (status >= 500 ? "internal_error" : "invalid_request");
      const mapped = new ApiError(type, err.message || "The request could not be processed.", {
        status,
      });
      return c.json(mapped.toBody(), mapped.status);
    }
    if (err instanceof Stripe.errors.StripeError) {
      // The payment provider failed or refused a call a route made: never the client's fault
      // unless a route mapped it first (see stripe/errors.ts).
      console.error("payment provider error", c.get("requestId"), err.type, err.code ?? "");
      const mapped = new ApiError(
        "payment_provider_error",
        "The payment provider could not complete the request.",
        { extra: { provider_code: err.code ?? err.type } },
      );
      return c.json(mapped.toBody(), mapped.status);
    }
    // A Durable Object overloaded or unreachable: the client may retry, nothing is broken.
    const unavailable = serviceUnavailable(err);
    if (unavailable) {
      console.warn("durable object unavailable", c.get("requestId"), String(err));
      return c.json(unavailable.toBody(), unavailable.status, unavailable.headers);
    }
    // A bug: log it with the request id, never show its message to the client.
    console.error(
      "unhandled error",
      c.get("requestId"),
      err instanceof Error ? (err.stack ?? err.message) : String(err),
    );
    const internal = new ApiError(
      "internal_error",
      "Something went wrong on our side. Quote the request id to support.",
    );
    return c.json(internal.toBody(), internal.status);
  });

  return app;
}

function toPattern(path: string): RegExp {
  const normalized = path.length > 1 ? path.replace(/\/+$/, "") : path;
  const source = normalized
    .split("/")
    .map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}/?$`);
}
