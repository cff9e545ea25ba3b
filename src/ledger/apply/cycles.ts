/**
 * Billing cycles, plan changes and paid upgrades, applied: each reads the state, asks its pure
 * decision (`domain/cycles.ts`, `domain/commands.ts`), writes through `store/` and returns a
 * domain value, inside the object's one transaction (`Tx`).
 */
import type { PlanId } from "../../pricing";
import { decidePlanChange } from "../domain/commands";
import { decideCycle, decideUpgrade } from "../domain/cycles";
import { addEffects } from "../domain/effects";
import { withTotal } from "../domain/rules";
import type {
  CycleInput,
  CycleResult,
  PlanChangeInput,
  PlanChangeResult,
  UpgradeInput,
  UpgradeResult,
} from "../domain/types";
import { rechargeFollowUp } from "../follow-ups";
import { appendEntry, hasEntry } from "../store/entries";
import { insertGrantHistory, insertPlanChangedEvent } from "../store/projections";
import {
  insertInitialState,
  raiseMonthly,
  readStateRow,
  writeCycle,
  writePlan,
} from "../store/state";
import { largestPaidUpgrade, recordedUpgradeDelta, recordPaidUpgrade } from "../store/upgrades";
import { currentState, liveState, type Tx } from "../tx";

/**
 * Creates the account's ledger with the plan's monthly credits for the current cycle. Safe to
 * call twice: the second call changes nothing.
 */
export function applyInit(tx: Tx, input: { accountId: string; plan: PlanId }): void {
  if (readStateRow(tx.sql)) return;
  const allowance = insertInitialState(tx.sql, input.accountId, input.plan, tx.now);
  appendEntry(
    tx.sql,
    {
      ref: `cycle:${input.accountId}:initial`,
      kind: "cycle_grant",
      monthly: allowance,
      purchased: 0,
      at: tx.now,
    },
    // The plan is named so a replay can tell what the cycle started with (money rule 9).
    `initial monthly credits ${input.plan}`,
  );
}

/**
 * Starts a billing cycle: monthly credits are set to the plan's allowance (unused monthly
 * credits do not carry over; purchased credits are untouched). Idempotent by `ref` (an invoice
 * id, or `cycle:<start>` for alarm-driven cycles). Order-independent (`decideCycle`).
 */
export function applyStartCycle(tx: Tx, input: CycleInput): CycleResult {
  const { sql, now } = tx;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  if (hasEntry(sql, input.ref))
    return { ok: true, started: false, granted: 0, balance: withTotal(s) };
  const d = decideCycle(s, {
    ...input,
    paidUpgrade: input.source === "stripe" ? largestPaidUpgrade(sql, input.endsAt) : null,
  });
  if (d.kind === "ignore") {
    // Stripe retries deliveries for days: an invoice from before the subscription ended.
    appendEntry(
      sql,
      { ref: input.ref, kind: "cycle_grant", monthly: 0, purchased: 0, at: now },
      "ignored: subscription ended since",
    );
    return { ok: true, started: false, granted: 0, balance: withTotal(s) };
  }
  const delta = d.monthly - s.monthly;
  writeCycle(sql, delta, d);
  appendEntry(
    sql,
    { ref: input.ref, kind: "cycle_grant", monthly: delta, purchased: 0, at: now },
    // Named so a replay can tell a new period's grant from a same-period one, and which plan's
    // allowance it granted (money rule 9).
    d.newer ? `cycle ${d.granted}` : `cycle ${d.plan} (same period)`,
  );
  // Its history row is the cycle's projection, in the same transaction as the grant.
  if (d.newer) tx.fx.deliver.push(insertGrantHistory(sql, s.account_id, input, d.monthly, now));
  const next = liveState(tx);
  addEffects(tx.fx, rechargeFollowUp(sql, next, now));
  return {
    ok: true,
    started: d.newer,
    granted: d.newer ? d.monthly : 0,
    balance: withTotal(next),
  };
}

/**
 * Changes the plan, if `version` is newer than the last change seen (events arrive in any
 * order): what the account shows and its rate limit. It adds no monthly credits, up or down:
 * credits follow money that was paid (money rule 9), so an upgrade's come with its paid invoice
 * (`applyUpgrade`) and the next cycle's invoice grants the allowance it billed. `cycles` says
 * what starts the next cycle: Stripe invoices (a subscription) or the ledger's alarm.
 */
export function applyPlanChange(tx: Tx, input: PlanChangeInput): PlanChangeResult {
  const { sql, now } = tx;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const d = decidePlanChange(s, input, {
    get seen() {
      return hasEntry(sql, input.ref);
    },
  });
  if (d.kind === "ignore") return { ok: true, balance: withTotal(s), changed: false, added: 0 };
  writePlan(sql, input.plan, input.version, d.stripeCycles);
  if (d.changed)
    tx.fx.deliver.push(
      insertPlanChangedEvent(
        sql,
        s.account_id,
        { ref: input.ref, from: s.plan, to: input.plan },
        now,
      ),
    );
  appendEntry(
    sql,
    { ref: input.ref, kind: "plan_change", monthly: 0, purchased: 0, at: now },
    d.note,
  );
  return { ok: true, balance: withTotal(s), changed: d.changed, added: 0 };
}

/**
 * A paid upgrade invoice (`subscription_update`): monthly credits raised by the difference up
 * to the new plan's allowance for the cycle it is for, never past the largest allowance paid
 * for in that cycle (`decideUpgrade`). Idempotent by `ref` (the invoice id). One for a cycle
 * whose own invoice has not arrived yet is kept, and that cycle starts with it
 * (`applyStartCycle`); one for an earlier cycle grants nothing. The plan itself follows the
 * subscription's events.
 */
export function applyUpgrade(tx: Tx, input: UpgradeInput): UpgradeResult {
  const { sql, now } = tx;
  const s = currentState(tx);
  if (!s) return { ok: false, reason: "not_initialized" };
  const seen = recordedUpgradeDelta(sql, input.ref);
  // What it added the first time, so a retried history row says the same.
  if (seen !== null) return { ok: true, added: seen, outcome: "replayed", balance: withTotal(s) };
  recordPaidUpgrade(sql, input.ref, input.cycleEndsAt, input.plan, now);
  const d = decideUpgrade(s, input);
  tx.fx.deliver.push(
    insertGrantHistory(
      sql,
      s.account_id,
      { ...input, source: "stripe" },
      d.kind === "grant" ? d.added : 0,
      now,
    ),
  );
  const entry = { ref: input.ref, kind: "upgrade_grant", purchased: 0, at: now };
  if (d.kind !== "grant") {
    appendEntry(
      sql,
      { ...entry, monthly: 0 },
      d.kind === "earlier"
        ? `paid upgrade -> ${input.plan} (an earlier cycle: nothing)`
        : `paid upgrade -> ${input.plan} (awaits its cycle)`,
    );
    return { ok: true, added: 0, outcome: d.kind, balance: withTotal(s) };
  }
  raiseMonthly(sql, d.added, d.cycleMaxMonthly);
  appendEntry(sql, { ...entry, monthly: d.added }, `paid upgrade -> ${input.plan}`);
  const next = liveState(tx);
  addEffects(tx.fx, rechargeFollowUp(sql, next, now));
  return { ok: true, added: d.added, outcome: "granted", balance: withTotal(next) };
}
