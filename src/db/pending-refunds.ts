/** The `pending_refunds` table: refunds still owed to an account's ledger (money rule 8). */
import { eq, sql } from "drizzle-orm";
import type { DebitCharge } from "../ledger/domain/types";
import type { Db } from "./client";
import { pendingRefunds } from "./schema";

export type PendingRefundRow = typeof pendingRefunds.$inferSelect;

/** Safe to repeat: one row per debit. */
export async function recordPendingRefund(
  db: Db,
  refund: {
    debitRef: string;
    accountId: string;
    charge: DebitCharge | null;
    /** A debit whose reply was lost: when it was sent (see `pendingRefunds.sentAt`). */
    sentAt?: number;
    error: string;
  },
): Promise<void> {
  await db
    .insert(pendingRefunds)
    .values({
      debitRef: refund.debitRef,
      accountId: refund.accountId,
      charge: refund.charge ? JSON.stringify(refund.charge) : null,
      sentAt: refund.sentAt ?? null,
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

/** The debit's charge a row carries (null for rows from before v4, or an unreadable one). */
export function chargeOf(row: PendingRefundRow): DebitCharge | null {
  if (!row.charge) return null;
  try {
    const c = JSON.parse(row.charge) as Partial<DebitCharge>;
    return Number.isSafeInteger(c.minute) &&
      Number.isSafeInteger(c.monthly) &&
      Number.isSafeInteger(c.purchased)
      ? {
          minute: c.minute as number,
          monthly: c.monthly as number,
          purchased: c.purchased as number,
        }
      : null;
  } catch {
    return null;
  }
}
