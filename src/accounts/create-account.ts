import { initialBalanceInsert } from "../db/account-balances";
import { insertAccount } from "../db/accounts";
import { insertKey } from "../db/api-keys";
import type { Db } from "../db/client";
import { monthlyGrantInsert } from "../db/transactions";
import type { AdjustResult } from "../ledger/account-ledger";
import { type LocationHint, ledgerFor } from "../ledger/client";
import { newId, sha256Hex } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { PLANS, type PlanId } from "../pricing";
import { isTestMode, stripeConfigured, stripeFor } from "../stripe/client";
import { generateApiKey } from "./api-keys";

export interface CreatedAccount {
  id: string;
  api_key: string;
  stripe_customer_id: string | null;
  email: string;
  plan: PlanId;
  complimentary: boolean;
}

/**
 * Creates an account: its ledger (created in `locationHint`'s region when given) with this cycle's monthly credits, its Stripe customer and
 * its first API key. The ledger comes first: if a later step fails, an orphan ledger with no
 * key is harmless, whereas a key without a ledger would be a broken account.
 */
export async function createAccount(
  env: Bindings,
  db: Db,
  input: { email: string; plan: PlanId; complimentary?: boolean; locationHint?: LocationHint },
): Promise<CreatedAccount> {
  const id = newId("acct");
  const key = await generateApiKey(isTestMode(env) ? "test" : "live");
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
    monthlyGrantInsert(db, {
      id: `cycle:${id}:initial`,
      accountId: id,
      credits: PLANS[input.plan].monthlyCredits,
      at: new Date(snapshot.cycleStartedAt).toISOString(),
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
): Promise<AdjustResult> {
  const ref = input.idempotencyKey
    ? `adj_${(await sha256Hex(`${accountId}\n${input.idempotencyKey}`)).slice(0, 32)}`
    : newId("adj");
  // Its history row (with the operator's reason) is the ledger's projection, from its outbox.
  return ledgerFor(env, accountId).adjust({
    ref,
    monthly: input.monthly,
    purchased: input.purchased,
    reason: input.reason,
  });
}
