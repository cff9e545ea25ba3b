/** The `emails` table: every email we send, kept so support and local users can see it. */
import { and, desc, eq, inArray, lt, notLike, or } from "drizzle-orm";
import type { Db } from "./client";
import { emails } from "./schema";

export type EmailRow = typeof emails.$inferSelect;

/** What a stored email holds in place of a secret it carried (a sign-up link's token). */
export const REDACTED = "[redacted]";

/** Creates the row for `ref` once; later calls find the first one. */
export async function ensureEmail(
  db: Db,
  email: {
    id: string;
    accountId: string;
    ref: string;
    kind: string;
    to: string;
    subject: string;
    text: string;
  },
): Promise<EmailRow> {
  await db
    .insert(emails)
    .values({
      id: email.id,
      accountId: email.accountId,
      ref: email.ref,
      kind: email.kind,
      toAddress: email.to,
      subject: email.subject,
      textBody: email.text,
    })
    .onConflictDoNothing({ target: emails.ref });
  const row = await db.select().from(emails).where(eq(emails.ref, email.ref)).get();
  if (!row) throw new Error(`email row ${email.ref} vanished`);
  return row;
}

/** A claim older than this is taken to be a sender that died: another may send. */
export const EMAIL_CLAIM_MS = 5 * 60_000;

/**
 * Claims the email for one sender: only the caller that moves it to `sending` sends it, so
 * racing deliveries of the same event cannot both send. A stale claim can be taken over.
 */
export async function claimEmail(db: Db, id: string, now = Date.now()): Promise<boolean> {
  const stale = new Date(now - EMAIL_CLAIM_MS).toISOString();
  const claimed = await db
    .update(emails)
    .set({ status: "sending", claimedAt: new Date(now).toISOString() })
    .where(
      and(
        eq(emails.id, id),
        or(
          inArray(emails.status, ["pending", "failed"]),
          and(eq(emails.status, "sending"), lt(emails.claimedAt, stale)),
        ),
      ),
    )
    .returning({ id: emails.id })
    .all();
  return claimed.length === 1;
}

export async function markEmailSent(db: Db, id: string): Promise<void> {
  await db
    .update(emails)
    .set({ status: "sent", sentAt: new Date().toISOString(), error: null })
    .where(eq(emails.id, id));
}

export async function markEmailFailed(db: Db, id: string, error: string): Promise<void> {
  await db
    .update(emails)
    .set({ status: "failed", error: error.slice(0, 500) })
    .where(eq(emails.id, id));
}

/**
 * Emails to try again: failed ones, and claims whose sender died. Not those stored redacted:
 * their row no longer holds what was to be sent.
 */
export function emailsToRetry(db: Db, limit: number, now = Date.now()): Promise<EmailRow[]> {
  const stale = new Date(now - EMAIL_CLAIM_MS).toISOString();
  return db
    .select()
    .from(emails)
    .where(
      and(
        or(
          eq(emails.status, "failed"),
          and(eq(emails.status, "sending"), lt(emails.claimedAt, stale)),
        ),
        notLike(emails.textBody, `%${REDACTED}%`),
      ),
    )
    .limit(limit)
    .all();
}

/**
 * An account's emails, newest first, as the operator routes list them; `to` narrows them to
 * one address (the sign-up emails, kept under one pseudo-account, are listed by address).
 */
export function listEmails(db: Db, accountId: string, limit: number, to: string | null = null) {
  return db
    .select({
      id: emails.id,
      kind: emails.kind,
      to: emails.toAddress,
      subject: emails.subject,
      text: emails.textBody,
      status: emails.status,
      error: emails.error,
      created_at: emails.createdAt,
      sent_at: emails.sentAt,
    })
    .from(emails)
    .where(
      to === null
        ? eq(emails.accountId, accountId)
        : and(eq(emails.accountId, accountId), eq(emails.toAddress, to)),
    )
    .orderBy(desc(emails.createdAt))
    .limit(limit)
    .all();
}

/**
 * Deletes up to `max` of an account's emails recorded before `before` (unix ms); how many.
 * Keeps the sign-up emails, which are of no use once their link has expired, bounded.
 */
export async function purgeEmailsBefore(
  db: Db,
  accountId: string,
  before: number,
  max: number,
): Promise<number> {
  const old = db
    .select({ id: emails.id })
    .from(emails)
    .where(
      and(eq(emails.accountId, accountId), lt(emails.createdAt, new Date(before).toISOString())),
    )
    .limit(max);
  const deleted = await db
    .delete(emails)
    .where(inArray(emails.id, old))
    .returning({ id: emails.id })
    .all();
  return deleted.length;
}
