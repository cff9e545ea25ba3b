/**
 * The audit log's recorder and reader (money rule 12). A change made in D1 batches its row
 * (`auditInsert` from ../db/audit-log, guarded like the change); a change the account's
 * Durable Object made is recorded here after it succeeded. Never called on the proxied path.
 */
import {
  type AuditEntry,
  type AuditRow,
  type AuditScope,
  auditInsert,
  listAuditPage,
} from "../db/audit-log";
import type { Db } from "../db/client";
import { type After, encodeCursor } from "../http/cursor";
import type { Actor } from "../platform/actor";

/**
 * Records one entry. `options.ref` (a recharge id, an adjustment's ref) names the change, so
 * the same change recorded twice (a replay, a retry after the insert failed) is one row.
 */
export async function recordAudit(
  db: Db,
  accountId: string | null,
  actor: Actor,
  action: string,
  details: Record<string, unknown> = {},
  options: { ref?: string } = {},
): Promise<void> {
  const entry: AuditEntry = { accountId, actor, action, details };
  if (options.ref !== undefined) entry.ref = `${action}:${options.ref}`;
  await auditInsert(db, entry);
}

/** An entry as the API shows it. */
export function auditJson(row: AuditRow) {
  return {
    id: row.id,
    at: row.at,
    actor: { type: row.actorType, id: row.actorId, label: row.actorLabel },
    action: row.action,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

export type AuditJson = ReturnType<typeof auditJson>;

/** One page of entries, newest first, with the opaque (at, id) cursor of the other lists. */
export async function listAudit(db: Db, scope: AuditScope, limit: number, after?: After) {
  const rows = await listAuditPage(db, scope, limit + 1, after);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: page,
    next_cursor: rows.length > limit && last ? encodeCursor(last.at, last.id) : null,
  };
}
