import { recordAudit } from "../accounts/audit";
import { getAccount } from "../db/accounts";
import { type Db, dbFor } from "../db/client";
import {
  freezePaymentMethod,
  getTransaction,
  markPurchaseFailed,
  markPurchaseRequiresAction,
  markPurchaseSucceeded,
  pendingPurchaseOf,
  recordPendingPurchase,
} from "../db/transactions";
import * as templates from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import { ledgerFor } from "../ledger/client";
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
 * Carries one recharge to its end: charged and credited, failed and recorded, or waiting for
 * the customer to authenticate on the invoice page. `settled` is an outcome Stripe already
 * decided (a webhook, the reconciler): it is recorded through the same idempotent steps, with
 * no Stripe call. A paid outcome wins over a recorded failure (money taken, credits given); a
 * succeeded purchase stays succeeded whatever arrives after it.
 */
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

  const settled = options.settled;
  if (row.status === "succeeded") return completeSuccess(env, db, job, account.email);
  if (row.status === "failed" && settled?.status !== "succeeded") {
    return completeFailure(env, db, job, account.email, {
      code: row.failureCode ?? "unknown",
      message: row.failureMessage ?? "",
      invoiceUrl: row.invoiceUrl,
    });
  }
  if (row.status === "requires_action" && !settled) {
    // Waiting for the customer: a redelivery charges nothing, it only completes the notice.
    return completeNeedsAction(env, db, job, account.email, {
      code: row.failureCode ?? "authentication_required",
      message: row.failureMessage ?? "",
      actionUrl: row.actionUrl,
    });
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

  if (outcome.status === "succeeded") {
    await markPurchaseSucceeded(db, job.recharge_id, outcome);
    return completeSuccess(env, db, job, account.email);
  }
  if (outcome.status === "requires_action") {
    await markPurchaseRequiresAction(db, job.recharge_id, outcome);
    // Only a pending purchase moves to requires_action: read back what stands.
    const now = await getTransaction(db, job.recharge_id);
    if (now?.status === "requires_action") {
      return completeNeedsAction(env, db, job, account.email, {
        code: outcome.code,
        message: outcome.message,
        actionUrl: now.actionUrl,
      });
    }
    return processRecharge(job, env);
  }
  await markPurchaseFailed(db, job.recharge_id, outcome);
  return completeFailure(env, db, job, account.email, {
    code: outcome.code,
    message: outcome.message,
    invoiceUrl: outcome.invoiceUrl ?? row.invoiceUrl,
  });
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
  failure: { code: string; message: string; invoiceUrl: string | null },
): Promise<RechargeResult> {
  const failed = await turningOffAutoRecharge(env, db, job, failure.code, (ledger) =>
    ledger.rechargeFailed(job.recharge_id, failure.code, failure.message),
  );
  if (!failed.ok && failed.reason !== "already_succeeded") {
    throw new PermanentRechargeError(
      `recording failure of ${job.recharge_id} refused: ${failed.reason}`,
    );
  }
  const mail = templates.rechargeFailed({
    kind: job.kind,
    amountCents: job.amount_cents,
    code: failure.code,
    message: failure.message,
    rechargeId: job.recharge_id,
    invoiceUrl: failure.invoiceUrl,
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
 * The payment needs the customer: nothing granted, auto-recharge off (money rule 6), the link
 * kept on the settings' last failure and emailed once. Paying on that page settles the same
 * recharge (webhook `invoice.paid`); the reconciler voids it if it waits too long.
 */
async function completeNeedsAction(
  env: Bindings,
  db: Db,
  job: RechargeJob,
  to: string,
  action: { code: string; message: string; actionUrl: string | null },
): Promise<RechargeResult> {
  const recorded = await turningOffAutoRecharge(env, db, job, action.code, (ledger) =>
    ledger.rechargeNeedsAction(job.recharge_id, action.code, action.message, action.actionUrl),
  );
  if (!recorded.ok) {
    if (recorded.reason === "already_succeeded") return completeSuccess(env, db, job, to);
    throw new PermanentRechargeError(
      `recording that ${job.recharge_id} needs action refused: ${recorded.reason}`,
    );
  }
  const mail = templates.rechargeNeedsAction({
    kind: job.kind,
    amountCents: job.amount_cents,
    credits: job.credits,
    actionUrl: action.actionUrl,
    rechargeId: job.recharge_id,
    dashboardUrl: env.DASHBOARD_URL,
  });
  await sendEmailOnce(env, db, {
    ref: `recharge_requires_action:${job.recharge_id}`,
    accountId: job.account_id,
    kind: "recharge_requires_action",
    to,
    ...mail,
  });
  return "requires_action";
}

/**
 * Records a payment problem in the ledger, which turns auto-recharge off (money rule 6), and
 * the audit log's `auto_recharge.disabled` (money rule 12, actor system) when this call is
 * what turned it off: on before, recorded now, off after. Keyed by the recharge, so a retry
 * adds no second entry. Only on this path (a failed or waiting payment), never on a debit.
 */
type PaymentProblem =
  | { ok: true; changed: boolean }
  | { ok: false; reason: "unknown_recharge" | "already_succeeded" };

async function turningOffAutoRecharge(
  env: Bindings,
  db: Db,
  job: RechargeJob,
  code: string,
  record: (ledger: ReturnType<typeof ledgerFor>) => Promise<PaymentProblem>,
): Promise<PaymentProblem> {
  const ledger = ledgerFor(env, job.account_id);
  const before = await ledger.autoRecharge();
  const result = await record(ledger);
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
