import { initialBalanceInsert } from "../db/account-balances";
import { insertAccount } from "../db/accounts";
import { insertKey } from "../db/api-keys";
import { auditInsert } from "../db/audit-log";
import type { Db } from "../db/client";
import { insertMember } from "../db/members";
import { monthlyGrantInsert } from "../db/transactions";
import type { AdjustResult } from "../ledger/account-ledger";
import { type LocationHint, ledgerFor } from "../ledger/client";
import type { Actor } from "../platform/actor";
import { newId, sha256Hex } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { PLANS, type PlanId } from "../pricing";
import { isTestMode, stripeConfigured, stripeFor } from "../stripe/client";
import { generateApiKey } from "./api-keys";
import { normalizeEmail } from "./signup-config";

export interface CreatedAccount {
  id: string;
  api_key: string;
  stripe_customer_id: string | null;
  email: string;
  plan: PlanId;
  complimentary: boolean;
  /** The member row of its first owner: the account's email. */
  owner_member_id: string;
}

/**
 * Creates an account: its ledger (created in `locationHint`'s region when given) with this cycle's monthly credits, its Stripe customer,
 * its first API key and its first owner (its email: whoever signed up, or whom an operator named). The ledger comes first: if a later step fails, an orphan ledger with no
 * key is harmless, whereas a key without a ledger would be a broken account.
 */
export async function createAccount(
  env: Bindings,
  db: Db,
  input: { email: string; plan: PlanId; complimentary?: boolean; locationHint?: LocationHint },
  /** Who creates it, for the audit log: an operator, or the person signing up. */
  actor: Actor,
): Promise<CreatedAccount> {
  const id = newId("acct");
  const key = await generateApiKey(isTestMode(env) ? "test" : "live");
  const ownerId = newId("mem");
  // The first `get` creates the object, where it stays: near the customer, not the operator.
  const snapshot = await ledgerFor(env, id, { locationHint: input.locationHint }).init({
    accountId: id,
    plan: input.plan,
  });

  let stripeCustomerId: string | null = null;
  if (stripeConfigured(env)) {
    const customer = await stripeFor(env).customers.create(
      { email: input.email, metadata: { account_id: id } },
      { idempotencyKey: `${id}:customer` },
    );
    stripeCustomerId = customer.id;
  }

  await db.batch([
    insertAccount(db, {
      id,
      email: input.email,
      plan: input.plan,
      testMode: key.prefix === "tg_test_",
      stripeCustomerId,
      complimentary: input.complimentary === true,
    }),
    insertKey(db, {
      id: newId("key"),
      accountId: id,
      keyHash: key.hash,
      prefix: key.prefix,
      last4: key.last4,
      name: "default",
      scope: "full",
    }),
    insertMember(db, {
      id: ownerId,
      accountId: id,
      email: normalizeEmail(input.email),
      role: "owner",
    }),
    monthlyGrantInsert(db, {
      id: `cycle:${id}:initial`,
      accountId: id,
      credits: PLANS[input.plan].monthlyCredits,
      at: new Date(snapshot.cycleStartedAt).toISOString(),
    }),
    auditInsert(db, {
      accountId: id,
      actor,
      action: "account.created",
      details: {
        email: input.email,
        plan: input.plan,
        complimentary: input.complimentary === true,
      },
    }),
    // The overview's first figure for it (version 0): the ledger projects every later change,
    // and does not for its creation, which would cost every new account an alarm.
    initialBalanceInsert(db, {
      accountId: id,
      monthly: snapshot.balance.monthly,
      purchased: snapshot.balance.purchased,
      at: new Date(snapshot.cycleStartedAt).toISOString(),
    }),
  ]);
  return {
    id,
    api_key: key.key,
    stripe_customer_id: stripeCustomerId,
    email: input.email,
    plan: input.plan,
    complimentary: input.complimentary === true,
    owner_member_id: ownerId,
  };
}

/**
 * One audited adjustment of both buckets. A retried request with the same Idempotency-Key
 * maps to the same ledger ref, so it is applied once.
 */
export async function adjustCredits(
  env: Bindings,
  accountId: string,
  input: { monthly: number; purchased: number; reason: string; idempotencyKey?: string },
): Promise<AdjustResult & { ref: string }> {
  const ref = input.idempotencyKey
    ? `adj_${(await sha256Hex(`${accountId}\n${input.idempotencyKey}`)).slice(0, 32)}`
    : newId("adj");
  // Its history row (with the operator's reason) is the ledger's projection, from its outbox.
  const result = await ledgerFor(env, accountId).adjust({
    ref,
    monthly: input.monthly,
    purchased: input.purchased,
    reason: input.reason,
  });
  // The ref names the adjustment in the audit log (one entry however often it is replayed).
  return { ...result, ref };
}
