/**
 * The `signup_tokens` table: every read and write of it. A row is one emailed link (sign-up,
 * sign-in or invitation, its `purpose`); it holds the SHA-256 of the link's token (never the
 * token), and the rows of the last hour are the sign-up and sign-in rate limits' counters, so
 * no other per-request state exists.
 */
import { and, asc, eq, gt, inArray, isNull, lt, ne, type SQL, sql } from "drizzle-orm";
import type { Db } from "./client";
import { signupTokens } from "./schema";

export type SignupTokenRow = typeof signupTokens.$inferSelect;
export type LinkPurpose = SignupTokenRow["purpose"];

export interface SignupLimits {
  /** Requests per client address hash (IPv4 address, IPv6 /64) within the window. */
  perClient: number;
  /** Requests per network hash (IPv4 /24, IPv6 /48) within the window. */
  perNetwork: number;
  /** Requests per mailbox key within the window. */
  perEmail: number;
  /** Requests from everyone together within the window: the ceiling on sign-up emails. */
  global: number;
  windowMs: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Inserts the request's row only if neither limit is reached, in one statement: concurrent
 * requests cannot overshoot. False when a limit refused it (nothing was written).
 */
export async function insertWithinLimits(
  db: Db,
  row: {
    tokenHash: string;
    email: string;
    emailKey: string;
    clientHash: string;
    clientNetHash: string;
    now: number;
    expiresAt: number;
    /** Set for a request that sends no link: its row only counts for the limits. */
    usedAt: number | null;
    purpose: LinkPurpose;
  },
  limits: SignupLimits,
): Promise<boolean> {
  const since = iso(row.now - limits.windowMs);
  // Every count is an index range (client, network, mailbox, created_at); the global one reads
  // at most `global` index entries, which is the point of keeping it small. Invitations (an
  // owner's action, limited per account instead) count for none of these limits.
  const result = await db.run(sql`
    INSERT INTO signup_tokens (token_hash, email, email_key, client_hash, client_net_hash,
                               created_at, expires_at, used_at, purpose)
    SELECT ${row.tokenHash}, ${row.email}, ${row.emailKey}, ${row.clientHash}, ${row.clientNetHash},
           ${iso(row.now)}, ${iso(row.expiresAt)}, ${row.usedAt === null ? null : iso(row.usedAt)},
           ${row.purpose}
    WHERE (SELECT count(*) FROM signup_tokens
             WHERE client_hash = ${row.clientHash} AND created_at > ${since}) < ${limits.perClient}
      AND (SELECT count(*) FROM signup_tokens
             WHERE client_net_hash = ${row.clientNetHash} AND created_at > ${since}) < ${limits.perNetwork}
      AND (SELECT count(*) FROM signup_tokens
             WHERE email_key = ${row.emailKey} AND created_at > ${since}
               AND purpose != 'invite') < ${limits.perEmail}
      AND (SELECT count(*) FROM signup_tokens
             WHERE created_at > ${since} AND purpose != 'invite') < ${limits.global}`);
  return (result.meta.changes ?? 0) > 0;
}

/**
 * When the refused request could succeed: for each limit that is reached, the moment its oldest
 * row in the window leaves it (unix ms; null when no limit is reached any more), and whether
 * the global ceiling is one of them.
 */
export async function limitClearsAt(
  db: Db,
  key: { emailKey: string; clientHash: string; clientNetHash: string; now: number },
  limits: SignupLimits,
): Promise<{ clearsAt: number | null; ceiling: boolean }> {
  const since = iso(key.now - limits.windowMs);
  const window = async (filter: SQL | undefined, max: number) => {
    const rows = await db
      .select({ createdAt: signupTokens.createdAt })
      .from(signupTokens)
      .where(and(filter, gt(signupTokens.createdAt, since), ne(signupTokens.purpose, "invite")))
      .orderBy(asc(signupTokens.createdAt))
      .limit(max)
      .all();
    // Under the limit: nothing to wait for. At it: the count drops when the oldest row ages out
    // (rows over the limit cannot exist: inserts are conditional).
    if (rows.length < max) return null;
    const oldest = rows[0];
    return oldest ? Date.parse(oldest.createdAt) + limits.windowMs : null;
  };
  const waits = await Promise.all([
    window(eq(signupTokens.clientHash, key.clientHash), limits.perClient),
    window(eq(signupTokens.clientNetHash, key.clientNetHash), limits.perNetwork),
    window(eq(signupTokens.emailKey, key.emailKey), limits.perEmail),
    window(undefined, limits.global),
  ]);
  const reached = waits.filter((w): w is number => w !== null);
  return {
    clearsAt: reached.length === 0 ? null : Math.max(...reached),
    ceiling: waits[3] !== null,
  };
}

/**
 * An invitation's link: an owner's action, so not counted by the per-client limits (the
 * members route has its own hourly limit per account), and valid for days, not minutes.
 */
export async function insertInvitation(
  db: Db,
  row: {
    tokenHash: string;
    email: string;
    emailKey: string;
    accountId: string;
    memberId: string;
    now: number;
    expiresAt: number;
  },
): Promise<void> {
  await db.insert(signupTokens).values({
    tokenHash: row.tokenHash,
    email: row.email,
    emailKey: row.emailKey,
    clientHash: "",
    clientNetHash: "",
    createdAt: iso(row.now),
    expiresAt: iso(row.expiresAt),
    purpose: "invite",
    accountId: row.accountId,
    memberId: row.memberId,
  });
}

type UnlimitedRow = {
  tokenHash: string;
  email: string;
  emailKey: string;
  now: number;
  expiresAt: number;
};

/** A link row that no stranger asked for, so no client address and no per-client limit. */
async function insertUnlimited(db: Db, row: UnlimitedRow, purpose: LinkPurpose): Promise<void> {
  await db.insert(signupTokens).values({
    tokenHash: row.tokenHash,
    email: row.email,
    emailKey: row.emailKey,
    clientHash: "",
    clientNetHash: "",
    createdAt: iso(row.now),
    expiresAt: iso(row.expiresAt),
    usedAt: null,
    purpose,
  });
}

/**
 * A sign-in link an operator sends a member (an authenticated, audited action): not counted
 * by the limits on what strangers ask for, and no client address to count it by. It is still
 * an email to that mailbox, so it counts toward the mailbox's and the global limits.
 */
export function insertOperatorSignIn(db: Db, row: UnlimitedRow): Promise<void> {
  return insertUnlimited(db, row, "sign_in");
}

/**
 * The account choice after a passkey sign-in: the person proved who they are, so no limits and
 * no email; the row only lets the choice page's post use it once, within minutes.
 */
export function insertPasskeySignIn(db: Db, row: UnlimitedRow): Promise<void> {
  return insertUnlimited(db, row, "passkey_sign_in");
}

const usable = (tokenHash: string, purpose: LinkPurpose, now: number) =>
  and(
    eq(signupTokens.tokenHash, tokenHash),
    eq(signupTokens.purpose, purpose),
    isNull(signupTokens.usedAt),
    gt(signupTokens.expiresAt, iso(now)),
  );

/** The row of a link that can still be used, without using it (for the confirm page). */
export function usableToken(
  db: Db,
  tokenHash: string,
  now: number,
  purpose: LinkPurpose = "signup",
): Promise<SignupTokenRow | undefined> {
  return db
    .select()
    .from(signupTokens)
    .where(usable(tokenHash, purpose, now))
    .get();
}

/**
 * Uses the link, once: a guarded UPDATE … WHERE used_at IS NULL AND expires_at > now. A sign-up
 * or sign-in link also uses every other open link of the same purpose and mailbox (`+tag`
 * spellings included) in the same statement, so two links for one inbox can never make two
 * accounts, and an older sign-in link dies with the one used. An invitation uses only itself
 * (each names its own account). The row when this call used the link; null when it is unknown,
 * of another purpose, expired or already used (by this call's competitor, too).
 */
export async function consumeToken(
  db: Db,
  tokenHash: string,
  now: number,
  purpose: LinkPurpose = "signup",
): Promise<SignupTokenRow | null> {
  const open = db
    .select({ emailKey: signupTokens.emailKey })
    .from(signupTokens)
    .where(usable(tokenHash, purpose, now));
  const used = await db
    .update(signupTokens)
    .set({ usedAt: iso(now) })
    .where(
      purpose === "invite"
        ? usable(tokenHash, purpose, now)
        : and(
            inArray(signupTokens.emailKey, open),
            eq(signupTokens.purpose, purpose),
            isNull(signupTokens.usedAt),
          ),
    )
    .returning()
    .all();
  return used.find((r) => r.tokenHash === tokenHash) ?? null;
}

/** Gives a link back after the account could not be made, so the person can try it again. */
export async function releaseToken(db: Db, tokenHash: string): Promise<void> {
  await db.update(signupTokens).set({ usedAt: null }).where(eq(signupTokens.tokenHash, tokenHash));
}

/**
 * Deletes up to `max` rows that expired before `before` (unix ms): keeps the table bounded. By
 * expiry, not creation, so a week-long invitation outlives the day sign-up rows are kept.
 */
export async function purgeOlderThan(db: Db, before: number, max: number): Promise<void> {
  const old = db
    .select({ tokenHash: signupTokens.tokenHash })
    .from(signupTokens)
    .where(lt(signupTokens.expiresAt, iso(before)))
    .limit(max);
  await db.delete(signupTokens).where(inArray(signupTokens.tokenHash, old));
}
