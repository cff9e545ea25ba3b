import { transactions } from "../db/schema";
import { dbFor } from "../db/shared";

/** Adds a cycle's monthly grant to the customer-visible history; safe to repeat (same id). */
export async function recordMonthlyGrant(
  d1: D1Database,
  grant: { id: string; accountId: string; credits: number; at: number },
): Promise<void> {
  await dbFor(d1)
    .insert(transactions)
    .values({
      id: grant.id,
      accountId: grant.accountId,
      type: "monthly_grant",
      status: "succeeded",
      credits: grant.credits,
      createdAt: new Date(grant.at).toISOString(),
    })
    .onConflictDoNothing({ target: transactions.id });
}
