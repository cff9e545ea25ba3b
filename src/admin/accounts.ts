import { sql } from "drizzle-orm";
import { isTestMode, stripeConfigured, stripeFor } from "../billing/stripe-client";
import { providerError } from "../billing/stripe-errors";
import { newId, sha256Hex } from "../crypto";
import { accounts, apiKeys, transactions } from "../db/schema";
import type { Bindings, Db } from "../env";
import { ApiError } from "../errors";
import { generateApiKey } from "../gateway/api-keys";
import { ledgerFor } from "../ledger/client";
import type { BalanceView } from "../ledger/rules";
import { PLANS, type PlanId } from "../pricing";

export interface CreatedAccount {
  id: string;
  api_key: string;
  stripe_customer_id: string | null;
  email: string;
  plan: PlanId;
}

/**
 * Creates an account: its ledger with this cycle's monthly credits, its Stripe customer and
 * its first API key. The ledger comes first: if a later step fails, an orphan ledger with no
 * key is harmless, whereas a key without a ledger would be a broken account.
 */
export async function createAccount(
  env: Bindings,
  db: Db,
  input: { email: string; plan: PlanId },
): Promise<CreatedAccount> {
  const id = newId("acct");
  const key = await generateApiKey(isTestMode(env) ? "test" : "live");
  const snapshot = await ledgerFor(env, id).init({ accountId: id, plan: input.plan });

  let stripeCustomerId: string | null = null;
  if (stripeConfigured(env)) {
    try {
      const customer = await stripeFor(env).customers.create(
        { email: input.email, metadata: { account_id: id } },
        { idempotencyKey: `${id}:customer` },
      );
      stripeCustomerId = customer.id;
    } catch (err) {
      throw providerError(err);
    }
  }

  const allowance = PLANS[input.plan].monthlyCredits;
  await db.batch([
    db.insert(accounts).values({
      id,
      email: input.email,
      plan: input.plan,
      testMode: key.prefix === "tg_test_",
      stripeCustomerId,
    }),
    db.insert(apiKeys).values({
      id: newId("key"),
      accountId: id,
      keyHash: key.hash,
      prefix: key.prefix,
      last4: key.last4,
      name: "default",
    }),
    db.insert(transactions).values({
      id: `cycle:${id}:initial`,
      accountId: id,
      type: "monthly_grant",
      status: "succeeded",
      credits: allowance,
      createdAt: snapshot.cycle_started_at,
    }),
  ]);
  return {
    id,
    api_key: key.key,
    stripe_customer_id: stripeCustomerId,
    email: input.email,
    plan: input.plan,
  };
}

/**
 * One audited adjustment of both buckets. A retried request with the same Idempotency-Key
 * maps to the same ledger ref, so it is applied once.
 */
export async function adjustCredits(
  env: Bindings,
  db: Db,
  accountId: string,
  input: { monthly: number; purchased: number; reason: string; idempotencyKey?: string },
): Promise<BalanceView> {
  const ref = input.idempotencyKey
    ? `adj_${(await sha256Hex(`${accountId}\n${input.idempotencyKey}`)).slice(0, 32)}`
    : newId("adj");
  const result = await ledgerFor(env, accountId).adjust({
    ref,
    monthly: input.monthly,
    purchased: input.purchased,
    reason: input.reason,
  });
  if (!result.ok && result.reason === "idempotency_conflict") {
    throw new ApiError(
      "idempotency_conflict",
      "This Idempotency-Key was already used with other amounts.",
    );
  }
  if (!result.ok) {
    throw new ApiError(
      "insufficient_credits",
      "The adjustment would take a bucket below zero; nothing changed.",
      {
        status: 409,
        extra: { balance: result.balance },
      },
    );
  }
  await db
    .insert(transactions)
    .values({
      id: ref,
      accountId,
      type: "adjustment",
      status: "succeeded",
      credits: input.monthly + input.purchased,
      failureMessage: null,
      updatedAt: sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`,
    })
    .onConflictDoNothing();
  return result.balance;
}
