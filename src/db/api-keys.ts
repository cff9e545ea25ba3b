/**
 * The `api_keys` table. Only a key's SHA-256 is stored. Every query of an account's keys is
 * scoped by its account id: another account's key is indistinguishable from a missing one.
 */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./client";
import { apiKeys } from "./schema";

export type NewApiKey = typeof apiKeys.$inferInsert;
export type KeyScope = "full" | "classify";

/** Active keys an account may hold at once. */
export const MAX_ACTIVE_KEYS = 20;

export interface ListedKey {
  id: string;
  name: string | null;
  prefix: string;
  last4: string;
  scope: KeyScope;
  created_at: string;
  revoked_at: string | null;
}

const listed = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  last4: apiKeys.last4,
  scope: apiKeys.scope,
  created_at: apiKeys.createdAt,
  revoked_at: apiKeys.revokedAt,
};

/** The active key with this hash: who it belongs to. */
export function activeKeyByHash(
  db: Db,
  keyHash: string,
): Promise<{ id: string; accountId: string; scope: KeyScope } | undefined> {
  return db
    .select({ id: apiKeys.id, accountId: apiKeys.accountId, scope: apiKeys.scope })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, keyHash), isNull(apiKeys.revokedAt)))
    .get();
}

/** True when the key is still active on that account. */
export async function isKeyActive(db: Db, accountId: string, keyId: string): Promise<boolean> {
  const row = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .get();
  return row !== undefined;
}

export function listKeys(db: Db, accountId: string): Promise<ListedKey[]> {
  return db
    .select(listed)
    .from(apiKeys)
    .where(eq(apiKeys.accountId, accountId))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .all();
}

export function getKey(db: Db, accountId: string, keyId: string) {
  return db
    .select({ ...listed, keyHash: apiKeys.keyHash })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, accountId)))
    .get();
}

/** The insert, unawaited, so account creation can batch it. */
export function insertKey(db: Db, values: NewApiKey) {
  return db.insert(apiKeys).values(values);
}

/**
 * Inserts the key only while the account has fewer than MAX_ACTIVE_KEYS active keys. One
 * statement: D1 runs each statement alone, so concurrent creations cannot pass the count
 * together. Returns false when the account is at its limit.
 */
export async function insertKeyWithinLimit(
  db: Db,
  key: Required<Pick<NewApiKey, "id" | "accountId" | "keyHash" | "prefix" | "last4" | "scope">> & {
    name: string | null;
  },
): Promise<boolean> {
  const result = await db.run(sql`
    INSERT INTO api_keys (id, account_id, key_hash, prefix, last4, name, scope)
    SELECT ${key.id}, ${key.accountId}, ${key.keyHash}, ${key.prefix}, ${key.last4}, ${key.name}, ${key.scope}
    WHERE (SELECT COUNT(*) FROM api_keys WHERE account_id = ${key.accountId} AND revoked_at IS NULL)
      < ${MAX_ACTIVE_KEYS}`);
  return result.meta.changes === 1;
}

/**
 * Revokes the key unless it is the account's last active `full` key (money rule 11). One
 * guarded statement, so concurrent revocations are serialized by D1 itself: of five
 * concurrent revocations of five full keys, exactly one is refused.
 */
export async function revokeKeyGuarded(db: Db, accountId: string, keyId: string): Promise<boolean> {
  const now = new Date().toISOString();
  const result = await db.run(sql`
    UPDATE api_keys SET revoked_at = ${now}
    WHERE id = ${keyId} AND account_id = ${accountId} AND revoked_at IS NULL
      AND (scope != 'full' OR (SELECT COUNT(*) FROM api_keys
             WHERE account_id = ${accountId} AND revoked_at IS NULL AND scope = 'full') > 1)`);
  return result.meta.changes === 1;
}
