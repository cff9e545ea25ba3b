import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/context";
import { ADMIN_TOKEN_ACTOR } from "../platform/actor";
import { secretsEqual } from "../platform/crypto";
import { ApiError } from "../platform/errors";
import { bearerToken } from "./api-keys";

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
  c.set("actor", ADMIN_TOKEN_ACTOR);
  await next();
});
