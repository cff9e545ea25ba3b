/** The `pending_refunds` table: refunds still owed to an account's ledger (money rule 8). */
import { eq, sql } from "drizzle-orm";
import type { Db } from "./client";
import { pendingRefunds } from "./schema";

export type PendingRefundRow = typeof pendingRefunds.$inferSelect;

/** Safe to repeat: one row per debit. */
export async function recordPendingRefund(
  db: Db,
  refund: { debitRef: string; accountId: string; error: string },
): Promise<void> {
  await db
    .insert(pendingRefunds)
    .values({
      debitRef: refund.debitRef,
      accountId: refund.accountId,
      lastError: refund.error.slice(0, 500),
    })
    .onConflictDoNothing();
}

export function listPendingRefunds(db: Db, limit: number): Promise<PendingRefundRow[]> {
  return db.select().from(pendingRefunds).limit(limit).all();
}

export async function refundAttemptFailed(db: Db, debitRef: string, error: string) {
  await db
    .update(pendingRefunds)
    .set({ attempts: sql`${pendingRefunds.attempts} + 1`, lastError: error.slice(0, 500) })
    .where(eq(pendingRefunds.debitRef, debitRef));
}

export async function deletePendingRefund(db: Db, debitRef: string): Promise<void> {
  await db.delete(pendingRefunds).where(eq(pendingRefunds.debitRef, debitRef));
}
