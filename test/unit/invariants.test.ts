/**
 * The simulation's invariant checks (test/simulation/invariants.ts) on hand-made snapshots:
 * a healthy one passes, and for each invariant, broken ones fire that invariant (and only
 * that one, so a report points at the right rule). Also the PRNG and the generator are
 * deterministic, which is what makes a printed seed replayable.
 */
import { describe, expect, it } from "vitest";
import { billingTimeline, type GeneratorContext, generateStep } from "../simulation/generators";
import {
  checkLedger,
  checkSystem,
  type FailureHistory,
  InvariantViolation,
  type LedgerEntry,
  noteFailures,
  type SystemSnapshot,
} from "../simulation/invariants";
import * as M from "../simulation/model";
import { Prng } from "../simulation/prng";

let seq = 0;
const entry = (ref: string, kind: string, monthly: number, purchased: number): LedgerEntry => ({
  seq: ++seq,
  ref,
  kind,
  monthly_delta: monthly,
  purchased_delta: purchased,
});

/**
 * An account that got 500 monthly credits, spent 420 of them, bought 1,000 credits once
 * (rch_ok), had one declined auto-recharge (rch_bad) and has auto-recharge off since.
 */
function healthy(): SystemSnapshot {
  return {
    monthly: 80,
    purchased: 1000,
    autoEnabled: false,
    ledger: [
      entry("cycle:initial", "cycle_grant", 500, 0),
      entry("dbt_1", "debit", -420, 0),
      entry("rch_ok", "purchase", 0, 1000),
    ],
    recharges: [
      rechargeRow("rch_ok", "succeeded"),
      { ...rechargeRow("rch_bad", "failed"), kind: "auto_recharge" },
    ],
    audit: {
      consistent: true,
      ledger_monthly: 80,
      ledger_purchased: 1000,
      monthly: 80,
      purchased: 1000,
    },
    d1: [
      {
        id: "rch_ok",
        status: "succeeded",
        credits: 1000,
        amountCents: 700,
        invoiceId: "in_ok",
      },
      {
        id: "rch_bad",
        status: "failed",
        credits: 1000,
        amountCents: 700,
        invoiceId: "in_bad",
      },
    ],
    stripe: [
      { id: "in_ok", status: "paid", amount: 700, rechargeId: "rch_ok" },
      { id: "in_bad", status: "open", amount: 700, rechargeId: "rch_bad" },
      // A plan cycle's invoice: no recharge id, not a purchase.
      { id: "in_cycle", status: "paid", amount: 1900, rechargeId: null },
    ],
    activeFullKeys: 1,
  };
}

function rechargeRow(id: string, status: "pending" | "succeeded" | "failed") {
  return { id, kind: "top_up", package: "credits_1000", credits: 1000, amount_cents: 700, status };
}

/** rch_bad failed at step 3; auto-recharge was last switched on at step 1. */
const history: FailureHistory = { lastEnableStep: 1, failureFirstSeen: { rch_bad: 3 } };

/** Which invariants fire for a snapshot (sorted, without repeats). */
function firing(s: SystemSnapshot, h: FailureHistory = history): number[] {
  return [...new Set(checkSystem(s, h).map((v) => v.invariant))].sort();
}

describe("the invariant checks on a healthy snapshot", () => {
  it("find nothing", () => {
    expect(checkSystem(healthy(), history)).toEqual([]);
  });
});

describe("invariant 1: balance never negative", () => {
  it("fires on a negative bucket (the ledger agreeing with it)", () => {
    const s = healthy();
    s.purchased = -5;
    s.ledger.push(entry("adj_bad", "adjustment", 0, -1005));
    s.audit = undefined;
    expect(firing(s)).toEqual([1]);
  });

  it("fires when the ledger's history went below zero, even if it is positive now", () => {
    const s = healthy();
    // Spent 600 of 500 monthly credits, then an adjustment papered over it.
    s.ledger.splice(
      1,
      1,
      entry("dbt_big", "debit", -600, 0),
      entry("adj_fix", "adjustment", 180, 0),
    );
    expect(firing(s)).toEqual([1]);
  });
});

describe("invariant 2: the ledger replays to the balance", () => {
  it("fires when a bucket changed without a ledger entry", () => {
    const s = healthy();
    s.monthly += 1; // a refund that skipped its entry
    s.audit = undefined;
    expect(firing(s)).toEqual([2]);
  });

  it("fires on a ref written twice", () => {
    const s = healthy();
    s.ledger.push(entry("dbt_1", "debit", 0, 0));
    expect(firing(s)).toEqual([2]);
  });

  it("fires when audit() disagrees with the replay", () => {
    const s = healthy();
    s.audit = {
      consistent: false,
      ledger_monthly: 80,
      ledger_purchased: 1000,
      monthly: 81,
      purchased: 1000,
    };
    expect(firing(s)).toEqual([2]);
  });
});

describe("invariant 3: charges = credited purchases", () => {
  it("fires on a charge without a credit", () => {
    const s = healthy();
    // The grant never happened: no entry, no credits, the ledger still thinks it is pending.
    s.ledger = s.ledger.filter((e) => e.ref !== "rch_ok");
    s.purchased = 0;
    s.audit = undefined;
    s.recharges[0] = rechargeRow("rch_ok", "pending");
    const violations = checkSystem(s, history).filter((v) => v.invariant === 3);
    expect(violations.map((v) => v.detail)).toContain("charge without credit: rch_ok");
    expect(firing(s)).toEqual([3]);
  });

  it("fires on a credit without a charge", () => {
    const s = healthy();
    s.stripe[0] = {
      ...(s.stripe[0] as SystemSnapshot["stripe"][number]),
      status: "open",
    };
    expect(checkSystem(s, history).map((v) => v.detail)).toContain("credit without charge: rch_ok");
    expect(firing(s)).toEqual([3]);
  });

  it("fires on one recharge charged twice", () => {
    const s = healthy();
    s.stripe.push({ id: "in_again", status: "paid", amount: 700, rechargeId: "rch_ok" });
    expect(firing(s)).toEqual([3]);
  });

  it("fires when amounts disagree, or D1 names another invoice", () => {
    const amount = healthy();
    amount.stripe[0] = { id: "in_ok", status: "paid", amount: 1700, rechargeId: "rch_ok" };
    expect(firing(amount)).toEqual([3]);
    const credits = healthy();
    credits.d1[0] = {
      id: "rch_ok",
      status: "succeeded",
      credits: 3000,
      amountCents: 700,
      invoiceId: "in_ok",
    };
    expect(firing(credits)).toEqual([3]);
    const intent = healthy();
    intent.d1[0] = {
      id: "rch_ok",
      status: "succeeded",
      credits: 1000,
      amountCents: 700,
      invoiceId: "in_other",
    };
    expect(firing(intent)).toEqual([3]);
  });

  it("fires when D1 says succeeded and neither Stripe nor the ledger does", () => {
    const s = healthy();
    s.d1.push({
      id: "rch_ghost",
      status: "succeeded",
      credits: 1000,
      amountCents: 700,
      invoiceId: null,
    });
    expect(firing(s)).toEqual([3]);
  });
});

describe("invariant 4: at most one auto-recharge in flight", () => {
  it("fires on a second pending auto-recharge (a top-up alongside is fine)", () => {
    const s = healthy();
    s.recharges.push(
      { ...rechargeRow("rch_p1", "pending"), kind: "auto_recharge" },
      rechargeRow("rch_topup", "pending"),
    );
    expect(checkLedger(s)).toEqual([]);
    s.recharges.push({ ...rechargeRow("rch_p2", "pending"), kind: "auto_recharge" });
    expect(checkLedger(s).map((v) => v.invariant)).toEqual([4]);
  });
});

/**
 * A Starter account's plan entries: initial grant, then plan changes (subscription events) and
 * paid upgrades (their invoices, notes "paid upgrade -> <plan>") with their notes.
 */
function withPlanChanges(deltas: Array<[string, number]>): SystemSnapshot {
  const s = healthy();
  s.ledger = [
    { ...entry("cycle:initial", "cycle_grant", 3000, 0), note: "initial monthly credits starter" },
  ];
  let monthly = 3000;
  for (const [note, delta] of deltas) {
    const kind = note.startsWith("paid upgrade") ? "upgrade_grant" : "plan_change";
    s.ledger.push({ ...entry(`evt_${seq}`, kind, delta, 0), note });
    monthly += delta;
  }
  s.ledger.push(entry("rch_ok", "purchase", 0, 1000));
  s.monthly = monthly;
  s.audit = {
    ...(s.audit as NonNullable<SystemSnapshot["audit"]>),
    ledger_monthly: monthly,
    monthly,
  };
  return s;
}

describe("invariant 6: a cycle's plan grants stay within the largest allowance paid for", () => {
  it("accepts one paid upgrade's difference, and flips that add nothing", () => {
    const s = withPlanChanges([
      ["starter -> pro", 0],
      ["paid upgrade -> pro", 5000],
      ["pro -> starter", 0],
      ["starter -> pro", 0],
      ["paid upgrade -> pro", 0],
    ]);
    expect(firing(s)).toEqual([]);
  });

  it("fires when flip-flops add the difference again (the bug the review found)", () => {
    const s = withPlanChanges([
      ["paid upgrade -> pro", 5000],
      ["pro -> starter", 0],
      ["paid upgrade -> pro", 5000],
    ]);
    expect(firing(s)).toEqual([6]);
  });

  it("fires when a plan change alone (nothing paid) adds credits", () => {
    const s = withPlanChanges([["starter -> pro", 5000]]);
    expect(firing(s)).toEqual([6]);
  });

  it("a new period's grant starts a new bound", () => {
    const s = withPlanChanges([["paid upgrade -> pro", 5000]]);
    s.ledger.push({ ...entry("in_2", "cycle_grant", -8000 + 3000, 0), note: "cycle starter" });
    s.ledger.push({ ...entry("in_up", "upgrade_grant", 5000, 0), note: "paid upgrade -> pro" });
    s.monthly = 8000;
    s.audit = {
      ...(s.audit as NonNullable<SystemSnapshot["audit"]>),
      ledger_monthly: 8000,
      monthly: 8000,
    };
    expect(firing(s)).toEqual([]);
    // A same-period invoice does not reset it.
    s.ledger.push({ ...entry("in_3", "cycle_grant", 0, 0), note: "cycle starter (same period)" });
    s.ledger.push({ ...entry("in_up2", "upgrade_grant", 5000, 0), note: "paid upgrade -> pro" });
    s.monthly = 13000;
    s.audit = {
      ...(s.audit as NonNullable<SystemSnapshot["audit"]>),
      ledger_monthly: 13000,
      monthly: 13000,
    };
    expect(firing(s)).toEqual([6]);
  });
});

describe("invariant 7: the account keeps an active full key", () => {
  it("fires when no full key is active", () => {
    const s = healthy();
    s.activeFullKeys = 0;
    expect(firing(s)).toEqual([7]);
  });
});

describe("invariant 5: a failed payment adds no credits and disables auto-recharge", () => {
  it("fires when auto-recharge is still on after the failure", () => {
    const s = healthy();
    s.autoEnabled = true;
    expect(firing(s)).toEqual([5]);
    // An enable in the same step came before the failure: still wrong.
    expect(firing(s, { ...history, lastEnableStep: 3 })).toEqual([5]);
  });

  it("accepts auto-recharge switched back on by the customer after the failure", () => {
    const s = healthy();
    s.autoEnabled = true;
    expect(firing(s, { ...history, lastEnableStep: 4 })).toEqual([]);
  });

  it("fires when a failed payment was credited", () => {
    const s = healthy();
    s.ledger.push(entry("rch_bad", "purchase", 0, 1000));
    s.purchased += 1000;
    s.audit = undefined;
    expect(firing(s)).toContain(5);
  });

  it("fires when D1 and the ledger disagree about a failure", () => {
    const s = healthy();
    s.recharges[1] = { ...rechargeRow("rch_bad", "pending"), kind: "auto_recharge" };
    expect(firing(s)).toEqual([5]);
  });

  it("counts a failure from the step it was first seen", () => {
    const s = healthy();
    const h = noteFailures({ lastEnableStep: 7, failureFirstSeen: {} }, s, 9);
    expect(h.failureFirstSeen).toEqual({ rch_bad: 9 });
    expect(noteFailures(h, s, 12).failureFirstSeen).toEqual({ rch_bad: 9 });
    s.autoEnabled = true;
    expect(firing(s, h)).toEqual([5]);
  });
});

describe("InvariantViolation", () => {
  it("names each invariant and says which fired", () => {
    const err = new InvariantViolation([{ invariant: 4, detail: "2 pending" }], "after step 3");
    expect(err.message).toContain("invariant 4 (at most one auto-recharge in flight): 2 pending");
    expect(err.has(4)).toBe(true);
    expect(err.has(1)).toBe(false);
  });
});

describe("replayable seeds", () => {
  it("the PRNG gives the same sequence for the same seed and another for another", () => {
    const draw = (seed: number) => {
      const rng = new Prng(seed);
      return Array.from({ length: 5 }, () => rng.int(0, 1_000_000));
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it("the generator makes the same steps from the same seed and model", () => {
    const steps = (seed: number) => {
      const rng = new Prng(seed);
      const ctx: GeneratorContext = {
        timeline: billingTimeline(rng, seed, 1_800_000_000),
      };
      const model = M.initialState("free", 0);
      return Array.from({ length: 30 }, () => generateStep(rng, model, ctx));
    };
    expect(steps(7)).toEqual(steps(7));
    expect(steps(7)).not.toEqual(steps(8));
  });
});

describe("the model", () => {
  it("spends monthly credits first and refuses what it cannot pay in full", () => {
    const s = M.initialState("free", 0);
    s.monthly = 2;
    s.purchased = 3;
    expect(M.debit(s, 4)).toEqual({ monthly: 2, purchased: 2 });
    expect(M.debit(s, 2)).toBeNull();
    expect(M.total(s)).toBe(1);
  });

  it("starts one auto-recharge at the threshold and settles a decline as disabled", () => {
    const s = M.initialState("free", 0);
    expect(M.attachCard(s, "pm_card_chargeDeclined")).toBe("generic_decline");
    expect(s.card).toBeNull();
    expect(M.attachCard(s, "pm_card_chargeCustomerFail")).toBeNull();
    expect(M.updateAutoRecharge(s, { enabled: true })).toBe("ok");
    s.monthly = 102;
    M.debit(s, 1);
    M.debit(s, 1);
    M.debit(s, 1);
    expect(s.started).toEqual([
      {
        kind: "auto_recharge",
        package: "credits_1000",
        status: "failed",
        failureCode: "card_declined",
      },
    ]);
    M.settle(s);
    expect(s).toMatchObject({ autoEnabled: false, lastFailureCode: "card_declined", monthly: 99 });
  });
});
