/**
 * The `account_actions` table: a per-account, per-action hourly limit kept in D1, for the
 * account routes that call Stripe or send email. Why D1 and not the account's Durable Object:
 * these routes already talk to D1, the limit must hold across isolates and restarts (an
 * in-memory window forgets on eviction, which is fine for proxied traffic but would let a
 * burst of Checkout calls through), and the proxied hot path does not touch this table at all.
 */
import { and, asc, eq, gt, lte, sql } from "drizzle-orm";
import { newId } from "../platform/crypto";
import type { Db } from "./client";
import { accountActions } from "./schema";

export type ActionDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Records one `action` of the account if fewer than `limit` were recorded in the last
 * `windowMs`. The guarded INSERT is one statement, so concurrent requests cannot pass the
 * limit together; the account's rows of this action that left the window are deleted first,
 * so the table holds at most `limit` rows per account and action.
 */
export async function takeAction(
  db: Db,
  input: { accountId: string; action: string; limit: number; windowMs: number; now: number },
): Promise<ActionDecision> {
  const since = iso(input.now - input.windowMs);
  const mine = and(
    eq(accountActions.accountId, input.accountId),
    eq(accountActions.action, input.action),
  );
  await db.delete(accountActions).where(and(mine, lte(accountActions.createdAt, since)));
  const inserted = await db.run(sql`
      INSERT INTO account_actions (id, account_id, action, created_at)
      SELECT ${newId("act")}, ${input.accountId}, ${input.action}, ${iso(input.now)}
      WHERE (SELECT count(*) FROM account_actions
               WHERE account_id = ${input.accountId} AND action = ${input.action}
                 AND created_at > ${since}) < ${input.limit}`);
  if ((inserted.meta.changes ?? 0) > 0) return { ok: true };
  const oldest = await db
    .select({ createdAt: accountActions.createdAt })
    .from(accountActions)
    .where(and(mine, gt(accountActions.createdAt, since)))
    .orderBy(asc(accountActions.createdAt))
    .limit(1)
    .get();
  const clearsAt = oldest ? Date.parse(oldest.createdAt) + input.windowMs : input.now;
  return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((clearsAt - input.now) / 1000)) };
}
