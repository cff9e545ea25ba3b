/**
 * `account_balances`: each account's balance as its ledger last projected it (never per
 * request; see src/ledger/store/projections.ts), summed for the operators' overview.
 */
import { sql } from "drizzle-orm";
import type { BalanceRow } from "../ledger/domain/types";
import type { Db } from "./client";
import { accountBalances } from "./schema";

/** Writes a projection unless D1 already holds a newer one (deliveries may land out of order). */
export async function recordBalance(db: Db, b: BalanceRow): Promise<void> {
  await db
    .insert(accountBalances)
    .values({
      accountId: b.account_id,
      monthly: b.monthly,
      purchased: b.purchased,
      purchasedValueCents: b.purchased_value_cents,
      version: b.version,
      updatedAt: b.at,
    })
    .onConflictDoUpdate({
      target: accountBalances.accountId,
      set: {
        monthly: sql`excluded.monthly`,
        purchased: sql`excluded.purchased`,
        purchasedValueCents: sql`excluded.purchased_value_cents`,
        version: sql`excluded.version`,
        updatedAt: sql`excluded.updated_at`,
      },
      setWhere: sql`excluded.version > ${accountBalances.version}`,
    });
}

/** A new account's row, unawaited for the creation's batch; a projection already there wins. */
export function initialBalanceInsert(
  db: Db,
  b: { accountId: string; monthly: number; purchased: number; at: string },
) {
  return db
    .insert(accountBalances)
    .values({ ...b, purchasedValueCents: 0, version: 0, updatedAt: b.at })
    .onConflictDoNothing({ target: accountBalances.accountId });
}

export interface OutstandingCredits {
  monthly: number;
  purchased: number;
  purchased_value_cents: number;
}

/** The credits every account holds, as last projected: one pass over one row per account. */
export async function outstandingCredits(db: Db): Promise<OutstandingCredits> {
  const row = await db
    .select({
      monthly: sql<number>`COALESCE(SUM(${accountBalances.monthly}), 0)`,
      purchased: sql<number>`COALESCE(SUM(${accountBalances.purchased}), 0)`,
      value: sql<number>`COALESCE(SUM(${accountBalances.purchasedValueCents}), 0)`,
    })
    .from(accountBalances)
    .get();
  return {
    monthly: row?.monthly ?? 0,
    purchased: row?.purchased ?? 0,
    purchased_value_cents: row?.value ?? 0,
  };
}
