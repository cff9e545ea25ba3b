import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/context";
import { type Actor, operatorActor } from "../platform/actor";
import { secretsEqual } from "../platform/crypto";
import { ApiError } from "../platform/errors";
import { accessConfig, verifyAccessJwt } from "./access-jwt";
import { bearerToken } from "./api-keys";

export const ACCESS_HEADER = "Cf-Access-Jwt-Assertion";

/** Whether the operator surface exists: Access or ADMIN_TOKEN configured. */
export function operatorsConfigured(env: AppEnv["Bindings"]): boolean {
  return Boolean(env.ADMIN_TOKEN) || accessConfig(env) !== null;
}

/**
 * The operator a request comes from, by its Cloudflare Access assertion (when Access is
 * configured and the header is there), else null. A present but refused assertion throws 401:
 * the edge vouched for someone and the token does not say who.
 */
export async function accessOperator(c: Context<AppEnv>): Promise<Actor | null> {
  const config = accessConfig(c.env);
  const assertion = c.req.header(ACCESS_HEADER);
  if (!config || !assertion) return null;
  const verdict = await verifyAccessJwt(config, assertion).catch((err: unknown) => {
    // The team's keys could not be read: say so, and let the operator retry.
    console.error("access keys unavailable", c.get("requestId"), String(err));
    throw new ApiError(
      "service_unavailable",
      "The operator sign-in keys could not be read; try again.",
    );
  });
  if (!verdict.ok) {
    console.warn("access assertion refused", c.get("requestId"), verdict.reason);
    throw ApiError.invalidApiKey("The Cloudflare Access identity was refused.");
  }
  return operatorActor(verdict.email);
}

/**
 * Operator routes: a Cloudflare Access identity (`Cf-Access-Jwt-Assertion`, verified against
 * the team's keys and ACCESS_AUD; the operator is its email), or `Authorization: Bearer
 * <ADMIN_TOKEN>` compared in constant time (scripts and local mode; the operator is "admin
 * token"). Either way `actor` names the operator. With neither configured, every /admin route
 * answers 404: the surface does not exist.
 */
export const adminAuth = createMiddleware<AppEnv>(async (c, next) => {
  if (!operatorsConfigured(c.env)) throw ApiError.notFound();
  const viaAccess = await accessOperator(c);
  if (viaAccess) {
    c.set("actor", viaAccess);
    return next();
  }
  const expected = c.env.ADMIN_TOKEN;
  const token = bearerToken(c.req.header("Authorization"));
  if (!expected || !token || !(await secretsEqual(token, expected))) {
    throw ApiError.invalidApiKey("A valid operator token is required.");
  }
  c.set("actor", operatorActor(null));
  await next();
});
