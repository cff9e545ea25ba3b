import { recordAudit } from "../accounts/audit";
import { getAccount } from "../db/accounts";
import { type Db, dbFor } from "../db/client";
import { freezePaymentMethod, pendingPurchaseOf, recordPendingPurchase } from "../db/transactions";
import { ledgerFor } from "../ledger/client";
import type { PaymentProblemResult } from "../ledger/domain/types";
import { SYSTEM_ACTOR } from "../platform/actor";
import type { Bindings } from "../platform/env";
import { stripeFor } from "../stripe/client";
import { PermanentRechargeError, shouldRetry } from "./errors";
import { RechargeJob } from "./messages";
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

export type RechargeResult = "succeeded" | "requires_action" | "failed";

/**
 * Carries one recharge to its end: charged and credited, failed, or waiting for the customer
 * to authenticate on the invoice page. The ledger owns the recharge's status: this charges
 * Stripe and tells the ledger the outcome, and the ledger's outbox writes D1's purchase row and
 * emails the customer. `settled` is an outcome Stripe already decided (a webhook, the
 * reconciler): it is told the same way, with no Stripe call. A paid outcome wins over a
 * recorded failure (money taken, credits given); a succeeded purchase stays succeeded whatever
 * arrives after it.
 */
export async function processRecharge(
  job: RechargeJob,
  env: Bindings,
  options: { settled?: ChargeOutcome } = {},
): Promise<RechargeResult> {
  const db = dbFor(env.DB);
  const ledger = ledgerFor(env, job.account_id);
  const recharge = await ledger.recharge(job.recharge_id);
  if (!recharge)
    throw new PermanentRechargeError(`recharge ${job.recharge_id} unknown to the ledger`);
  const account = await getAccount(db, job.account_id);
  if (!account)
    throw new PermanentRechargeError(
      `account ${job.account_id} of recharge ${job.recharge_id} not found`,
    );

  // A redelivery finds the outcome already told: nothing is charged again.
  const settled = options.settled;
  const status = recharge.status;
  if (status === "succeeded") return "succeeded";
  if (status === "failed" && settled?.status !== "succeeded") return "failed";
  if (status === "requires_action" && !settled) return "requires_action";

  // Every attempt pays with the card the recharge was created with (frozen by the ledger, or
  // at the first attempt for older recharges): a retry must repeat its first request exactly.
  const paymentMethodId =
    job.payment_method ??
    (account.paymentMethodId
      ? await freezePaymentMethod(db, job.recharge_id, account.paymentMethodId)
      : null);
  let outcome: ChargeOutcome;
  if (settled) {
    outcome = settled;
  } else if (!account.stripeCustomerId || !paymentMethodId) {
    outcome = {
      status: "failed",
      code: "payment_method_required",
      message: "There is no payment method on file.",
      invoiceId: null,
      invoiceUrl: null,
      paymentIntentId: null,
    };
  } else {
    outcome = await chargeRecharge(
      stripeFor(env),
      job,
      { customerId: account.stripeCustomerId, paymentMethodId },
      env,
    );
  }
  return tellLedger(dbFor(env.DB), ledger, job, outcome);
}

/** The outcome, told to the ledger that owns the recharge's status. */
async function tellLedger(
  db: Db,
  ledger: ReturnType<typeof ledgerFor>,
  job: RechargeJob,
  outcome: ChargeOutcome,
): Promise<RechargeResult> {
  const id = job.recharge_id;
  const payment = {
    invoiceId: outcome.invoiceId,
    invoiceUrl: outcome.invoiceUrl,
    paymentIntentId: outcome.paymentIntentId,
  };
  if (outcome.status === "succeeded") {
    const granted = await ledger.grantPurchased(id, job.credits, payment);
    if (!granted.ok) throw new PermanentRechargeError(`grant of ${id} refused: ${granted.reason}`);
    return "succeeded";
  }
  if (outcome.status === "requires_action") {
    const recorded = await turningOffAutoRecharge(db, ledger, job, outcome.code, () =>
      ledger.rechargeNeedsAction(id, outcome.code, outcome.message, outcome.actionUrl, payment),
    );
    if (!recorded.ok) {
      if (recorded.reason === "already_succeeded") return "succeeded";
      throw new PermanentRechargeError(
        `recording that ${id} needs action refused: ${recorded.reason}`,
      );
    }
    // Only a pending purchase starts waiting: a failed one stays failed.
    const now = await ledger.recharge(id);
    return now?.status === "failed" ? "failed" : "requires_action";
  }
  const failed = await turningOffAutoRecharge(db, ledger, job, outcome.code, () =>
    ledger.rechargeFailed(id, outcome.code, outcome.message, payment),
  );
  if (!failed.ok && failed.reason !== "already_succeeded")
    throw new PermanentRechargeError(`recording failure of ${id} refused: ${failed.reason}`);
  return "failed";
}

/**
 * Records a payment problem in the ledger, which turns auto-recharge off (money rule 6), and
 * the audit log's `auto_recharge.disabled` (money rule 12, actor system) when this call is
 * what turned it off: on before, recorded now, off after. Keyed by the recharge, so a retry
 * records it once.
 */
async function turningOffAutoRecharge(
  db: Db,
  ledger: ReturnType<typeof ledgerFor>,
  job: RechargeJob,
  code: string,
  record: () => Promise<PaymentProblemResult>,
): Promise<PaymentProblemResult> {
  const before = await ledger.autoRecharge();
  const result = await record();
  if (before?.enabled && result.ok && result.changed) {
    const after = await ledger.autoRecharge();
    if (after && !after.enabled) {
      await recordAudit(
        db,
        job.account_id,
        SYSTEM_ACTOR,
        "auto_recharge.disabled",
        { purchase_id: job.recharge_id, kind: job.kind, reason: code },
        { ref: job.recharge_id },
      );
    }
  }
  return result;
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
