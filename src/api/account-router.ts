/**
 * `/v1/account` and everything below it: the account API. An account sees and changes only
 * itself (the id comes from the key or the Billing page session, never from the path).
 * Anything under `/v1/account` that no resource here matches is answered here (404/405), so
 * it can never fall through to the proxy, whatever order the app mounts things in.
 */
import { Hono } from "hono";
import { requireFullScopeForWrites } from "../accounts/scope";
import type { AppEnv } from "../http/context";
import { accountRoutes } from "./account";
import { alertRoutes } from "./alerts";
import { auditLogRoutes } from "./audit-log";
import { billingPortalRoutes } from "./billing-portal";
import { checkoutRoutes, paymentMethodRoutes } from "./checkout";
import { keyRoutes } from "./keys";
import { limitRoutes } from "./limits";
import { autoRechargeRoutes, topUpRoutes } from "./recharge";
import { transactionRoutes } from "./transactions";
import { usageRoutes } from "./usage";

export function accountRouter(unmatched: (c: { req: { method: string; path: string } }) => never) {
  return new Hono<AppEnv>()
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
    .all("/*", (c) => unmatched(c));
}
