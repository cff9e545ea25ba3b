import { createMiddleware } from "hono/factory";
import { secretsEqual } from "../crypto";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { bearerToken } from "../gateway/api-keys";

/**
 * Operator routes take `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time.
 * With no ADMIN_TOKEN configured, every /admin route answers 404: the surface does not exist.
 */
export const adminAuth = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw ApiError.notFound();
  const token = bearerToken(c.req.header("Authorization"));
  if (!token || !(await secretsEqual(token, expected))) {
    throw ApiError.invalidApiKey("A valid operator token is required.");
  }
  await next();
});
