import { and, eq, isNull } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { sha256Hex } from "../crypto";
import { provenSameOrigin, readSession } from "../dashboard/session";
import { apiKeys } from "../db/schema";
import { dbFor } from "../db/shared";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { bearerToken, looksLikeApiKey } from "./api-keys";

export interface KeyIdentity {
  accountId: string;
  keyId: string;
}

/**
 * Key hash → account, cached in the isolate. A revoked key is dropped from this isolate's
 * cache at once. Elsewhere it ages out within KEY_CACHE_TTL_MS on account routes; proxied
 * requests may use an entry up to PROXY_KEY_CACHE_TTL_MS old because the account's Durable
 * Object refuses revoked keys inside the debit call they make anyway (revocation is
 * immediate there, everywhere, at no extra call).
 */
export const KEY_CACHE_TTL_MS = 5_000;
export const PROXY_KEY_CACHE_TTL_MS = 60_000;
const KEY_CACHE_MAX = 10_000;
const cache = new Map<string, { identity: KeyIdentity; loadedAt: number }>();

export function forgetKey(keyHash: string): void {
  cache.delete(keyHash);
}

/** For tests: count of lookups that reached D1 since start. */
export const authStats = { d1Lookups: 0 };

export async function identify(
  d1: D1Database,
  key: string,
  maxAgeMs = KEY_CACHE_TTL_MS,
): Promise<KeyIdentity | null> {
  const hash = await sha256Hex(key);
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit && now - hit.loadedAt < maxAgeMs) return hit.identity;
  authStats.d1Lookups++;
  const row = await dbFor(d1)
    .select({ id: apiKeys.id, accountId: apiKeys.accountId })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)))
    .get();
  if (!row) {
    cache.delete(hash);
    return null;
  }
  const identity = { accountId: row.accountId, keyId: row.id };
  if (cache.size >= KEY_CACHE_MAX) {
    // Maps iterate in insertion order: drop the oldest entry.
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.delete(hash); // re-inserted last: the eviction above drops the least recently loaded
  cache.set(hash, { identity, loadedAt: now });
  return identity;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** `/v1/account` and below: the account API, never proxied. */
export function isAccountPath(path: string): boolean {
  return path === "/v1/account" || path.startsWith("/v1/account/");
}

/**
 * Authenticates `Authorization: Bearer tg_…`, or on `/v1/account/*` without that header the
 * dashboard session cookie; 401 `invalid_api_key` otherwise. A session-authenticated request
 * that changes something carries no CSRF token, so it must prove it came from our own origin.
 */
export const apiKeyAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  const accountRoute = isAccountPath(c.req.path);
  if (header === undefined && accountRoute) {
    const session = await readSession(c);
    if (session && (SAFE_METHODS.has(c.req.method) || provenSameOrigin(c))) {
      c.set("accountId", session.accountId);
      c.set("apiKeyId", session.keyId);
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
  await next();
});
