import { transactions } from "../db/schema";
import type { Db } from "../env";
import type { RechargeJob } from "./messages";

/**
 * The D1 row of a recharge, created pending before the job is queued. Keyed by the recharge
 * id, so every writer (ledger, consumer, dead-letter consumer) can call this and one row results.
 * It is also what the reconciler scans: a recharge is never invisible to operators.
 */
export async function recordPendingRecharge(
  db: Db,
  job: RechargeJob,
  options: { needsAttention?: boolean } = {},
): Promise<void> {
  const insert = db.insert(transactions).values({
    id: job.recharge_id,
    accountId: job.account_id,
    type: job.kind,
    status: "pending",
    credits: job.credits,
    amountCents: job.amount_cents,
    currency: job.currency,
    package: job.package,
    createdAt: job.created_at,
    needsAttention: options.needsAttention ?? false,
  });
  if (options.needsAttention) {
    await insert.onConflictDoUpdate({
      target: transactions.id,
      set: { needsAttention: true, updatedAt: new Date().toISOString() },
    });
  } else {
    await insert.onConflictDoNothing({ target: transactions.id });
  }
}
