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
 * cache at once and ages out of every other isolate within KEY_CACHE_TTL_MS.
 */
export const KEY_CACHE_TTL_MS = 5_000;
const KEY_CACHE_MAX = 10_000;
const cache = new Map<string, { identity: KeyIdentity; expiresAt: number }>();

export function forgetKey(keyHash: string): void {
  cache.delete(keyHash);
}

/** For tests: count of lookups that reached D1 since start. */
export const authStats = { d1Lookups: 0 };

export async function identify(d1: D1Database, key: string): Promise<KeyIdentity | null> {
  const hash = await sha256Hex(key);
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit && hit.expiresAt > now) return hit.identity;
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
  cache.set(hash, { identity, expiresAt: now + KEY_CACHE_TTL_MS });
  return identity;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Authenticates `Authorization: Bearer tg_…`, or on `/v1/account/*` without that header the
 * dashboard session cookie; 401 `invalid_api_key` otherwise. A session-authenticated request
 * that changes something carries no CSRF token, so it must prove it came from our own origin.
 */
export const apiKeyAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  const path = c.req.path;
  if (header === undefined && (path === "/v1/account" || path.startsWith("/v1/account/"))) {
    const session = await readSession(c);
    if (session && (SAFE_METHODS.has(c.req.method) || provenSameOrigin(c))) {
      c.set("accountId", session.accountId);
      c.set("apiKeyId", session.keyId);
      return next();
    }
  }
  const token = bearerToken(header);
  if (!token || !looksLikeApiKey(token)) throw ApiError.invalidApiKey();
  const identity = await identify(c.env.DB, token);
  if (!identity) throw ApiError.invalidApiKey();
  c.set("accountId", identity.accountId);
  c.set("apiKeyId", identity.keyId);
  await next();
});
