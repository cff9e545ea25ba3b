/**
 * The operators' money overview (`GET /admin/overview`, the console's first page). Every figure
 * is a D1 read bounded by what it counts, never by traffic (src/db/overview.ts); the credits
 * outstanding are the sum of the balances the ledgers project to D1 when an entry or a
 * checkpoint changes them (src/db/account-balances.ts). docs/operators.md says why.
 */
import { type OutstandingCredits, outstandingCredits } from "../db/account-balances";
import type { Db } from "../db/client";
import {
  type AccountCounts,
  accountCounts,
  pendingRefundCount,
  type Revenue,
  rechargeCounts,
  revenueSince,
} from "../db/overview";
import { type LastReconcile, lastReconcile } from "../db/reconcile-runs";

export interface Overview {
  accounts: AccountCounts;
  outstanding_credits: OutstandingCredits;
  revenue_cents: Revenue;
  recharges: {
    pending: number;
    requires_action: number;
    failed_this_month: number;
    needs_attention: number;
  };
  pending_refunds: number;
  dead_letters: number;
  last_reconcile: LastReconcile | null;
}

/** The first instant of `now`'s calendar month (UTC), ISO: "this month" everywhere here. */
export function monthStartIso(now: number): string {
  const d = new Date(now);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)).toISOString();
}

export async function overview(db: Db, now = Date.now()): Promise<Overview> {
  const month = monthStartIso(now);
  const [accounts, outstanding, revenue, recharges, refunds, reconcile] = await Promise.all([
    accountCounts(db),
    outstandingCredits(db),
    revenueSince(db, month),
    rechargeCounts(db, month),
    pendingRefundCount(db),
    lastReconcile(db),
  ]);
  const { dead_letters, ...open } = recharges;
  return {
    accounts,
    outstanding_credits: outstanding,
    revenue_cents: revenue,
    recharges: open,
    pending_refunds: refunds,
    dead_letters,
    last_reconcile: reconcile,
  };
}
