/**
 * The `audit_log` table: who changed what on an account (money rule 12). A row is one
 * `INSERT … SELECT … WHERE` statement, so a change made in D1 can carry its row in the same
 * batch, guarded by the same condition (`when`): the row exists exactly when the change does.
 */
import { and, desc, eq, is, lt, or, SQL, sql } from "drizzle-orm";
import type { Actor, ActorType } from "../platform/actor";
import { newId } from "../platform/crypto";
import type { Db } from "./client";
import { auditLog } from "./schema";

export interface AuditEntry {
  /**
   * What the entry is about when the same change may be recorded again (a replayed request, a
   * retried job): one row per `ref`, later inserts of it do nothing.
   */
  ref?: string;
  accountId: string | null;
  actor: Actor;
  action: string;
  /** An object, or a SQL JSON object read in the statement (e.g. the value a change replaces). */
  details?: Record<string, unknown> | SQL;
}

export interface AuditRow {
  id: string;
  accountId: string | null;
  at: string;
  actorType: ActorType;
  actorId: string;
  actorLabel: string;
  action: string;
  details: string;
  ref: string | null;
}

let sequence = 0;

/**
 * An id that sorts by time: the millisecond, then a counter of this isolate (entries of one
 * millisecond keep their order), then random characters (isolates never collide). Pages are
 * ordered by (at, id), so two changes made in one millisecond are still newest first.
 */
export function newAuditId(now: number): string {
  sequence = (sequence + 1) % 36 ** 4;
  return `aud_${now.toString(36).padStart(9, "0")}${sequence.toString(36).padStart(4, "0")}${newId("").slice(1, 13)}`;
}

/**
 * The insert, unawaited, so a D1 change can batch it. A key's label is read from its row
 * (prefix…last4) in the same statement, so callers need only the key id. `when` (default:
 * always) is evaluated in the statement: placed after a guarded change in a batch, it makes
 * the row depend on that change having happened.
 */
export function auditInsert(db: Db, entry: AuditEntry, when: SQL = sql`1`) {
  const { actor } = entry;
  const label =
    actor.type === "api_key"
      ? sql`coalesce((SELECT prefix || '…' || last4 FROM api_keys WHERE id = ${actor.id}), ${actor.label})`
      : sql`${actor.label}`;
  const details = is(entry.details, SQL) ? entry.details : JSON.stringify(entry.details ?? {});
  const now = Date.now();
  // The builder, not `db.run`: drizzle's D1 batch cannot take a raw statement with parameters.
  // The selected values follow the table's column order (drizzle names every column).
  return db
    .insert(auditLog)
    .select(
      sql`SELECT ${newAuditId(now)}, ${entry.accountId}, ${new Date(now).toISOString()},
        ${actor.type}, ${actor.id}, ${label}, ${entry.action}, ${details}, ${entry.ref ?? null}
        WHERE ${when}`,
    )
    .onConflictDoNothing();
}

export type AuditScope = { accountId: string } | { actorType: ActorType };

/** Up to `limit` rows of an account (or of one kind of actor), newest first, after `after`. */
export function listAuditPage(
  db: Db,
  scope: AuditScope,
  limit: number,
  after?: { createdAt: string; id: string },
): Promise<AuditRow[]> {
  const whose =
    "accountId" in scope
      ? eq(auditLog.accountId, scope.accountId)
      : eq(auditLog.actorType, scope.actorType);
  const older = after
    ? or(
        lt(auditLog.at, after.createdAt),
        and(eq(auditLog.at, after.createdAt), lt(auditLog.id, after.id)),
      )
    : undefined;
  return db
    .select()
    .from(auditLog)
    .where(and(whose, older))
    .orderBy(desc(auditLog.at), desc(auditLog.id))
    .limit(limit)
    .all();
}
