import { EMAIL_RETENTION_MS, SIGNUP_EMAIL_ACCOUNT } from "../accounts/signup-config";
import { dbFor } from "../db/client";
import { emailsToRetry, purgeEmailsBefore } from "../db/emails";
import {
  deletePendingRefund,
  listPendingRefunds,
  owedDebitOf,
  refundAttemptFailed,
} from "../db/pending-refunds";
import { recordReconcile } from "../db/reconcile-runs";
import {
  purchasesAwaitingAction,
  stalePendingPurchases,
  succeededPurchasesSince,
  type TransactionRow,
} from "../db/transactions";
import { sendEmailOnce } from "../delivery/mailer";
import { ledgerFor } from "../ledger/client";
import type { Bindings } from "../platform/env";
import { stripeConfigured, stripeFor } from "../stripe/client";
import { processRecharge } from "./consumer";
import { jobFromTransaction } from "./messages";
import { findInvoice, outcomeOfInvoice, voidPurchaseInvoice } from "./payments";

/**
 * A recharge still pending after this long is looked at; younger ones are the queue's job.
 * With the reconciler's cron every minute, a charge whose outcome is unknown (the worker died
 * mid-charge) is settled within about a minute and a half. Looking early is safe: every step
 * is idempotent by the recharge id, so at worst it finishes what the queue would have.
 */
export const STALE_AFTER_MS = 45_000;
/**
 * A purchase waiting for the customer to authenticate is given this long, then its invoice is
 * voided and the purchase marked failed (nothing charged, nothing granted). Three days: the
 * customer is emailed the link at once and needs time to see it (a weekend), but an open
 * invoice must not linger: it shows in their invoice history as owed, stays payable (a payment
 * weeks later would surprise them), and it counts towards this month's purchases under the
 * spending limit until it is settled. Auto-recharge is off meanwhile (money rule 6).
 */
export const REQUIRES_ACTION_VOID_AFTER_MS = 3 * 24 * 60 * 60_000;
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
  /** Waited too long for the customer to authenticate: invoice voided, marked failed. */
  voided: string[];
  /** Succeeded in D1 but missing from the ledger: credited now. */
  grantsRepaired: string[];
  /** Could not be settled automatically: for an operator. */
  attention: Array<{ id: string; reason: string }>;
  emailsRetried: number;
  /** Sign-up emails deleted: older than their link's lifetime, they are of no use. */
  signupEmailsPurged: number;
  /** Refunds of failed upstream calls owed since they could not reach the ledger: applied now. */
  refundsApplied: string[];
  /** Refunds still owed after this run (the ledger is still unreachable). */
  refundsOutstanding: number;
}

type Row = TransactionRow;

/**
 * Compares D1 purchases, the ledgers' grants and Stripe's invoices for recent recharges,
 * repairs what is safe to repair and reports the rest. Safe because every repair goes through
 * the same idempotent steps as the consumer: the recharge id keys the invoice (metadata and
 * idempotency keys), the D1 row and the ledger grant, so nothing here can charge or credit twice.
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
    voided: [],
    grantsRepaired: [],
    attention: [],
    emailsRetried: 0,
    signupEmailsPurged: 0,
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

  const voidBefore = new Date(now - REQUIRES_ACTION_VOID_AFTER_MS).toISOString();
  for (const row of await purchasesAwaitingAction(db, BATCH)) {
    report.checked++;
    try {
      await settleAwaitingAction(env, row, voidBefore, report);
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
    const debit = owedDebitOf(owed);
    if (!debit) {
      // Nothing says what the debit took or when it was sent: kept for an operator, not applied.
      report.attention.push({
        id: owed.debitRef,
        reason: `pending refund of account ${owed.accountId} names neither the debit's charge nor when it was sent`,
      });
      report.refundsOutstanding++;
      continue;
    }
    try {
      // Idempotent by the debit: a refund the queue applied meanwhile is not applied again.
      const result = await ledgerFor(env, owed.accountId).refund(
        owed.debitRef,
        debit.charge,
        debit.sentAt,
      );
      if (!result.ok && result.reason === "outcome_unknown") {
        // Never refunded blindly (it may never have been charged), never dropped either.
        report.attention.push({
          id: owed.debitRef,
          reason: `debit of account ${owed.accountId} with a lost reply: the ledger cannot tell whether it committed`,
        });
        report.refundsOutstanding++;
        continue;
      }
      await deletePendingRefund(db, owed.debitRef);
      report.refundsApplied.push(owed.debitRef);
    } catch (err) {
      await refundAttemptFailed(db, owed.debitRef, String(err));
      report.refundsOutstanding++;
    }
  }

  // Before the retries: an expired link is not worth sending.
  report.signupEmailsPurged = await purgeEmailsBefore(
    db,
    SIGNUP_EMAIL_ACCOUNT,
    now - EMAIL_RETENTION_MS,
    BATCH * 10,
  );
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
  // For the operators' overview: when the reconciler last finished, and what it left to them.
  await recordReconcile(db, {
    finished_at: new Date(now).toISOString(),
    checked: report.checked,
    attention: report.attention.length,
  });
  return report;
}

/**
 * A pending purchase: Stripe's invoice under its recharge id decides. None, a draft or an open
 * one that was never paid: carried on through the consumer (its keys replay whatever already
 * happened, so at most one invoice and one charge). Paid or void: recorded as such.
 */
async function settlePending(env: Bindings, row: Row, report: ReconcileReport): Promise<void> {
  const invoice = stripeConfigured(env) ? await findInvoice(stripeFor(env), row.id) : null;
  const settled = invoice ? outcomeOfInvoice(invoice) : null;
  if (settled) {
    // Stripe has the answer: record it and finish through the consumer's idempotent steps.
    const result = await processRecharge(jobFromTransaction(row), env, { settled });
    (result === "succeeded" ? report.credited : report.failed).push(row.id);
    return;
  }
  if (invoice && invoice.status !== "draft" && invoice.status !== "open") {
    report.attention.push({ id: row.id, reason: `invoice ${invoice.id} is ${invoice.status}` });
    return;
  }
  const result = await processRecharge(jobFromTransaction(row), env);
  report.redriven.push(row.id);
  if (result === "failed") report.failed.push(row.id);
}

/**
 * A purchase waiting for the customer: paid meanwhile (a webhook we missed) → credited; still
 * open after REQUIRES_ACTION_VOID_AFTER_MS → voided and failed; otherwise left waiting.
 */
async function settleAwaitingAction(
  env: Bindings,
  row: Row,
  voidBefore: string,
  report: ReconcileReport,
): Promise<void> {
  if (!stripeConfigured(env)) return;
  const stripe = stripeFor(env);
  let invoice = await findInvoice(stripe, row.id);
  if (!invoice) {
    report.attention.push({ id: row.id, reason: "requires_action but no invoice in Stripe" });
    return;
  }
  if (invoice.status === "open" && row.createdAt < voidBefore) {
    invoice = await voidPurchaseInvoice(stripe, row.id, invoice);
  }
  const settled = outcomeOfInvoice(invoice);
  if (!settled) {
    if (invoice.status !== "open") {
      report.attention.push({ id: row.id, reason: `invoice ${invoice.id} is ${invoice.status}` });
    }
    return; // still waiting for the customer, and not for too long yet
  }
  const result = await processRecharge(jobFromTransaction(row), env, {
    settled:
      settled.status === "failed" && invoice.status === "void"
        ? {
            ...settled,
            code: "authentication_not_completed",
            message: "The payment was not confirmed in time; its invoice was voided.",
          }
        : settled,
  });
  if (result === "succeeded") report.credited.push(row.id);
  else if (result === "failed") {
    report.failed.push(row.id);
    if (invoice.status === "void") report.voided.push(row.id);
  }
}
