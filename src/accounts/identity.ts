/**
 * Key identity: API key → account, for the API's auth middleware and the Billing page's
 * sign-in alike. Keys are looked up by SHA-256 and cached in the isolate.
 *
 * A revoked key is dropped from this isolate's cache at once. Elsewhere it ages out within
 * KEY_CACHE_TTL_MS on account routes; proxied requests may use an entry up to
 * PROXY_KEY_CACHE_TTL_MS old because the account's Durable Object refuses revoked keys inside
 * the debit call they make anyway (revocation is immediate there, everywhere, at no extra call).
 */

import { activeKeyByHash, type KeyScope } from "../db/api-keys";
import { dbFor } from "../db/client";
import { sha256Hex } from "../platform/crypto";

export interface KeyIdentity {
  accountId: string;
  keyId: string;
  scope: KeyScope;
  /** The account's escrow shards (docs/ledger-shards.md); a change reaches a cached key late. */
  shards: number;
}

export const KEY_CACHE_TTL_MS = 5_000;
export const PROXY_KEY_CACHE_TTL_MS = 60_000;
const KEY_CACHE_MAX = 10_000;
const cache = new Map<string, { identity: KeyIdentity; loadedAt: number }>();

/**
 * Each presented key's SHA-256, so a key the cache knows costs no digest (a pure function of
 * the key: never stale, whatever happens to the key). Raw keys stay in this isolate's memory,
 * as they are during each request anyway; cleared whole when full.
 */
const hashes = new Map<string, string>();

async function hashOf(key: string): Promise<string> {
  const known = hashes.get(key);
  if (known) return known;
  const hash = await sha256Hex(key);
  if (hashes.size >= KEY_CACHE_MAX) hashes.clear();
  hashes.set(key, hash);
  return hash;
}

export function forgetKey(keyHash: string): void {
  cache.delete(keyHash);
}

/** For tests and the benchmark: lookups that reached D1 since the isolate started. */
export const authStats = { d1Lookups: 0 };

export async function identify(
  d1: D1Database,
  key: string,
  maxAgeMs = KEY_CACHE_TTL_MS,
): Promise<KeyIdentity | null> {
  const hash = await hashOf(key);
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit && now - hit.loadedAt < maxAgeMs) return hit.identity;
  authStats.d1Lookups++;
  const row = await activeKeyByHash(dbFor(d1), hash);
  if (!row) {
    cache.delete(hash);
    return null;
  }
  const identity: KeyIdentity = {
    accountId: row.accountId,
    keyId: row.id,
    scope: row.scope,
    shards: row.shards,
  };
  if (cache.size >= KEY_CACHE_MAX) {
    // Maps iterate in insertion order: drop the oldest entry.
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.delete(hash); // re-inserted last: the eviction above drops the least recently loaded
  cache.set(hash, { identity, loadedAt: now });
  return identity;
}
