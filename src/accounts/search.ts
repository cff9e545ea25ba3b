/**
 * `GET /admin/accounts?query=&cursor=` and the console's search: an exact account id or
 * Stripe customer id first (first page only), then accounts by email prefix, paged.
 */

import {
  emailPrefixPage,
  exactMatches,
  memberAccounts,
  type SearchAfter,
} from "../db/account-search";
import type { AccountRow } from "../db/accounts";
import type { Db } from "../db/client";
import { mailboxKey } from "../platform/email-address";

export const SEARCH_PAGE_SIZE = 25;

export interface SearchResult {
  rows: AccountRow[];
  next: SearchAfter | null;
}

export async function searchAccounts(
  db: Db,
  query: string,
  after: SearchAfter | null,
  limit = SEARCH_PAGE_SIZE,
): Promise<SearchResult> {
  const q = query.trim();
  // Exact matches first (first page only): an id or Stripe customer id, then the accounts a
  // member with that address belongs to.
  const exact =
    q && !after
      ? [
          ...(await exactMatches(db, q)),
          ...(q.includes("@") ? await memberAccounts(db, mailboxKey(q)) : []),
        ]
      : [];
  const page = await emailPrefixPage(db, q, after, limit);
  const seen = new Set<string>();
  const rows = [...exact, ...page.rows].filter((r) => !seen.has(r.id) && seen.add(r.id));
  return { rows, next: page.next };
}

/** One search row as the API lists it. */
export function searchRowJson(a: AccountRow) {
  return {
    id: a.id,
    email: a.email,
    plan: a.plan,
    complimentary: a.complimentary,
    stripe_customer_id: a.stripeCustomerId,
    created_at: a.createdAt,
    suspension: a.suspendedAt ? { suspended_at: a.suspendedAt, reason: a.suspensionReason } : null,
  };
}
