/**
 * `/v1/account` and everything below it: the account API. An account sees and changes only
 * itself (the id comes from the key or the Billing page session, never from the path).
 * Anything under `/v1/account` that no resource here matches is answered here (404/405), so
 * it can never fall through to the proxy, whatever order the app mounts things in.
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { may, type Permission } from "../accounts/roles";
import { requireFullScopeForWrites } from "../accounts/scope";
import type { AppEnv } from "../http/context";
import { refusal } from "../platform/refusals";
import { accountRoutes } from "./account";
import { alertRoutes } from "./alerts";
import { auditLogRoutes } from "./audit-log";
import { billingPortalRoutes } from "./billing-portal";
import { checkoutRoutes, paymentMethodRoutes } from "./checkout";
import { keyRoutes } from "./keys";
import { limitRoutes } from "./limits";
import { memberRoutes } from "./members";
import { autoRechargeRoutes, topUpRoutes } from "./recharge";
import { transactionRoutes } from "./transactions";
import { usageRoutes } from "./usage";
import { webhookRoutes } from "./webhooks";

const READS = new Set(["GET", "HEAD"]);

/**
 * What a person's session needs, by the resource under `/v1/account`, to change it (every role
 * reads everything). `keys` is decided per key by its scope (../accounts/keys.ts), as a
 * developer may manage `classify` keys but not `full` ones. A resource missing here is
 * owner-only, so a route added without thought is never open to every role.
 */
export const WRITE_PERMISSIONS: Record<string, Permission | "by_key_scope"> = {
  "auto-recharge": "billing",
  "top-ups": "billing",
  limits: "billing",
  alerts: "billing",
  "billing-portal": "billing",
  checkout: "billing",
  "payment-method": "billing",
  keys: "by_key_scope",
  members: "members",
  webhooks: "developer_tools",
};

/** The resource a path under `/v1/account` names: its first segment. */
function resourceOf(path: string): string {
  return path.replace(/^\/v1\/account\/?/, "").split("/")[0] ?? "";
}

/** 403 `insufficient_role` to a person's change their role does not allow. */
const requireRoleForWrites = createMiddleware<AppEnv>(async (c, next) => {
  const role = c.get("role");
  if (role !== null && !READS.has(c.req.method)) {
    const needed = WRITE_PERMISSIONS[resourceOf(c.req.path)] ?? "members";
    if (needed !== "by_key_scope" && !may(role, needed)) throw refusal("insufficient_role");
  }
  await next();
});

export function accountRouter(unmatched: (c: { req: { method: string; path: string } }) => never) {
  return (
    new Hono<AppEnv>()
      .use(requireRoleForWrites)
      // Before the scope check: a key of any scope gets `session_required` here.
      .route("/members", memberRoutes)
      .use(requireFullScopeForWrites)
      .route("/", accountRoutes)
      .route("/auto-recharge", autoRechargeRoutes)
      .route("/top-ups", topUpRoutes)
      .route("/keys", keyRoutes)
      .route("/limits", limitRoutes)
      .route("/alerts", alertRoutes)
      .route("/transactions", transactionRoutes)
      .route("/usage", usageRoutes)
      .route("/audit-log", auditLogRoutes)
      .route("/billing-portal", billingPortalRoutes)
      .route("/checkout", checkoutRoutes)
      .route("/payment-method", paymentMethodRoutes)
      .route("/webhooks", webhookRoutes)
      .all("/*", (c) => unmatched(c))
  );
}
