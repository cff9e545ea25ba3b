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
import { type OwedDebit, recordPendingRefund } from "../db/pending-refunds";
import { ledgerFor } from "../ledger/client";
import type { RefundResult } from "../ledger/domain/types";
import type { Bindings } from "../platform/env";

/** What the debit took and the minute it was counted in. */
export const DebitChargeSchema = z.object({
  minute: z.number().int().nonnegative(),
  monthly: z.number().int().nonnegative(),
  purchased: z.number().int().nonnegative(),
  /** Absent in messages from before per-key usage: those debits are in the "" rows. */
  key_id: z.string().optional(),
});

const RefundOf = { account_id: z.string().min(1), debit_ref: z.string().min(1) };

/** A refund names what the debit took; a message with neither field is malformed. */
export const RefundMessage = z.union([
  z.object({ ...RefundOf, charge: DebitChargeSchema }),
  /** A debit whose reply was lost: sent then (ms), what it took unknown; the ledger decides (rule 8). */
  z.object({ ...RefundOf, sent_at: z.number().int().nonnegative() }),
]);
export type RefundMessage = z.infer<typeof RefundMessage>;

/** The message's debit as the ledger's `refund` and D1's `pending_refunds` take it. */
function owedDebit(m: RefundMessage): OwedDebit {
  return "charge" in m ? { charge: m.charge } : { charge: null, sentAt: m.sent_at };
}

/** Owes the refund: queued, or recorded in D1 when the queue is unreachable too. */
export async function refundLater(
  env: Pick<Bindings, "REFUND_QUEUE">,
  db: Db,
  refund: OwedDebit & { accountId: string; debitRef: string; error: string },
): Promise<void> {
  console.warn("refund deferred", refund.debitRef, refund.error);
  const owed = { account_id: refund.accountId, debit_ref: refund.debitRef };
  const message: RefundMessage = refund.charge
    ? { ...owed, charge: refund.charge }
    : { ...owed, sent_at: refund.sentAt };
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
  /** Where the debit was sent (an escrow shard, docs/ledger-shards.md); default the ledger. */
  reverse?: (ref: string, sentAt: number) => Promise<RefundResult>,
): Promise<void> {
  const owed = { ...debit, charge: null } as const;
  try {
    const result = reverse
      ? await reverse(debit.debitRef, debit.sentAt)
      : await ledgerFor(env, debit.accountId).refund(debit.debitRef, null, debit.sentAt);
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
    const owed = owedDebit(refund.data);
    try {
      // `not_found`: no such debit in that ledger; nothing to give back, ever.
      const ledger = ledgerFor(env, refund.data.account_id);
      const apply = () => ledger.refund(refund.data.debit_ref, owed.charge, owed.sentAt);
      let result = await apply();
      // A debit an escrow shard took is in the ledger once its lease is back: recall, then
      // ask again (docs/ledger-shards.md). No lease open: nothing recalled, nothing asked.
      if (!result.ok && result.reason === "not_found" && owed.charge)
        if ((await ledger.leaseRecall()) > 0) result = await apply();
      if (!result.ok && result.reason === "outcome_unknown" && owed.sentAt !== undefined) {
        // Retrying cannot tell more: the operator decides (the reconciler reports it).
        await recordPendingRefund(dbFor(env.DB), {
          accountId: refund.data.account_id,
          debitRef: refund.data.debit_ref,
          charge: null,
          sentAt: owed.sentAt,
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
      ...owedDebit(refund.data),
      accountId: refund.data.account_id,
      debitRef: refund.data.debit_ref,
      error: "refund queue retries exhausted",
    });
    message.ack();
  }
}
