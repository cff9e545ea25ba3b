/**
 * Every operator action (the console's forms and the JSON routes alike) as an audit-log entry
 * (money rule 12) with the operator who did it and why: the one place both write it from.
 */
import type { Db } from "../db/client";
import type { Actor } from "../platform/actor";
import { recordAudit } from "./audit";

export interface OperatorAction {
  action: "adjust_credits" | "suspend" | "unsuspend" | "sign_in_link";
  accountId: string;
  reason: string;
  detail?: Record<string, unknown>;
  /** Names the change (an adjustment's ref), so a replay records it once. */
  ref?: string;
}

const AUDIT_ACTIONS: Record<OperatorAction["action"], string> = {
  adjust_credits: "credits.adjusted",
  suspend: "account.suspended",
  unsuspend: "account.unsuspended",
  sign_in_link: "sign_in_link.sent",
};

export async function recordOperatorAction(db: Db, actor: Actor, a: OperatorAction): Promise<void> {
  await recordAudit(
    db,
    a.accountId,
    actor,
    AUDIT_ACTIONS[a.action],
    { ...a.detail, ...(a.reason ? { reason: a.reason } : {}) },
    a.ref === undefined ? {} : { ref: a.ref },
  );
}
