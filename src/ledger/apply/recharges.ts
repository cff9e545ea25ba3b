/**
 * Recharges, applied: a manual top-up, a paid recharge's credits and a payment problem. Each
 * reads the state, asks its pure decision (`domain/commands.ts`: `decideTopUp`,
 * `decideGrantPurchased`, the state machine `nextRechargeStatus`), writes through `store/` and
 * returns a domain value, inside the object's one transaction (`Tx`).
 */
import type { PackageId } from "../../pricing";
import { decideGrantPurchased, decideTopUp, nextRechargeStatus } from "../domain/commands";
import { withTotal } from "../domain/rules";
import type {
  GrantResult,
  PaymentDetails,
  PaymentProblemResult,
  RechargeView,
  TopUpResult,
} from "../domain/types";
import { appendEntry, hasEntry } from "../store/entries";
import { insertPurchaseProjection } from "../store/projections";
import {
  awaitingAction,
  findRecharge,
  insertRecharge,
  markSucceeded,
  recordPaymentProblem,
  spentThisMonth,
} from "../store/recharges";
import { addToBuckets, readStateRow } from "../store/state";
import { currentState, type Tx } from "../tx";

/**
 * Starts a manual top-up through the recharge pipeline. `rechargeId` is derived from the
 * client's Idempotency-Key when it sent one, so a retried request finds its first top-up.
 */
export function applyTopUp(tx: Tx, input: { rechargeId: string; package: PackageId }): TopUpResult {
  const { sql, now } = tx;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const d = decideTopUp(s, input.package, {
    get existing() {
      return findRecharge(sql, input.rechargeId);
    },
    get waiting() {
      return awaitingAction(sql)[0] ?? null;
    },
    get spentThisMonthCents() {
      return spentThisMonth(sql, now);
    },
  });
  if (d.kind === "replay") return { ok: true, recharge: d.recharge, replayed: true };
  if (d.kind === "refuse") return { ok: false, reason: d.reason };
  if (d.kind === "payment_pending")
    return { ok: false, reason: "payment_pending", waiting: d.waiting };
  tx.fx.deliver.push(insertRecharge(sql, s, input.rechargeId, "top_up", input.package, now));
  return {
    ok: true,
    recharge: findRecharge(sql, input.rechargeId) as RechargeView,
    replayed: false,
  };
}

/**
 * Credits a paid recharge to the purchased bucket. Idempotent by recharge id: the ledger ref
 * is the recharge id, so no retry, redelivery or reconciliation can credit it twice. A
 * recharge first recorded as failed is still credited if the payment did go through. Its D1
 * row and the customer's email follow from the outbox (`PurchaseProjection`).
 */
export function applyGrantPurchased(
  tx: Tx,
  input: { rechargeId: string; credits: number; payment?: PaymentDetails },
): GrantResult {
  const { sql, now } = tx;
  const { rechargeId, credits } = input;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const recharge = findRecharge(sql, rechargeId);
  const d = decideGrantPurchased(recharge, credits, {
    get granted() {
      return hasEntry(sql, rechargeId);
    },
  });
  if (d.kind === "refuse") return { ok: false, reason: d.reason };
  if (d.kind === "replay") return { ok: true, granted: false, balance: withTotal(s) };
  addToBuckets(sql, 0, credits);
  appendEntry(
    sql,
    { ref: rechargeId, kind: "purchase", monthly: 0, purchased: credits, at: now },
    d.note,
  );
  const balance = withTotal({ monthly: s.monthly, purchased: s.purchased + credits });
  // Succeeded is reached only with its ledger entry, so a grant always moves the status.
  if (d.transition.kind === "move" && recharge) {
    markSucceeded(sql, rechargeId, now);
    const change = {
      status: "succeeded" as const,
      payment: input.payment ?? {},
      code: null,
      message: null,
      action_url: null,
      balance_total: balance.total,
    };
    tx.fx.deliver.push(insertPurchaseProjection(sql, s.account_id, recharge, change, now));
  }
  return { ok: true, granted: true, balance };
}

/**
 * A payment problem (`failed`: no credits, auto-recharge disabled, failure kept for the
 * dashboard, money rule 6; `requires_action`: the same, with the link where the customer can
 * complete it), through the recharge state machine (`nextRechargeStatus`). A recharge already
 * credited stays credited.
 */
export function applyPaymentProblem(
  tx: Tx,
  input: {
    rechargeId: string;
    event: "failed" | "requires_action";
    code: string;
    message: string;
    actionUrl: string | null;
    payment?: PaymentDetails;
  },
): PaymentProblemResult {
  const r = findRecharge(tx.sql, input.rechargeId);
  if (!r) return { ok: false, reason: "unknown_recharge" };
  const t = nextRechargeStatus(r.status, input.event);
  if (t.kind === "refuse") return { ok: false, reason: t.reason };
  if (t.kind === "same") return { ok: true, changed: false };
  recordPaymentProblem(tx.sql, {
    rechargeId: input.rechargeId,
    from: t.from,
    to: input.event,
    code: input.code,
    message: input.message,
    actionUrl: input.actionUrl,
    now: tx.now,
  });
  const accountId = readStateRow(tx.sql)?.account_id ?? "";
  const change = {
    status: input.event,
    payment: input.payment ?? {},
    code: input.code,
    message: input.message,
    action_url: input.event === "requires_action" ? input.actionUrl : null,
    balance_total: null,
  };
  tx.fx.deliver.push(insertPurchaseProjection(tx.sql, accountId, r, change, tx.now));
  return { ok: true, changed: true };
}
