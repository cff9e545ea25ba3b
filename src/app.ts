import { Hono } from "hono";
import { adminRoutes } from "./admin/routes";
import { accountRouter } from "./api/account-router";
import { emailTestRoutes } from "./api/email-test";
import { dbFor } from "./db/client";
import { apiKeyAuth } from "./gateway/auth";
import { proxyRoutes } from "./gateway/proxy-routes";
import type { AppEnv } from "./http/context";
import { errorResponse } from "./http/error-response";
import { describe } from "./http/openapi";
import { requestId } from "./http/request-id";
import { configProblemsOnce } from "./platform/config";
import { ApiError } from "./platform/errors";
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

/** Builds the gateway: middleware, the route tree, 404/405, and the error handler. */
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

  // The one place errors become the envelope (http/error-response.ts).
  app.onError((err, c) => errorResponse(err, c.get("requestId")));

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
