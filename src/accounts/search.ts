/**
 * `GET /admin/accounts?query=&cursor=` and the console's search: an exact account id or
 * Stripe customer id first (first page only), then accounts by email prefix, paged.
 */

import { emailPrefixPage, exactMatches, type SearchAfter } from "../db/account-search";
import type { AccountRow } from "../db/accounts";
import type { Db } from "../db/client";

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
  const exact = q && !after ? await exactMatches(db, q) : [];
  // Member emails (wip/people's `members` table) join here: the accounts a member of that
  // email belongs to, listed after the exact matches like them, first page only.
  const page = await emailPrefixPage(db, q, after, limit);
  const seen = new Set(exact.map((r) => r.id));
  return { rows: [...exact, ...page.rows.filter((r) => !seen.has(r.id))], next: page.next };
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
