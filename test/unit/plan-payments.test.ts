import { describe, expect, it } from "vitest";
import { decideCycle, decideUpgrade } from "../../src/ledger/domain/cycles";
import type { StateRow } from "../../src/ledger/domain/types";
import type { PlanId } from "../../src/pricing";
import { takesOver } from "../../src/subscriptions/current-subscription";
import {
  type LineLike,
  planOfCycleInvoice,
  planOfUpgradeInvoice,
} from "../../src/subscriptions/invoice-plans";

const DAY = 86_400_000;
const T = Date.UTC(2026, 5, 1);

function state(over: Partial<StateRow> = {}): StateRow {
  return {
    account_id: "acct_x",
    plan: "starter",
    monthly: 3_000,
    purchased: 0,
    cycle_started_at: T,
    cycle_ends_at: T + 30 * DAY,
    stripe_cycles: 1,
    plan_version: 10,
    auto_enabled: 0,
    auto_package: null,
    has_payment_method: 1,
    last_failure_at: null,
    last_failure_code: null,
    last_failure_message: null,
    last_failure_action_url: null,
    last_failure_recharge_id: null,
    payment_method_id: null,
    spend_limit_cents: null,
    rate_limit_override: null,
    paused_period: null,
    cycle_max_monthly: 3_000,
    compacted_until: 0,
    low_balance_credits: null,
    low_balance_armed: 0,
    suspended_at: null,
    suspension_reason: null,
    balance_version: 0,
    ...over,
  };
}

describe("decideUpgrade: a paid upgrade invoice (money rule 9)", () => {
  const end = T + 30 * DAY;

  it("raises the current cycle by the difference up to the new allowance", () => {
    expect(decideUpgrade(state(), { plan: "pro", cycleEndsAt: end })).toEqual({
      kind: "grant",
      added: 5_000,
      cycleMaxMonthly: 8_000,
    });
  });

  it("never past the largest allowance paid for in the cycle: a second upgrade adds nothing", () => {
    const after = state({ plan: "starter", cycle_max_monthly: 8_000 });
    expect(decideUpgrade(after, { plan: "pro", cycleEndsAt: end })).toMatchObject({ added: 0 });
    expect(decideUpgrade(after, { plan: "starter", cycleEndsAt: end })).toMatchObject({
      added: 0,
      cycleMaxMonthly: 8_000,
    });
  });

  it("an invoice for an earlier cycle grants nothing", () => {
    expect(decideUpgrade(state(), { plan: "pro", cycleEndsAt: end - 30 * DAY })).toEqual({
      kind: "earlier",
    });
  });

  it("one for a cycle not started yet, or on alarm-driven cycles, waits for the cycle's invoice", () => {
    expect(decideUpgrade(state(), { plan: "pro", cycleEndsAt: end + 30 * DAY })).toEqual({
      kind: "later",
    });
    expect(decideUpgrade(state({ stripe_cycles: 0 }), { plan: "pro", cycleEndsAt: end })).toEqual({
      kind: "later",
    });
  });
});

describe("decideCycle: a cycle grants what its invoice paid for", () => {
  const next = {
    ref: "in_1",
    version: 20,
    startsAt: T + 30 * DAY,
    endsAt: T + 60 * DAY,
    source: "stripe" as const,
  };

  it("a newer unpaid plan change shows as the plan but the cycle grants the plan billed", () => {
    // The subscription was moved to Pro (version 30) and nothing was paid for it; the
    // Starter invoice (version 20) arrives after.
    const d = decideCycle(state({ plan: "pro", plan_version: 30 }), { ...next, plan: "starter" });
    expect(d).toMatchObject({ kind: "apply", plan: "pro", monthly: 3_000, granted: "starter" });
  });

  it("an upgrade paid for this cycle before its invoice arrived makes it start at that allowance", () => {
    const d = decideCycle(state(), { ...next, plan: "starter", paidUpgrade: "pro" });
    expect(d).toMatchObject({ monthly: 8_000, cycleMaxMonthly: 8_000, granted: "pro" });
    // A smaller one changes nothing.
    expect(decideCycle(state(), { ...next, plan: "pro", paidUpgrade: "starter" })).toMatchObject({
      monthly: 8_000,
      granted: "pro",
    });
  });

  it("an invoice older than the end that made the account free starts nothing, unless its subscription is live", () => {
    // Free since version 24 (a deletion); the Pro invoice has version 22.
    const ended = state({ plan: "free", plan_version: 24, stripe_cycles: 0 });
    const input = { ...next, plan: "pro" as const, version: 22 };
    expect(decideCycle(ended, input)).toEqual({ kind: "ignore" });
    // Stripe holds its subscription live: the end was another subscription's (same second).
    expect(decideCycle(ended, { ...input, live: true })).toMatchObject({
      kind: "apply",
      newer: true,
      monthly: 8_000,
      granted: "pro",
    });
  });

  it("an alarm-driven cycle grants the plan the account is on", () => {
    const d = decideCycle(state({ plan: "free", stripe_cycles: 0 }), {
      ...next,
      plan: "free",
      version: 10,
      source: "alarm",
    });
    expect(d).toMatchObject({ monthly: 500, granted: "free" });
  });
});

function line(
  plan: string,
  amount: number,
  start: number,
  opts: { proration?: boolean; end?: number } = {},
): LineLike {
  return {
    amount,
    period: { start, end: opts.end ?? 2_000 },
    pricing: { price_details: { price: `price_${plan}` } },
    parent: opts.proration
      ? { invoice_item_details: { proration: true } }
      : { subscription_item_details: { proration: false } },
  };
}
const planFor = (price: string | null): PlanId | null =>
  price === "price_starter" ? "starter" : price === "price_pro" ? "pro" : null;

describe("the plan an invoice paid for, from its lines' prices", () => {
  it("a cycle's invoice: its subscription line, whatever prorations ride along first", () => {
    const lines = [
      line("starter", -900, 500, { proration: true }),
      line("pro", 1_900, 500, { proration: true }),
      line("starter", 1_900, 1_000, { end: 3_000 }),
    ];
    expect(planOfCycleInvoice(lines, planFor)).toEqual({
      plan: "starter",
      start: 1_000,
      end: 3_000,
    });
    expect(planOfCycleInvoice([line("other", 100, 1)], planFor)).toBeNull();
  });

  it("an upgrade's invoice: the positive proration line, its period naming the cycle", () => {
    const lines = [
      line("starter", -950, 1_000, { proration: true }),
      line("pro", 1_950, 1_000, { proration: true }),
    ];
    expect(planOfUpgradeInvoice({ total: 1_000, lines }, planFor)).toEqual({
      plan: "pro",
      start: 1_000,
      end: 2_000,
    });
  });

  it("up and back billed together names the last change; a downgrade's credit pays for nothing", () => {
    const upAndBack = [
      line("starter", -950, 1_000, { proration: true }),
      line("pro", 1_950, 1_000, { proration: true }),
      line("pro", -1_949, 1_060, { proration: true }),
      line("starter", 949, 1_060, { proration: true }),
    ];
    expect(planOfUpgradeInvoice({ total: 0, lines: upAndBack }, planFor)).toBeNull();
    expect(planOfUpgradeInvoice({ total: 1, lines: upAndBack }, planFor)?.plan).toBe("starter");
    const down = [
      line("pro", -1_950, 1_000, { proration: true }),
      line("starter", 950, 1_000, { proration: true }),
    ];
    expect(planOfUpgradeInvoice({ total: -1_000, lines: down }, planFor)).toBeNull();
  });
});

describe("takesOver: which subscription the account follows", () => {
  it("a live one replaces a current one that is no longer live, never a live one", () => {
    expect(takesOver(false, true)).toBe(true);
    expect(takesOver(true, true)).toBe(false);
    expect(takesOver(false, false)).toBe(false);
    expect(takesOver(true, false)).toBe(false);
  });
});
