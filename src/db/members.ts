/**
 * The `members` table: the people of each account and their roles. Every query of an account's
 * members is scoped by its account id. The two rules that must hold under concurrent requests
 * (an account keeps an active owner; one row per person per account) are each one statement:
 * the guarded UPDATE/DELETE below and the unique index.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import { mailboxKey } from "../platform/email-address";
import type { Db } from "./client";
import { accounts, members, type roles } from "./schema";

export type Role = (typeof roles)[number];

export type MemberRow = typeof members.$inferSelect;

export interface ListedMember {
  id: string;
  email: string;
  role: Role;
  status: "active" | "invited";
  created_at: string;
  last_sign_in_at: string | null;
}

const listed = {
  id: members.id,
  email: members.email,
  role: members.role,
  status: members.status,
  created_at: members.createdAt,
  last_sign_in_at: members.lastSignInAt,
};

/** The insert, unawaited, so account creation can batch it with the account's other rows. */
export function insertMember(
  db: Db,
  values: {
    id: string;
    accountId: string;
    email: string;
    role: Role;
    status?: "active" | "invited";
  },
) {
  return db.insert(members).values({ ...values, emailKey: mailboxKey(values.email) });
}

/** An invitation's row; false when the person is already a member (or invited) there. */
export async function insertInvited(
  db: Db,
  values: { id: string; accountId: string; email: string; role: Role },
): Promise<boolean> {
  const rows = await insertMember(db, { ...values, status: "invited" })
    .onConflictDoNothing()
    .returning({ id: members.id })
    .all();
  return rows.length === 1;
}

export function listMembers(db: Db, accountId: string): Promise<ListedMember[]> {
  return db
    .select(listed)
    .from(members)
    .where(eq(members.accountId, accountId))
    .orderBy(asc(members.createdAt), asc(members.id))
    .all();
}

export function getMember(db: Db, accountId: string, id: string): Promise<MemberRow | undefined> {
  return db
    .select()
    .from(members)
    .where(and(eq(members.accountId, accountId), eq(members.id, id)))
    .get();
}

/** Whether this mailbox is an active member of any account (sign-in and sign-up ask). */
export async function isActiveMemberAnywhere(db: Db, emailKey: string): Promise<boolean> {
  const row = await db
    .select({ id: members.id })
    .from(members)
    .where(and(eq(members.emailKey, emailKey), eq(members.status, "active")))
    .limit(1)
    .get();
  return row !== undefined;
}

export interface Membership {
  memberId: string;
  accountId: string;
  /** The member's own address (as invited or signed up). */
  email: string;
  /** The account's own email: how a person in several accounts tells them apart. */
  accountEmail: string;
  role: Role;
  sessionEpoch: number;
}

/** The accounts this mailbox may sign in to, oldest membership first. */
export function membershipsOf(db: Db, emailKey: string): Promise<Membership[]> {
  return db
    .select({
      memberId: members.id,
      accountId: members.accountId,
      email: members.email,
      accountEmail: accounts.email,
      role: members.role,
      sessionEpoch: members.sessionEpoch,
    })
    .from(members)
    .innerJoin(accounts, eq(accounts.id, members.accountId))
    .where(and(eq(members.emailKey, emailKey), eq(members.status, "active")))
    .orderBy(asc(members.createdAt), asc(members.id))
    .all();
}

/**
 * The active member a session names, with its epoch, or undefined once the member was removed
 * or the session's account is not theirs. Read on every session request, never cached.
 */
export function activeMember(
  db: Db,
  accountId: string,
  memberId: string,
): Promise<Pick<MemberRow, "id" | "email" | "emailKey" | "role" | "sessionEpoch"> | undefined> {
  return db
    .select({
      id: members.id,
      email: members.email,
      emailKey: members.emailKey,
      role: members.role,
      sessionEpoch: members.sessionEpoch,
    })
    .from(members)
    .where(
      and(eq(members.id, memberId), eq(members.accountId, accountId), eq(members.status, "active")),
    )
    .get();
}

/**
 * The active member an operator's sign-in link goes to: the one with this mailbox, or (no
 * mailbox given) the account's first owner, its oldest active owner.
 */
export function memberToSignIn(
  db: Db,
  accountId: string,
  emailKey: string | null,
): Promise<Pick<MemberRow, "id" | "email"> | undefined> {
  return db
    .select({ id: members.id, email: members.email })
    .from(members)
    .where(
      and(
        eq(members.accountId, accountId),
        eq(members.status, "active"),
        emailKey === null ? eq(members.role, "owner") : eq(members.emailKey, emailKey),
      ),
    )
    .orderBy(asc(members.createdAt), asc(members.id))
    .limit(1)
    .get();
}

export async function markSignedIn(db: Db, memberId: string, now: number): Promise<void> {
  await db
    .update(members)
    .set({ lastSignInAt: new Date(now).toISOString() })
    .where(eq(members.id, memberId));
}

/** Accepts an invitation: the invited row becomes active. False when it is gone or active. */
export async function activateInvited(
  db: Db,
  accountId: string,
  memberId: string,
): Promise<boolean> {
  const rows = await db
    .update(members)
    .set({ status: "active" })
    .where(
      and(
        eq(members.id, memberId),
        eq(members.accountId, accountId),
        eq(members.status, "invited"),
      ),
    )
    .returning({ id: members.id })
    .all();
  return rows.length === 1;
}

/**
 * "Sign out everywhere": raises the epoch of every membership of the person (their mailbox),
 * so each session cookie signed with an older epoch is refused at its next request.
 */
export async function endSessionsOf(db: Db, emailKey: string): Promise<void> {
  await db
    .update(members)
    .set({ sessionEpoch: sql`${members.sessionEpoch} + 1` })
    .where(eq(members.emailKey, emailKey));
}

/**
 * The account's other active owners must exist for this row to stop being one: the condition
 * the guarded statements below share, so "the last owner stays" is decided by SQLite, once,
 * whatever else runs at the same moment.
 */
const keepsAnOwner = (accountId: string) => sql`(
  ${members.role} != 'owner' OR ${members.status} != 'active'
  OR (SELECT count(*) FROM members
        WHERE account_id = ${accountId} AND role = 'owner' AND status = 'active') > 1)`;

export type GuardedResult = "done" | "not_found" | "last_owner";

async function outcome(
  db: Db,
  accountId: string,
  memberId: string,
  changed: number,
): Promise<GuardedResult> {
  if (changed === 1) return "done";
  return (await getMember(db, accountId, memberId)) ? "last_owner" : "not_found";
}

/** Changes a member's role in one guarded UPDATE: the last active owner is never demoted. */
export async function changeRoleGuarded(
  db: Db,
  accountId: string,
  memberId: string,
  role: Role,
): Promise<GuardedResult> {
  const rows = await db
    .update(members)
    .set({ role })
    .where(
      and(
        eq(members.id, memberId),
        eq(members.accountId, accountId),
        role === "owner" ? undefined : keepsAnOwner(accountId),
      ),
    )
    .returning({ id: members.id })
    .all();
  return outcome(db, accountId, memberId, rows.length);
}

/** Removes a member in one guarded DELETE: the last active owner is never removed. */
export async function removeMemberGuarded(
  db: Db,
  accountId: string,
  memberId: string,
): Promise<{ result: GuardedResult; removed?: MemberRow }> {
  const rows = await db
    .delete(members)
    .where(and(eq(members.id, memberId), eq(members.accountId, accountId), keepsAnOwner(accountId)))
    .returning()
    .all();
  const removed = rows[0];
  if (removed) return { result: "done", removed };
  return { result: await outcome(db, accountId, memberId, 0) };
}
