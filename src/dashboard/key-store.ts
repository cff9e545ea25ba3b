/**
 * An account's API keys, for `/v1/account/keys` and the Billing page alike: creation (the full
 * key exists only in the result) and revocation (the ledger refuses the key at once, D1 follows).
 */
import { isTestMode } from "../billing/stripe-client";
import { newId } from "../crypto";
import { getAccount } from "../db/accounts";
import {
  countActiveKeys,
  getKey,
  insertKeyReturning,
  type ListedKey,
  markKeyRevoked,
} from "../db/api-keys";
import type { Db } from "../db/client";
import type { Bindings } from "../env";
import { generateApiKey } from "../gateway/api-keys";
import { forgetKey } from "../gateway/identity";
import { ledgerFor } from "../ledger/client";

/** Creates a key; the full key is in the result and nowhere else. */
export async function createKey(
  env: Pick<Bindings, "STRIPE_SECRET_KEY">,
  db: Db,
  accountId: string,
  name: string | null,
): Promise<ListedKey & { key: string }> {
  const account = await getAccount(db, accountId);
  const key = await generateApiKey(account?.testMode || isTestMode(env) ? "test" : "live");
  const row = await insertKeyReturning(db, {
    id: newId("key"),
    accountId,
    keyHash: key.hash,
    prefix: key.prefix,
    last4: key.last4,
    name,
  });
  return { ...row, key: key.key };
}

export type RevokeResult =
  | { ok: true; key: ListedKey }
  | { ok: false; reason: "not_found" | "last_active_key" };

/** Revokes one of the account's keys; its last active key is kept so the account stays usable. */
export async function revokeKey(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  db: Db,
  accountId: string,
  keyId: string,
): Promise<RevokeResult> {
  const key = await getKey(db, accountId, keyId);
  if (!key) return { ok: false, reason: "not_found" };
  const { keyHash, ...listed } = key;
  if (key.revoked_at) return { ok: true, key: listed };
  if ((await countActiveKeys(db, accountId)) <= 1) return { ok: false, reason: "last_active_key" };
  // The ledger first: from here on no proxied request with this key is served, whatever the
  // isolates' key caches say. A failure below leaves it refused there and is safe to retry.
  await ledgerFor(env, accountId).revokeKey(key.id);
  await markKeyRevoked(db, accountId, key.id);
  forgetKey(keyHash);
  const revoked = await getKey(db, accountId, keyId);
  return { ok: true, key: revoked ? { ...listed, revoked_at: revoked.revoked_at } : listed };
}
