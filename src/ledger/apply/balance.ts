/**
 * A refund of one debit and an operator's adjustment, applied: each reads the state, asks its
 * pure decision (`domain/commands.ts`), writes through `store/` and returns a domain value,
 * inside the object's one transaction (`Tx`).
 */
import { decideAdjust, decideRefund } from "../domain/commands";
import { addEffects } from "../domain/effects";
import { type RecentDebits, unansweredDebitOutcome } from "../domain/recent-debits";
import { type BalanceView, withTotal } from "../domain/rules";
import type { AdjustInput, AdjustResult, DebitCharge, RefundResult } from "../domain/types";
import { rechargeFollowUp } from "../follow-ups";
import { refundFromAggregate } from "../store/aggregates";
import { appendEntry, entryDeltas, hasEntry } from "../store/entries";
import { insertAdjustmentHistory } from "../store/projections";
import { addToBuckets } from "../store/state";
import { currentState, type Tx } from "../tx";

const ZERO: BalanceView = { monthly: 0, purchased: 0, total: 0 };

/**
 * Reverses the debit `debitRef`, returning each credit to the bucket it came from, as the entry
 * `refund:<debit>` (money rule 8). `charge` is the debit's own `minute` and `charged`. The
 * minute's aggregate must still hold what the refund returns, so no refund returns more than
 * was taken. Idempotent: a second refund of the same debit changes nothing.
 *
 * No `charge` but `sentAt` (the gateway's clock): a debit whose reply was lost, so it may or
 * may not have committed. Remembered, it is refunded; absent while memory covers the time it
 * was sent, it never committed, and `void:<debit>` records that (a late arrival is then
 * refused); otherwise the answer is `outcome_unknown`, for an operator (recent-debits.ts).
 * Neither: nothing says what the debit took, so `not_found`.
 */
export function applyRefund(
  tx: Tx,
  input: { debitRef: string; charge: DebitCharge | null; sentAt?: number },
  memory: { recent: RecentDebits; clockMarginMs: number },
): RefundResult {
  const { sql, now } = tx;
  const { debitRef, charge, sentAt } = input;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_found" };
  const refundRef = `refund:${debitRef}`;
  const d = decideRefund(charge, sentAt, {
    // Already refunded: a replay (the queue, D1, the reconciler) changes nothing.
    get refunded() {
      return hasEntry(sql, refundRef);
    },
    get voidRecorded() {
      return hasEntry(sql, `void:${debitRef}`);
    },
    get unanswered() {
      return unansweredDebitOutcome({
        remembered: memory.recent.charge(debitRef),
        memorySince: memory.recent.memorySince,
        sentAt: sentAt ?? 0,
        marginMs: memory.clockMarginMs,
      });
    },
  });
  if (d.kind === "replay") return { ok: true, balance: withTotal(s), refunded: false };
  if (d.kind === "outcome_unknown") return { ok: false, reason: "outcome_unknown" };
  if (d.kind === "void") {
    // Written only on this failure path: the decision outlives a restart.
    appendEntry(
      sql,
      { ref: `void:${debitRef}`, kind: "void", monthly: 0, purchased: 0, at: now },
      "debit never committed; reply lost",
    );
    memory.recent.void(debitRef);
    return { ok: false, reason: "not_found" };
  }
  if (d.kind === "not_found") return { ok: false, reason: "not_found" };
  const c = d.charge;
  if (!refundFromAggregate(sql, c, s.compacted_until)) return { ok: false, reason: "not_found" };
  addToBuckets(sql, c.monthly, c.purchased);
  appendEntry(
    sql,
    { ref: refundRef, kind: "refund", monthly: c.monthly, purchased: c.purchased, at: now },
    null,
  );
  return {
    ok: true,
    balance: withTotal({ monthly: s.monthly + c.monthly, purchased: s.purchased + c.purchased }),
    refunded: true,
  };
}

/**
 * Adds signed amounts to the buckets as one audited ledger entry. Refused, changing nothing,
 * when either bucket would go below zero. Idempotent by `ref`.
 */
export function applyAdjust(tx: Tx, input: AdjustInput): AdjustResult {
  const { sql, now } = tx;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized", balance: ZERO };
  const d = decideAdjust(s, entryDeltas(sql, input.ref), {
    monthly: input.monthly,
    purchased: input.purchased,
  });
  if (d.kind === "conflict")
    return { ok: false, reason: "idempotency_conflict", balance: withTotal(s) };
  if (d.kind === "replay") return { ok: true, balance: withTotal(s), replayed: true };
  if (d.kind === "insufficient")
    return { ok: false, reason: "insufficient_credits", balance: withTotal(s) };
  const next = d.next;
  addToBuckets(sql, input.monthly, input.purchased);
  appendEntry(
    sql,
    {
      ref: input.ref,
      kind: "adjustment",
      monthly: input.monthly,
      purchased: input.purchased,
      at: now,
    },
    input.reason,
  );
  // The customer's history says why the balance changed, not only by how much.
  tx.fx.deliver.push(insertAdjustmentHistory(sql, s.account_id, input, now));
  addEffects(tx.fx, rechargeFollowUp(sql, { ...s, ...next }, now));
  return { ok: true, balance: withTotal(next), replayed: false };
}
