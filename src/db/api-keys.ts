/**
 * The `api_keys` table. Only a key's SHA-256 is stored. Every query of an account's keys is
 * scoped by its account id: another account's key is indistinguishable from a missing one.
 */
import { and, desc, eq, isNull } from "drizzle-orm";
import type { Db } from "./client";
import { apiKeys } from "./schema";

export type NewApiKey = typeof apiKeys.$inferInsert;

export interface ListedKey {
  id: string;
  name: string | null;
  prefix: string;
  last4: string;
  created_at: string;
  revoked_at: string | null;
}

const listed = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  last4: apiKeys.last4,
  created_at: apiKeys.createdAt,
  revoked_at: apiKeys.revokedAt,
};

/** The active key with this hash: who it belongs to. */
export function activeKeyByHash(
  db: Db,
  keyHash: string,
): Promise<{ id: string; accountId: string } | undefined> {
  return db
    .select({ id: apiKeys.id, accountId: apiKeys.accountId })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, keyHash), isNull(apiKeys.revokedAt)))
    .get();
}

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

export async function countActiveKeys(db: Db, accountId: string): Promise<number> {
  const rows = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .all();
  return rows.length;
}

/** The insert, unawaited, so account creation can batch it. */
export function insertKey(db: Db, values: NewApiKey) {
  return db.insert(apiKeys).values(values);
}

export function insertKeyReturning(db: Db, values: NewApiKey): Promise<ListedKey> {
  return db.insert(apiKeys).values(values).returning(listed).get();
}

export async function markKeyRevoked(db: Db, accountId: string, keyId: string): Promise<void> {
  await db
    .update(apiKeys)
    .set({ revokedAt: new Date().toISOString() })
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)));
}
