import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { adminRoutes } from "./admin/routes";
import { portalRoutes } from "./billing/portal";
import { webhookRoutes } from "./billing/webhooks";
import { accountRoutes } from "./dashboard/account-routes";
import { keyRoutes } from "./dashboard/keys";
import { billingPageRoutes } from "./dashboard/page/routes";
import { transactionRoutes } from "./dashboard/transactions";
import { usageRoutes } from "./dashboard/usage";
import { dbFor } from "./db/shared";
import type { AppEnv } from "./env";
import { ApiError } from "./errors";
import { apiKeyAuth, isAccountPath } from "./gateway/auth";
import { proxyRequest } from "./gateway/proxy";
import { requestId } from "./http/request-id";
import { rechargeRoutes } from "./recharge/routes";

/** Builds the gateway: middleware, routes, and the one place errors become the envelope. */
export function createApp() {
  const app = new Hono<AppEnv>();

  app.use(requestId);
  app.use(async (c, next) => {
    c.set("db", dbFor(c.env.DB));
    await next();
  });

  app.get("/healthz", (c) => c.json({ ok: true }, 200));

  app.use("/v1/*", apiKeyAuth);
  app.route("/v1/account/keys", keyRoutes);
  app.route("/v1/account/transactions", transactionRoutes);
  app.route("/v1/account/usage", usageRoutes);
  app.route("/v1/account/billing-portal", portalRoutes);
  app.route("/v1/account", rechargeRoutes);
  app.route("/v1/account", accountRoutes);
  app.route("/admin", adminRoutes);
  // The Billing page: HTML, its own session auth and its own (HTML) error pages.
  app.route("/account", billingPageRoutes);
  app.route("/webhooks", webhookRoutes);
  // Everything else under /v1 is classification traffic, except what /v1/account did not match.
  app.all("/v1/*", (c) => {
    const path = c.req.path;
    if (isAccountPath(path)) return notFoundOrMethod(c.req.method, path);
    return proxyRequest(c);
  });

  const routes = app.routes
    .filter((r) => r.method !== "ALL")
    .map((r) => ({ method: r.method, pattern: toPattern(r.path) }));

  /** 404, or 405 with `Allow` when the path exists under another method. */
  function notFoundOrMethod(method: string, path: string): never {
    const normalized = path.length > 1 ? path.replace(/\/+$/, "") : path;
    const allowed = [
      ...new Set(routes.filter((r) => r.pattern.test(normalized)).map((r) => r.method)),
    ];
    if (allowed.length > 0 && !allowed.includes(method)) {
      throw new ApiError("method_not_allowed", `${method} is not allowed on ${path}.`, {
        headers: { Allow: allowed.join(", ") },
      });
    }
    throw ApiError.notFound(`No route for ${method} ${path}.`);
  }

  app.notFound((c) => notFoundOrMethod(c.req.method, c.req.path));

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json(err.toBody(), err.status, err.headers);
    }
    if (err instanceof HTTPException) {
      const type =
        err.status === 413
          ? "payload_too_large"
          : err.status === 404
            ? "not_found"
            : "invalid_request";
      const mapped = new ApiError(type, err.message || "The request could not be processed.");
      return c.json(
        mapped.toBody(),
        err.status === 413 || err.status === 404 ? mapped.status : 400,
      );
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
