/**
 * The `passkeys` and `passkey_challenges` tables. A challenge is used by one DELETE … RETURNING
 * guarded by its expiry, so two requests carrying the same challenge cannot both use it.
 */
import { and, asc, eq, gt, lte } from "drizzle-orm";
import type { Db } from "./client";
import { passkeyChallenges, passkeys } from "./schema";

export type PasskeyRow = typeof passkeys.$inferSelect;
export type ChallengePurpose = (typeof passkeyChallenges.$inferSelect)["purpose"];

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Stores a challenge's hash; deletes a few expired ones first, so the table (written by a
 * signed-out page view) holds only the last minutes' rows.
 */
export async function insertChallenge(
  db: Db,
  row: { challengeHash: string; purpose: ChallengePurpose; emailKey: string | null },
  now: number,
  ttlMs: number,
): Promise<void> {
  await db.batch([
    db.delete(passkeyChallenges).where(lte(passkeyChallenges.expiresAt, iso(now))),
    db.insert(passkeyChallenges).values({ ...row, expiresAt: iso(now + ttlMs) }),
  ]);
}

/** Uses the challenge, once: its row when it existed for `purpose` and had not expired. */
export async function consumeChallenge(
  db: Db,
  challengeHash: string,
  purpose: ChallengePurpose,
  now: number,
): Promise<{ emailKey: string | null } | null> {
  const rows = await db
    .delete(passkeyChallenges)
    .where(
      and(
        eq(passkeyChallenges.challengeHash, challengeHash),
        eq(passkeyChallenges.purpose, purpose),
        gt(passkeyChallenges.expiresAt, iso(now)),
      ),
    )
    .returning({ emailKey: passkeyChallenges.emailKey })
    .all();
  return rows[0] ?? null;
}

export async function insertPasskey(
  db: Db,
  row: { id: string; emailKey: string; publicKey: string; counter: number; transports: string[] },
): Promise<boolean> {
  const rows = await db
    .insert(passkeys)
    .values({ ...row, transports: JSON.stringify(row.transports) })
    .onConflictDoNothing()
    .returning({ id: passkeys.id })
    .all();
  return rows.length === 1;
}

export function getPasskey(db: Db, id: string): Promise<PasskeyRow | undefined> {
  return db.select().from(passkeys).where(eq(passkeys.id, id)).get();
}

export function passkeysOf(db: Db, emailKey: string): Promise<PasskeyRow[]> {
  return db
    .select()
    .from(passkeys)
    .where(eq(passkeys.emailKey, emailKey))
    .orderBy(asc(passkeys.createdAt), asc(passkeys.id))
    .all();
}

export async function markPasskeyUsed(
  db: Db,
  id: string,
  counter: number,
  now: number,
): Promise<void> {
  await db
    .update(passkeys)
    .set({ counter, lastUsedAt: iso(now) })
    .where(eq(passkeys.id, id));
}

/** Deletes the passkey if it is this person's; false when it is not (or is gone). */
export async function deletePasskeyOf(db: Db, id: string, emailKey: string): Promise<boolean> {
  const rows = await db
    .delete(passkeys)
    .where(and(eq(passkeys.id, id), eq(passkeys.emailKey, emailKey)))
    .returning({ id: passkeys.id })
    .all();
  return rows.length === 1;
}
