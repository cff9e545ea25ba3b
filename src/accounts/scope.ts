import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/context";
import { ApiError } from "../platform/errors";

const READS = new Set(["GET", "HEAD"]);

/**
 * Money rule 11: a `classify` key may spend credits (proxied traffic) and read its account,
 * nothing else: no purchases, no settings, no keys.
 */
export const requireFullScopeForWrites = createMiddleware<AppEnv>(async (c, next) => {
  if (c.get("scope") !== "full" && !READS.has(c.req.method)) {
    throw new ApiError(
      "insufficient_scope",
      "This API key can only classify and read the account; use a full key for this.",
      { extra: { required_scope: "full" } },
    );
  }
  await next();
});
