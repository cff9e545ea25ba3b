/**
 * The operators' account search: an exact account id or Stripe customer id, and accounts
 * whose email starts with the query (case-insensitive), paged by (lower(email), id) through
 * `accounts_email_lower_idx`: each page is one index range, whatever the number of accounts.
 */
import { eq, inArray, or, sql } from "drizzle-orm";
import type { AccountRow } from "./accounts";
import type { Db } from "./client";
import { accounts, members } from "./schema";

/** Past every character: the upper end of a prefix's range. */
const LAST_CHAR = "\u{10FFFF}";

export interface SearchAfter {
  /** The last row's email, lower case. */
  email: string;
  id: string;
}

export interface SearchPage {
  rows: AccountRow[];
  /** Where the next page starts; null on the last. */
  next: SearchAfter | null;
}

/** Accounts whose id or Stripe customer id is exactly `query` (at most one of each). */
export function exactMatches(db: Db, query: string): Promise<AccountRow[]> {
  return db
    .select()
    .from(accounts)
    .where(or(eq(accounts.id, query), eq(accounts.stripeCustomerId, query)))
    .limit(2)
    .all();
}

/**
 * Accounts a person with this mailbox (`mailboxKey`) belongs to, active or invited, through
 * `members_email_key_idx`: a customer who writes in from their own address, not the account's.
 */
export async function memberAccounts(db: Db, emailKey: string): Promise<AccountRow[]> {
  const ids = await db
    .select({ accountId: members.accountId })
    .from(members)
    .where(eq(members.emailKey, emailKey))
    .limit(50)
    .all();
  if (ids.length === 0) return [];
  return db
    .select()
    .from(accounts)
    .where(
      inArray(
        accounts.id,
        ids.map((r) => r.accountId),
      ),
    )
    .all();
}

/** One page of the accounts whose email starts with `prefix` (empty: every account). */
export async function emailPrefixPage(
  db: Db,
  prefix: string,
  after: SearchAfter | null,
  limit: number,
): Promise<SearchPage> {
  const p = prefix.toLowerCase();
  const lower = sql`lower(${accounts.email})`;
  const rows = await db
    .select()
    .from(accounts)
    .where(
      sql`${lower} >= ${p} AND ${lower} < ${p + LAST_CHAR}${
        after ? sql` AND (${lower}, ${accounts.id}) > (${after.email}, ${after.id})` : sql``
      }`,
    )
    .orderBy(lower, accounts.id)
    .limit(limit + 1)
    .all();
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    rows: page,
    next: rows.length > limit && last ? { email: last.email.toLowerCase(), id: last.id } : null,
  };
}
