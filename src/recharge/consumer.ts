import { stripeFor } from "../billing/stripe-client";
import { getAccount } from "../db/accounts";
import { type Db, dbFor } from "../db/client";
import {
  freezePaymentMethod,
  getTransaction,
  markPurchaseFailed,
  markPurchaseSucceeded,
  recordPendingPurchase,
} from "../db/transactions";
import { sendEmailOnce } from "../email/mailer";
import * as templates from "../email/templates";
import type { Bindings } from "../env";
import { ledgerFor } from "../ledger/client";
import { PermanentRechargeError, shouldRetry } from "./errors";
import { pendingPurchaseOf, RechargeJob } from "./messages";
import { type ChargeOutcome, chargeRecharge } from "./payments";

const MAX_BACKOFF_SECONDS = 300;

/** Exponential backoff for attempt n (1-based): base, 2×base, 4×base … capped at 5 minutes. */
export function retryDelaySeconds(attempts: number, baseSeconds: number): number {
  if (baseSeconds <= 0) return 0;
  return Math.min(MAX_BACKOFF_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1));
}

/**
 * The recharge queue consumer: one message at a time, each acked or retried on its own.
 * Every step is idempotent, so a redelivered message finds the work already done and only
 * completes what is missing. Anything thrown is retried with backoff; after max_retries the
 * message moves to the dead-letter queue, where it is kept visible (money rule 7).
 */
export async function handleRechargeBatch(
  batch: MessageBatch<unknown>,
  env: Bindings,
): Promise<void> {
  const base = Number(env.RECHARGE_RETRY_BASE_SECONDS ?? 10);
  for (const message of batch.messages) {
    const job = RechargeJob.safeParse(message.body);
    if (!job.success) {
      // Cannot ever succeed, but must not vanish: let it run out of retries into the DLQ.
      console.error("malformed recharge job", message.id, job.error.message);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts, base) });
      continue;
    }
    try {
      await processRecharge(job.data, env);
      message.ack();
    } catch (err) {
      if (shouldRetry(err)) {
        console.warn(
          "recharge attempt failed; will retry",
          job.data.recharge_id,
          message.attempts,
          String(err),
        );
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts, base) });
        continue;
      }
      // No retry can help: it stays pending in the ledger and in D1, marked for an operator
      // (money rule 7), and the reconciler reports it until someone settles it.
      console.error("recharge needs attention", job.data.recharge_id, String(err));
      await recordPendingPurchase(dbFor(env.DB), pendingPurchaseOf(job.data), {
        needsAttention: true,
      });
      message.ack();
    }
  }
}

export type RechargeResult = "succeeded" | "failed";

/** Carries one recharge to its end: charged and credited, or failed and recorded. */
export async function processRecharge(
  job: RechargeJob,
  env: Bindings,
  options: { settled?: ChargeOutcome } = {},
): Promise<RechargeResult> {
  const db = dbFor(env.DB);
  await recordPendingPurchase(db, pendingPurchaseOf(job));
  const row = await getTransaction(db, job.recharge_id);
  if (!row) throw new Error(`transaction ${job.recharge_id} missing after insert`);
  const account = await getAccount(db, job.account_id);
  if (!account)
    throw new PermanentRechargeError(
      `account ${job.account_id} of recharge ${job.recharge_id} not found`,
    );

  if (row.status === "succeeded") return completeSuccess(env, db, job, account.email);
  if (row.status === "failed") {
    return completeFailure(
      env,
      db,
      job,
      account.email,
      row.failureCode ?? "unknown",
      row.failureMessage ?? "",
    );
  }

  // Every attempt pays with the card the recharge was created with (frozen by the ledger, or
  // at the first attempt for older recharges): a retry must repeat its first request exactly.
  const paymentMethodId =
    job.payment_method ??
    row.paymentMethodId ??
    (account.paymentMethodId
      ? await freezePaymentMethod(db, job.recharge_id, account.paymentMethodId)
      : null);
  let outcome: ChargeOutcome;
  if (options.settled) {
    outcome = options.settled;
  } else if (!account.stripeCustomerId || !paymentMethodId) {
    outcome = {
      status: "failed",
      code: "payment_method_required",
      message: "There is no payment method on file.",
      paymentIntentId: null,
    };
  } else {
    outcome = await chargeRecharge(stripeFor(env), job, {
      customerId: account.stripeCustomerId,
      paymentMethodId,
    });
  }

  if (outcome.status === "succeeded") {
    await markPurchaseSucceeded(db, job.recharge_id, outcome.paymentIntentId);
    return completeSuccess(env, db, job, account.email);
  }
  await markPurchaseFailed(db, job.recharge_id, outcome);
  return completeFailure(env, db, job, account.email, outcome.code, outcome.message);
}

async function completeSuccess(
  env: Bindings,
  db: Db,
  job: RechargeJob,
  to: string,
): Promise<RechargeResult> {
  const granted = await ledgerFor(env, job.account_id).grantPurchased(job.recharge_id, job.credits);
  if (!granted.ok) {
    throw new PermanentRechargeError(`grant of ${job.recharge_id} refused: ${granted.reason}`);
  }
  const mail = templates.rechargeSucceeded({
    kind: job.kind,
    credits: job.credits,
    amountCents: job.amount_cents,
    rechargeId: job.recharge_id,
    balanceTotal: granted.balance.total,
    dashboardUrl: env.DASHBOARD_URL,
  });
  await sendEmailOnce(env, db, {
    ref: `recharge_succeeded:${job.recharge_id}`,
    accountId: job.account_id,
    kind: "recharge_succeeded",
    to,
    ...mail,
  });
  return "succeeded";
}

async function completeFailure(
  env: Bindings,
  db: Db,
  job: RechargeJob,
  to: string,
  code: string,
  message: string,
): Promise<RechargeResult> {
  const failed = await ledgerFor(env, job.account_id).rechargeFailed(
    job.recharge_id,
    code,
    message,
  );
  if (!failed.ok && failed.reason !== "already_succeeded") {
    throw new PermanentRechargeError(
      `recording failure of ${job.recharge_id} refused: ${failed.reason}`,
    );
  }
  const mail = templates.rechargeFailed({
    kind: job.kind,
    amountCents: job.amount_cents,
    code,
    message,
    rechargeId: job.recharge_id,
    dashboardUrl: env.DASHBOARD_URL,
  });
  await sendEmailOnce(env, db, {
    ref: `recharge_failed:${job.recharge_id}`,
    accountId: job.account_id,
    kind: "recharge_failed",
    to,
    ...mail,
  });
  return "failed";
}

/**
 * The dead-letter consumer: a recharge that ran out of retries is marked for an operator.
 * It stays pending in the ledger and in D1 (so no second recharge starts), and the reconciler
 * can carry it on; nothing is dropped.
 */
export async function handleDeadLetterBatch(
  batch: MessageBatch<unknown>,
  env: Bindings,
): Promise<void> {
  const db = dbFor(env.DB);
  for (const message of batch.messages) {
    const job = RechargeJob.safeParse(message.body);
    if (!job.success) {
      console.error(
        "dead-lettered malformed recharge job kept in logs",
        message.id,
        JSON.stringify(message.body).slice(0, 2000),
      );
      message.ack();
      continue;
    }
    try {
      await recordPendingPurchase(db, pendingPurchaseOf(job.data), { needsAttention: true });
      console.error("recharge needs attention after exhausting retries", job.data.recharge_id);
      message.ack();
    } catch (err) {
      console.error("dead-letter bookkeeping failed; will retry", String(err));
      message.retry({ delaySeconds: 30 });
    }
  }
}
