/**
 * The D1 figures of the operators' overview, each one query bounded by what it counts, never
 * by traffic (requests are not rows here): accounts (one row each), this month's purchases and
 * invoices by `transactions_status_created_idx`, open purchases by status, dead-lettered ones
 * by the partial `transactions_attention_idx`, pending refunds (rows only while owed).
 */
import { and, count, eq, gte, inArray, sql } from "drizzle-orm";
import type { Db } from "./client";
import { accounts, pendingRefunds, transactions } from "./schema";

export interface AccountCounts {
  total: number;
  /** On a paid plan that is not complimentary. */
  paying: number;
  suspended: number;
}

export async function accountCounts(db: Db): Promise<AccountCounts> {
  const row = await db
    .select({
      total: count(),
      paying: sql<number>`COALESCE(SUM(${accounts.plan} != 'free' AND ${accounts.complimentary} = 0), 0)`,
      suspended: sql<number>`COALESCE(SUM(${accounts.suspendedAt} IS NOT NULL), 0)`,
    })
    .from(accounts)
    .get();
  return { total: row?.total ?? 0, paying: row?.paying ?? 0, suspended: row?.suspended ?? 0 };
}

export interface Revenue {
  this_month: number;
  purchases: number;
  subscriptions: number;
}

/** Money taken since `monthStart` (ISO): paid purchases and paid subscription invoices. */
export async function revenueSince(db: Db, monthStart: string): Promise<Revenue> {
  const rows = await db
    .select({ type: transactions.type, cents: sql<number>`SUM(${transactions.amountCents})` })
    .from(transactions)
    .where(and(eq(transactions.status, "succeeded"), gte(transactions.createdAt, monthStart)))
    .groupBy(transactions.type)
    .all();
  const of = (types: string[]) =>
    rows.filter((r) => types.includes(r.type)).reduce((sum, r) => sum + (r.cents ?? 0), 0);
  const purchases = of(["auto_recharge", "top_up"]);
  const subscriptions = of(["monthly_grant"]);
  return { this_month: purchases + subscriptions, purchases, subscriptions };
}

export interface RechargeCounts {
  pending: number;
  requires_action: number;
  failed_this_month: number;
  /** Dead-lettered purchases still open (pending or waiting for the customer). */
  needs_attention: number;
  /** Every purchase the dead-letter consumer marked, settled since or not. */
  dead_letters: number;
}

const PURCHASES = ["auto_recharge", "top_up"] as const;

export async function rechargeCounts(db: Db, monthStart: string): Promise<RechargeCounts> {
  const byStatus = await db
    .select({ status: transactions.status, n: count() })
    .from(transactions)
    .where(
      and(
        inArray(transactions.status, ["pending", "requires_action"]),
        inArray(transactions.type, [...PURCHASES]),
      ),
    )
    .groupBy(transactions.status)
    .all();
  const failed = await db
    .select({ n: count() })
    .from(transactions)
    .where(
      and(
        eq(transactions.status, "failed"),
        gte(transactions.createdAt, monthStart),
        inArray(transactions.type, [...PURCHASES]),
      ),
    )
    .get();
  const attention = await db
    .select({
      open: sql<number>`COALESCE(SUM(${transactions.status} IN ('pending', 'requires_action')), 0)`,
      all: count(),
    })
    .from(transactions)
    // Literal, not a bound parameter, so the planner can use the partial index.
    .where(sql`${transactions.needsAttention} = 1`)
    .get();
  const n = (status: string) => byStatus.find((r) => r.status === status)?.n ?? 0;
  return {
    pending: n("pending"),
    requires_action: n("requires_action"),
    failed_this_month: failed?.n ?? 0,
    needs_attention: attention?.open ?? 0,
    dead_letters: attention?.all ?? 0,
  };
}

export async function pendingRefundCount(db: Db): Promise<number> {
  const row = await db.select({ n: count() }).from(pendingRefunds).get();
  return row?.n ?? 0;
}
