/**
 * Every operator action (the console's forms and the JSON routes alike), with who did it and
 * why. The one place the operator audit log is written from: wip/audit's `recordAudit` goes
 * here. Until then the action is logged, operator and reason included.
 */
import type { Actor } from "../platform/actor";

export interface OperatorAction {
  action: "adjust_credits" | "suspend" | "unsuspend" | "revoke_key";
  accountId: string;
  reason: string;
  detail?: Record<string, unknown>;
}

export async function recordOperatorAction(actor: Actor, a: OperatorAction): Promise<void> {
  console.info(
    "operator action",
    JSON.stringify({
      action: a.action,
      account_id: a.accountId,
      operator: actor.id,
      reason: a.reason,
      ...a.detail,
    }),
  );
}
