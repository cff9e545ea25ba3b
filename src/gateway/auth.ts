import { createMiddleware } from "hono/factory";
import { bearerToken, looksLikeApiKey } from "../accounts/api-keys";
import { identify, KEY_CACHE_TTL_MS, PROXY_KEY_CACHE_TTL_MS } from "../accounts/identity";
import { provenSameOrigin, readSession } from "../accounts/sessions";
import type { AppEnv } from "../http/context";
import { keyActor, personActor } from "../platform/actor";
import { ApiError } from "../platform/errors";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** `/v1/account` and below: the account API, never proxied. */
export function isAccountPath(path: string): boolean {
  return path === "/v1/account" || path.startsWith("/v1/account/");
}

/**
 * Authenticates `Authorization: Bearer tg_…`, or on `/v1/account/*` without that header the
 * dashboard session cookie (a person: their role caps what they do, see ../api/account-router);
 * 401 `invalid_api_key` otherwise. A session-authenticated request that changes something
 * carries no CSRF token, so it must prove it came from our own origin.
 */
export const apiKeyAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  const accountRoute = isAccountPath(c.req.path);
  if (header === undefined && accountRoute) {
    const session = await readSession(c);
    if (session && (SAFE_METHODS.has(c.req.method) || provenSameOrigin(c))) {
      c.set("accountId", session.accountId);
      c.set("memberId", session.memberId);
      c.set("role", session.role);
      // Full scope: what this person may do is their role's to say; writes are same-origin.
      c.set("scope", "full");
      c.set("actor", personActor(session.memberId, session.email));
      return next();
    }
  }
  const token = bearerToken(header);
  if (!token || !looksLikeApiKey(token)) throw ApiError.invalidApiKey();
  const identity = await identify(
    c.env.DB,
    token,
    accountRoute ? KEY_CACHE_TTL_MS : PROXY_KEY_CACHE_TTL_MS,
  );
  if (!identity) throw ApiError.invalidApiKey();
  c.set("accountId", identity.accountId);
  c.set("apiKeyId", identity.keyId);
  c.set("shards", identity.shards);
  c.set("scope", identity.scope);
  c.set("role", null);
  c.set("actor", keyActor(identity.keyId));
  await next();
});
