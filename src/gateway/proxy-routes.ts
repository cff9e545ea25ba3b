import { Hono } from "hono";
import type { AppEnv } from "../http/context";
import { isAccountPath } from "./auth";
import { proxyRequest } from "./proxy";

/**
 * Classification traffic: everything under `/v1` but the account API is forwarded to the
 * upstream. `/v1/account…` is refused here even if it reaches this handler, so the proxy can
 * never forward (or charge for) an account path.
 */
export function proxyRoutes(unmatched: (c: { req: { method: string; path: string } }) => never) {
  return new Hono<AppEnv>().all("/*", (c) =>
    isAccountPath(c.req.path) ? unmatched(c) : proxyRequest(c),
  );
}
