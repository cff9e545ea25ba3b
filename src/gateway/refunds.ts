/**
 * Refunds that could not reach the account's Durable Object when the upstream failed (money
 * rule 8). The ledger's refund is idempotent by its debit (`refund:<debit>`), so every path
 * below may deliver the same refund any number of times and it is applied once:
 * the refund queue first; if even the queue is unreachable, a D1 row; a message that runs
 * out of retries also lands in D1. The reconciler applies the D1 rows and reports them.
 */
import { z } from "zod";
import type { Db } from "../db/client";
import { dbFor } from "../db/client";
import { recordPendingRefund } from "../db/pending-refunds";
import { ledgerFor } from "../ledger/client";
import type { DebitCharge } from "../ledger/domain/types";
import type { Bindings } from "../platform/env";

/** What the debit took and the minute it was counted in; messages from before v4 have none. */
export const DebitChargeSchema = z.object({
  minute: z.number().int().nonnegative(),
  monthly: z.number().int().nonnegative(),
  purchased: z.number().int().nonnegative(),
});

export const RefundMessage = z.object({
  account_id: z.string().min(1),
  debit_ref: z.string().min(1),
  charge: DebitChargeSchema.optional(),
  /** No charge: a debit whose reply was lost, sent then (ms); the ledger decides (rule 8). */
  sent_at: z.number().int().nonnegative().optional(),
});
export type RefundMessage = z.infer<typeof RefundMessage>;

/** Owes the refund: queued, or recorded in D1 when the queue is unreachable too. */
export async function refundLater(
  env: Pick<Bindings, "REFUND_QUEUE">,
  db: Db,
  refund: {
    accountId: string;
    debitRef: string;
    charge: DebitCharge | null;
    sentAt?: number;
    error: string;
  },
): Promise<void> {
  console.warn("refund deferred", refund.debitRef, refund.error);
  const message: RefundMessage = {
    account_id: refund.accountId,
    debit_ref: refund.debitRef,
    ...(refund.charge ? { charge: refund.charge } : {}),
    ...(refund.sentAt !== undefined ? { sent_at: refund.sentAt } : {}),
  };
  try {
    await env.REFUND_QUEUE.send(message);
  } catch (err) {
    await recordPendingRefund(db, { ...refund, error: `queue: ${String(err)}` });
  }
}

/**
 * A debit call that failed without an answer (the object unreachable, not overloaded): it may
 * have committed, so it is reversed by its ref, which is a no-op if it never did. Asked at once
 * through a fresh stub (a stub whose object was reset stays broken); if the ledger is still
 * unreachable, owed like any refund. An outcome the ledger cannot tell (it restarted since the
 * debit was sent) waits in D1, reported by the reconciler, never refunded blindly.
 */
export async function reverseUnansweredDebit(
  env: Pick<Bindings, "ACCOUNT_LEDGER" | "REFUND_QUEUE">,
  db: Db,
  debit: { accountId: string; debitRef: string; sentAt: number; error: string },
): Promise<void> {
  const owed = { ...debit, charge: null };
  try {
    const result = await ledgerFor(env, debit.accountId).refund(debit.debitRef, null, debit.sentAt);
    if (!result.ok && result.reason === "outcome_unknown") {
      await recordPendingRefund(db, { ...owed, error: `outcome unknown: ${debit.error}` });
    }
  } catch (err) {
    await refundLater(env, db, { ...owed, error: `${debit.error}; then ${String(err)}` });
  }
}

/** The refund queue's consumer: applies each refund, retrying while the ledger is unreachable. */
export async function handleRefundBatch(batch: MessageBatch<unknown>, env: Bindings) {
  for (const message of batch.messages) {
    const refund = RefundMessage.safeParse(message.body);
    if (!refund.success) {
      console.error("malformed refund message", message.id, refund.error.message);
      message.ack();
      continue;
    }
    try {
      // `not_found`: no such debit in that ledger; nothing to give back, ever.
      const result = await ledgerFor(env, refund.data.account_id).refund(
        refund.data.debit_ref,
        refund.data.charge ?? null,
        refund.data.sent_at,
      );
      if (!result.ok && result.reason === "outcome_unknown") {
        // Retrying cannot tell more: the operator decides (the reconciler reports it).
        await recordPendingRefund(dbFor(env.DB), {
          accountId: refund.data.account_id,
          debitRef: refund.data.debit_ref,
          charge: null,
          sentAt: refund.data.sent_at,
          error: "outcome unknown: the ledger restarted since the debit was sent",
        });
      }
      message.ack();
    } catch (err) {
      console.warn("refund not applied yet; will retry", refund.data.debit_ref, String(err));
      message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
    }
  }
}

/** Out of retries: the refund is still owed, so it becomes a D1 row for the reconciler. */
export async function handleRefundDeadLetters(batch: MessageBatch<unknown>, env: Bindings) {
  const db = dbFor(env.DB);
  for (const message of batch.messages) {
    const refund = RefundMessage.safeParse(message.body);
    if (!refund.success) {
      message.ack();
      continue;
    }
    await recordPendingRefund(db, {
      accountId: refund.data.account_id,
      debitRef: refund.data.debit_ref,
      charge: refund.data.charge ?? null,
      sentAt: refund.data.sent_at,
      error: "refund queue retries exhausted",
    });
    message.ack();
  }
}
