/**
 * An account's API keys in D1, for `/v1/account/keys` and the Billing page alike. Every query
 * is scoped by account id: another account's key is indistinguishable from a missing one.
 */
import { and, desc, eq, isNull } from "drizzle-orm";
import { isTestMode } from "../billing/stripe-client";
import { newId } from "../crypto";
import { accounts, apiKeys } from "../db/schema";
import type { Bindings, Db } from "../env";
import { generateApiKey } from "../gateway/api-keys";
import { forgetKey } from "../gateway/auth";
import { ledgerFor } from "../ledger/client";

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

export function listKeys(db: Db, accountId: string): Promise<ListedKey[]> {
  return db
    .select(listed)
    .from(apiKeys)
    .where(eq(apiKeys.accountId, accountId))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .all();
}

/** Creates a key; the full key is in the result and nowhere else. */
export async function createKey(
  env: Pick<Bindings, "STRIPE_SECRET_KEY">,
  db: Db,
  accountId: string,
  name: string | null,
): Promise<ListedKey & { key: string }> {
  const account = await db
    .select({ testMode: accounts.testMode })
    .from(accounts)
    .where(eq(accounts.id, accountId))
    .get();
  const key = await generateApiKey(account?.testMode || isTestMode(env) ? "test" : "live");
  const row = await db
    .insert(apiKeys)
    .values({
      id: newId("key"),
      accountId,
      keyHash: key.hash,
      prefix: key.prefix,
      last4: key.last4,
      name,
    })
    .returning(listed)
    .get();
  return { ...row, key: key.key };
}

export type RevokeResult = { ok: true } | { ok: false; reason: "not_found" | "last_active_key" };

/** Revokes one of the account's keys; its last active key is kept so the account stays usable. */
export async function revokeKey(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  db: Db,
  accountId: string,
  keyId: string,
): Promise<RevokeResult> {
  const key = await db
    .select({ id: apiKeys.id, keyHash: apiKeys.keyHash, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, accountId)))
    .get();
  if (!key) return { ok: false, reason: "not_found" };
  if (key.revokedAt) return { ok: true };
  const active = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .all();
  if (active.length <= 1) return { ok: false, reason: "last_active_key" };
  // The ledger first: from here on no proxied request with this key is served, whatever the
  // isolates' key caches say. A failure below leaves it refused there and is safe to retry.
  await ledgerFor(env, accountId).revokeKey(key.id);
  await db
    .update(apiKeys)
    .set({ revokedAt: new Date().toISOString() })
    .where(and(eq(apiKeys.id, key.id), isNull(apiKeys.revokedAt)));
  forgetKey(key.keyHash);
  return { ok: true };
}
