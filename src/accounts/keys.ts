/**
 * An account's API keys, for `/v1/account/keys` and the Billing page alike: creation (the full
 * key exists only in the result), revocation, and the email each one sends. The two limits
 * (at most MAX_ACTIVE_KEYS active keys; always one active `full` key) are each one guarded D1
 * statement, so concurrent requests cannot get past them together.
 */

import { getAccount } from "../db/accounts";
import {
  getKey,
  insertKeyWithinLimit,
  type KeyScope,
  type ListedKey,
  revokeKeyGuarded,
} from "../db/api-keys";
import type { Db } from "../db/client";
import { mailAccount } from "../delivery/account-mail";
import * as templates from "../delivery/email-templates";
import { ledgerFor } from "../ledger/client";
import type { Actor } from "../platform/actor";
import { type BrandVars, brandOf } from "../platform/brand";
import { newId } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { isTestMode } from "../stripe/client";
import { generateApiKey } from "./api-keys";
import { forgetKey } from "./identity";
import { callerMay, keyPermission, type Role } from "./roles";

type KeyEnv = Pick<
  Bindings,
  "STRIPE_SECRET_KEY" | "ACCOUNT_LEDGER" | "EMAIL" | "EMAIL_FROM" | "DASHBOARD_URL"
> &
  BrandVars;

export type CreateKeyResult =
  | { ok: true; key: ListedKey & { key: string } }
  | { ok: false; reason: "key_limit_reached" | "insufficient_role" }
  | { ok: false; reason: "action_rate_limited"; retryAfterSeconds: number };

/**
 * Creates a key; the full key is in the result and nowhere else. `role` is the person's who asks
 * (null for an API key): a developer makes `classify` keys only.
 */
export async function createKey(
  env: KeyEnv,
  db: Db,
  accountId: string,
  input: { name: string | null; scope: KeyScope; role?: Role | null },
  actor: Actor,
): Promise<CreateKeyResult> {
  if (!callerMay(input.role ?? null, keyPermission(input.scope))) {
    return { ok: false, reason: "insufficient_role" };
  }
  const account = await getAccount(db, accountId);
  const key = await generateApiKey(account?.testMode || isTestMode(env) ? "test" : "live");
  const id = newId("key");
  const inserted = await insertKeyWithinLimit(
    db,
    {
      id,
      accountId,
      keyHash: key.hash,
      prefix: key.prefix,
      last4: key.last4,
      name: input.name,
      scope: input.scope,
    },
    Date.now(),
    {
      accountId,
      actor,
      action: "key.created",
      details: {
        key_id: id,
        name: input.name,
        scope: input.scope,
        prefix: key.prefix,
        last4: key.last4,
      },
    },
  );
  if (!inserted.ok) return inserted;
  const row = await getKey(db, accountId, id);
  if (!row) throw new Error(`key ${id} missing after insert`);
  const { keyHash: _hash, ...listed } = row;
  await mailAccount(env, db, {
    ref: `key_created:${id}`,
    accountId,
    kind: "key_created",
    // Named by prefix and last four, never by the caller's name (see keyCreated).
    ...templates.keyCreated({
      brand: brandOf(env),
      prefix: listed.prefix,
      last4: listed.last4,
      scope: listed.scope,
      dashboardUrl: env.DASHBOARD_URL,
    }),
  });
  return { ok: true, key: { ...listed, key: key.key } };
}

export type RevokeResult =
  | { ok: true; key: ListedKey }
  | { ok: false; reason: "key_not_found" | "last_full_key" | "insufficient_role" };

/**
 * Revokes one of the account's keys; its last active `full` key is kept (money rule 11). `role`
 * as for createKey: a developer revokes `classify` keys only.
 */
export async function revokeKey(
  env: KeyEnv,
  db: Db,
  accountId: string,
  keyId: string,
  actor: Actor,
  role: Role | null = null,
  /** An operator's reason, kept in the audit entry. */
  extra: { reason?: string } = {},
): Promise<RevokeResult> {
  const before = await getKey(db, accountId, keyId);
  if (!before) return { ok: false, reason: "key_not_found" };
  if (!callerMay(role, keyPermission(before.scope))) {
    return { ok: false, reason: "insufficient_role" };
  }
  const revokedNow =
    before.revoked_at === null &&
    (await revokeKeyGuarded(db, accountId, keyId, {
      accountId,
      actor,
      action: "key.revoked",
      details: {
        key_id: keyId,
        name: before.name,
        scope: before.scope,
        prefix: before.prefix,
        last4: before.last4,
        ...extra,
      },
    }));
  const after = await getKey(db, accountId, keyId);
  if (!after) return { ok: false, reason: "key_not_found" };
  if (after.revoked_at === null) return { ok: false, reason: "last_full_key" };
  // D1 decided; now the ledger refuses the key on every later debit, whatever the isolates'
  // key caches say. Idempotent, so a retried revocation that failed here completes it.
  await ledgerFor(env, accountId).revokeKey(keyId);
  // Escrow shards learn revoked keys with their next lease: recalling them ends the old ones.
  await ledgerFor(env, accountId).leaseRecall();
  forgetKey(after.keyHash);
  const { keyHash: _hash, ...listed } = after;
  if (revokedNow) {
    await mailAccount(env, db, {
      ref: `key_revoked:${keyId}`,
      accountId,
      kind: "key_revoked",
      ...templates.keyRevoked({
        prefix: listed.prefix,
        last4: listed.last4,
        dashboardUrl: env.DASHBOARD_URL,
      }),
    });
  }
  return { ok: true, key: listed };
}
