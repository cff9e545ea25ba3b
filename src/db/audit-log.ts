/**
 * The `audit_log` table: who changed what on an account (money rule 12). Rows are inserted by
 * one raw statement so that a change made in D1 can carry its row in the same batch, guarded
 * by the same condition (`when`): the row exists exactly when the change does.
 */
import { and, desc, eq, lt, or, type SQL, sql } from "drizzle-orm";
import type { Actor, ActorType } from "../platform/actor";
import { newId } from "../platform/crypto";
import type { Db } from "./client";
import { auditLog } from "./schema";

export interface AuditEntry {
  /** A fixed id makes the insert idempotent (a retried webhook or replayed request adds none). */
  id?: string;
  accountId: string | null;
  actor: Actor;
  action: string;
  details?: Record<string, unknown>;
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
  return db.run(sql`
    INSERT INTO audit_log (id, account_id, actor_type, actor_id, actor_label, action, details)
    SELECT ${entry.id ?? newId("aud")}, ${entry.accountId}, ${actor.type}, ${actor.id}, ${label},
           ${entry.action}, ${JSON.stringify(entry.details ?? {})}
    WHERE ${when}
    ON CONFLICT (id) DO NOTHING`);
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
