/** The `pending_refunds` table: refunds still owed to an account's ledger (money rule 8). */
import { eq, sql } from "drizzle-orm";
import type { DebitCharge } from "../ledger/domain/types";
import type { Db } from "./client";
import { pendingRefunds } from "./schema";

export type PendingRefundRow = typeof pendingRefunds.$inferSelect;

/**
 * What names the debit a refund gives back: what it took (its charge), or, for a debit whose
 * reply was lost, when it was sent (the ledger then decides whether it committed; rule 8).
 */
export type OwedDebit =
  | { charge: DebitCharge; sentAt?: undefined }
  | { charge: null; sentAt: number };

/** Safe to repeat: one row per debit. */
export async function recordPendingRefund(
  db: Db,
  refund: OwedDebit & { debitRef: string; accountId: string; error: string },
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

/**
 * What a row owes: its charge, else its `sent_at`. Null for a row with neither (or an unreadable
 * charge): nothing says what to give back, so it is left for an operator, never applied.
 */
export function owedDebitOf(row: PendingRefundRow): OwedDebit | null {
  const charge = parseCharge(row.charge);
  if (charge) return { charge };
  return row.sentAt !== null ? { charge: null, sentAt: row.sentAt } : null;
}

function parseCharge(json: string | null): DebitCharge | null {
  if (!json) return null;
  try {
    const c = JSON.parse(json) as Partial<DebitCharge>;
    return Number.isSafeInteger(c.minute) &&
      Number.isSafeInteger(c.monthly) &&
      Number.isSafeInteger(c.purchased)
      ? {
          minute: c.minute as number,
          monthly: c.monthly as number,
          purchased: c.purchased as number,
          ...(typeof c.key_id === "string" ? { key_id: c.key_id } : {}),
        }
      : null;
  } catch {
    return null;
  }
}
