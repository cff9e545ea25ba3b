import { stripeConfigured, stripeFor } from "../billing/stripe-client";
import { dbFor } from "../db/client";
import { emailsToRetry } from "../db/emails";
import {
  chargeOf,
  deletePendingRefund,
  listPendingRefunds,
  refundAttemptFailed,
} from "../db/pending-refunds";
import {
  stalePendingPurchases,
  succeededPurchasesSince,
  type TransactionRow,
} from "../db/transactions";
import { sendEmailOnce } from "../email/mailer";
import type { Bindings } from "../env";
import { ledgerFor } from "../ledger/client";
import { processRecharge } from "./consumer";
import { jobFromTransaction } from "./messages";
import { findPaymentIntent, outcomeOfIntent } from "./payments";

/**
 * A recharge still pending after this long is looked at; younger ones are the queue's job.
 * With the reconciler's cron every minute, a charge whose outcome is unknown (the worker died
 * mid-charge) is settled within about a minute and a half. Looking early is safe: every step
 * is idempotent by the recharge id, so at worst it finishes what the queue would have.
 */
export const STALE_AFTER_MS = 45_000;
/** Succeeded purchases this recent are re-checked against the ledger's grants. */
const RECENT_MS = 24 * 60 * 60_000;
const BATCH = 100;

export interface ReconcileReport {
  checked: number;
  /** Paid in Stripe but not finished here: now recorded and credited. */
  credited: string[];
  /** Declined in Stripe but still pending here: now recorded as failed. */
  failed: string[];
  /** Never reached Stripe: carried on through the same pipeline. */
  redriven: string[];
  /** Succeeded in D1 but missing from the ledger: credited now. */
  grantsRepaired: string[];
  /** Could not be settled automatically: for an operator. */
  attention: Array<{ id: string; reason: string }>;
  emailsRetried: number;
  /** Refunds of failed upstream calls owed since they could not reach the ledger: applied now. */
  refundsApplied: string[];
  /** Refunds still owed after this run (the ledger is still unreachable). */
  refundsOutstanding: number;
}

type Row = TransactionRow;

/**
 * Compares D1 purchases, the ledgers' grants and Stripe's PaymentIntents for recent recharges,
 * repairs what is safe to repair and reports the rest. Safe because every repair goes through
 * the same idempotent steps as the consumer: the recharge id keys the PaymentIntent, the D1 row
 * and the ledger grant, so nothing here can charge or credit twice.
 */
export async function reconcile(
  env: Bindings,
  options: { now?: number } = {},
): Promise<ReconcileReport> {
  const now = options.now ?? Date.now();
  const db = dbFor(env.DB);
  const report: ReconcileReport = {
    checked: 0,
    credited: [],
    failed: [],
    redriven: [],
    grantsRepaired: [],
    attention: [],
    emailsRetried: 0,
    refundsApplied: [],
    refundsOutstanding: 0,
  };
  const staleBefore = new Date(now - STALE_AFTER_MS).toISOString();
  const recentAfter = new Date(now - RECENT_MS).toISOString();
  const pending = await stalePendingPurchases(db, staleBefore, BATCH);
  for (const row of pending) {
    report.checked++;
    try {
      await settlePending(env, row, report);
    } catch (err) {
      report.attention.push({ id: row.id, reason: String(err).slice(0, 200) });
    }
  }

  const succeeded = await succeededPurchasesSince(db, recentAfter, BATCH * 10);
  for (const row of succeeded) {
    report.checked++;
    const grant = await ledgerFor(env, row.accountId).grantPurchased(row.id, row.credits);
    if (!grant.ok)
      report.attention.push({ id: row.id, reason: `ledger refused the grant: ${grant.reason}` });
    else if (grant.granted) report.grantsRepaired.push(row.id);
  }

  for (const owed of await listPendingRefunds(db, BATCH)) {
    try {
      // Idempotent by the debit: a refund the queue applied meanwhile is not applied again.
      await ledgerFor(env, owed.accountId).refund(owed.debitRef, chargeOf(owed));
      await deletePendingRefund(db, owed.debitRef);
      report.refundsApplied.push(owed.debitRef);
    } catch (err) {
      await refundAttemptFailed(db, owed.debitRef, String(err));
      report.refundsOutstanding++;
    }
  }

  for (const e of await emailsToRetry(db, BATCH, now)) {
    const result = await sendEmailOnce(env, db, {
      ref: e.ref,
      accountId: e.accountId,
      kind: e.kind,
      to: e.toAddress,
      subject: e.subject,
      text: e.textBody,
    });
    if (result === "sent") report.emailsRetried++;
  }
  return report;
}

async function settlePending(env: Bindings, row: Row, report: ReconcileReport): Promise<void> {
  const intent = stripeConfigured(env) ? await findPaymentIntent(stripeFor(env), row.id) : null;
  if (!intent) {
    // Nothing reached Stripe under this recharge id: carrying it on can charge at most once.
    const result = await processRecharge(jobFromTransaction(row), env);
    report.redriven.push(row.id);
    if (result === "failed") report.failed.push(row.id);
    return;
  }
  const settled = outcomeOfIntent(intent);
  if (settled) {
    // Stripe has the answer: record it and finish through the consumer's idempotent steps.
    const result = await processRecharge(jobFromTransaction(row), env, { settled });
    (result === "succeeded" ? report.credited : report.failed).push(row.id);
    return;
  }
  report.attention.push({ id: row.id, reason: `payment intent ${intent.id} is ${intent.status}` });
}
