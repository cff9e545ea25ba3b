/**
 * The `api_keys` table. Only a key's SHA-256 is stored. Every query of an account's keys is
 * scoped by its account id: another account's key is indistinguishable from a missing one.
 */
import { and, asc, desc, eq, gt, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import { type AuditEntry, auditInsert } from "./audit-log";
import type { Db } from "./client";
import { accounts, apiKeys } from "./schema";

export type NewApiKey = typeof apiKeys.$inferInsert;
export type KeyScope = "full" | "classify";

/** Active keys an account may hold at once. */
export const MAX_ACTIVE_KEYS = 20;
/**
 * Keys an account may create per hour (its first key counts). Above MAX_ACTIVE_KEYS, so that
 * filling the account and rotating a few keys in one hour still works; it bounds create-and-
 * revoke churn (rows, and the email each creation and revocation sends) to this many an hour.
 */
export const KEYS_PER_HOUR = 30;
export const KEY_WINDOW_MS = 60 * 60_000;

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
): Promise<{ id: string; accountId: string; scope: KeyScope; shards: number } | undefined> {
  // The account's shard count rides along (docs/ledger-shards.md): the gateway needs it on
  // every proxied request and caches it with the key.
  return db
    .select({
      id: apiKeys.id,
      accountId: apiKeys.accountId,
      scope: apiKeys.scope,
      shards: accounts.shards,
    })
    .from(apiKeys)
    .innerJoin(accounts, eq(accounts.id, apiKeys.accountId))
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

/** Up to `limit` of the account's keys, newest first, older than `after` when given. */
export function listKeyPage(
  db: Db,
  accountId: string,
  limit: number,
  after?: { createdAt: string; id: string },
): Promise<ListedKey[]> {
  let older: SQL | undefined;
  if (after) {
    older = or(
      lt(apiKeys.createdAt, after.createdAt),
      and(eq(apiKeys.createdAt, after.createdAt), lt(apiKeys.id, after.id)),
    );
  }
  return db
    .select(listed)
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, accountId), older))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .limit(limit)
    .all();
}

/** The account's active keys, newest first: at most MAX_ACTIVE_KEYS (the Billing page's list). */
export function listActiveKeys(db: Db, accountId: string): Promise<ListedKey[]> {
  return db
    .select(listed)
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .limit(MAX_ACTIVE_KEYS)
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

export type KeyInsert =
  | { ok: true }
  | { ok: false; reason: "key_limit_reached" }
  | { ok: false; reason: "action_rate_limited"; retryAfterSeconds: number };

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Inserts the key only while the account has fewer than MAX_ACTIVE_KEYS active keys and made
 * fewer than KEYS_PER_HOUR keys in the last hour (the rows themselves are the counter). One
 * statement: D1 runs each statement alone, so concurrent creations cannot pass either count
 * together. When refused, says which limit (the active-key limit first: revoking frees it).
 */
export async function insertKeyWithinLimit(
  db: Db,
  key: Required<Pick<NewApiKey, "id" | "accountId" | "keyHash" | "prefix" | "last4" | "scope">> & {
    name: string | null;
  },
  now = Date.now(),
  audit?: AuditEntry,
): Promise<KeyInsert> {
  const since = iso(now - KEY_WINDOW_MS);
  // The builder (every column, in the table's order), so that it can be batched: drizzle's D1
  // batch cannot take a raw statement with parameters.
  const insert = db.insert(apiKeys).select(sql`
    SELECT ${key.id}, ${key.accountId}, ${key.keyHash}, ${key.prefix}, ${key.last4}, ${key.name},
      ${key.scope}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NULL
    WHERE (SELECT COUNT(*) FROM api_keys WHERE account_id = ${key.accountId} AND revoked_at IS NULL)
      < ${MAX_ACTIVE_KEYS}
      AND (SELECT COUNT(*) FROM api_keys WHERE account_id = ${key.accountId} AND created_at > ${since})
      < ${KEYS_PER_HOUR}`);
  // The audit row (money rule 12) in the same batch, written only if the key was.
  const [result] = audit
    ? await db.batch([
        insert,
        auditInsert(db, audit, sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${key.id})`),
      ])
    : [await insert];
  if (result.meta.changes === 1) return { ok: true };
  const active = await db
    .select({ n: sql<number>`count(*)` })
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, key.accountId), isNull(apiKeys.revokedAt)))
    .get();
  if ((active?.n ?? 0) >= MAX_ACTIVE_KEYS) return { ok: false, reason: "key_limit_reached" };
  const recent = await db
    .select({ createdAt: apiKeys.createdAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, key.accountId), gt(apiKeys.createdAt, since)))
    .orderBy(asc(apiKeys.createdAt))
    .limit(1)
    .get();
  const clearsAt = recent ? Date.parse(recent.createdAt) + KEY_WINDOW_MS : now;
  return {
    ok: false,
    reason: "action_rate_limited",
    retryAfterSeconds: Math.max(1, Math.ceil((clearsAt - now) / 1000)),
  };
}

/**
 * Revokes the key unless it is the account's last active `full` key (money rule 11). One
 * guarded statement, so concurrent revocations are serialized by D1 itself: of five
 * concurrent revocations of five full keys, exactly one is refused.
 */
export async function revokeKeyGuarded(
  db: Db,
  accountId: string,
  keyId: string,
  audit?: AuditEntry,
): Promise<boolean> {
  const now = new Date().toISOString();
  const update = db
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(
      and(
        eq(apiKeys.id, keyId),
        eq(apiKeys.accountId, accountId),
        isNull(apiKeys.revokedAt),
        sql`(scope != 'full' OR (SELECT COUNT(*) FROM api_keys
             WHERE account_id = ${accountId} AND revoked_at IS NULL AND scope = 'full') > 1)`,
      ),
    );
  // The audit row in the same batch, written only if this statement revoked the key.
  const [result] = audit
    ? await db.batch([
        update,
        auditInsert(
          db,
          audit,
          sql`EXISTS (SELECT 1 FROM api_keys WHERE id = ${keyId} AND revoked_at = ${now})`,
        ),
      ])
    : [await update];
  return result.meta.changes === 1;
}
