import { type Context, Hono } from "hono";
import type { AppEnv } from "../http/context";
import { isAccountPath } from "./auth";
import { type ProxyCall, proxyRequest } from "./proxy";

/**
 * Classification traffic: everything under `/v1` but the account API is forwarded to the
 * upstream. `/v1/account…` is refused here even if it reaches this handler, so the proxy can
 * never forward (or charge for) an account path.
 */
export function proxyRoutes(unmatched: (c: { req: { method: string; path: string } }) => never) {
  return new Hono<AppEnv>().all("/*", async (c) => {
    if (isAccountPath(c.req.path)) unmatched(c);
    const response = await proxyRequest(callOf(c));
    // Its headers are the upstream's: the request id middleware leaves them as they are.
    c.set("proxied", true);
    return response;
  });
}

function callOf(c: Context<AppEnv>): ProxyCall {
  return {
    env: c.env,
    request: c.req.raw,
    path: c.req.path,
    requestId: c.get("requestId"),
    accountId: c.get("accountId"),
    apiKeyId: c.get("apiKeyId"),
    shards: c.get("shards"),
    keepAlive: (p) => c.executionCtx.waitUntil(p),
    db: () => c.get("db"),
  };
}
