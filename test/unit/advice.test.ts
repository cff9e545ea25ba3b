import { describe, expect, it } from "vitest";
import { PACKAGES } from "../../src/pricing";
import {
  advisePlan,
  cheapestCover,
  planCosts,
  projectOverCycle,
  purchaseState,
  runwayDays,
  runwaySentence,
  unusualDays,
  type WaitingPurchase,
} from "../../src/web/billing/advice";

const week = (credits: number) => Array.from({ length: 7 }, () => credits);

describe("runway", () => {
  it("divides what is left above 100 by the 7-day average, in whole days", () => {
    // 700 credits in 7 days = 100/day; 1,100 − 100 = 1,000 left → 10 days.
    expect(runwayDays(week(100), 1_100)).toBe(10);
    // 300/day; 1,000 − 100 = 900 → exactly 3 days; one credit less or more stays near 3.
    expect(runwayDays(week(300), 1_000)).toBe(3);
    expect(runwayDays(week(300), 999)).toBe(2);
    expect(runwayDays(week(300), 1_001)).toBe(3);
    // 10 credits in a week = 10/7 a day; 100 left → 70 days.
    expect(runwayDays([10, 0, 0, 0, 0, 0, 0], 200)).toBe(70);
  });

  it("is 0 at or below the threshold and null without any usage", () => {
    expect(runwayDays(week(50), 100)).toBe(0);
    expect(runwayDays(week(0), 60)).toBe(0);
    expect(runwayDays(week(0), 5_000)).toBeNull();
    expect(runwayDays([], 5_000)).toBeNull();
  });

  it("says it as a sentence", () => {
    expect(runwaySentence(10)).toBe("At your last 7 days' rate, credits reach 100 in ~10 days.");
    expect(runwaySentence(1)).toBe("At your last 7 days' rate, credits reach 100 in ~1 day.");
    expect(runwaySentence(0)).toBe("Your balance is at or below 100 credits.");
    expect(runwaySentence(null)).toBe(
      "No credits used in the last 7 days, so there is no rate to project.",
    );
  });

  it("says a long runway as more than a year, not as thousands of days", () => {
    expect(runwaySentence(365)).toBe("At your last 7 days' rate, credits reach 100 in ~365 days.");
    expect(runwaySentence(366)).toBe(
      "At your last 7 days' rate, credits reach 100 in more than a year.",
    );
    // The example: 2 credits a day on 13,632 credits.
    expect(runwaySentence(runwayDays([2, 2, 2, 2, 2, 2, 2], 13_632))).toBe(
      "At your last 7 days' rate, credits reach 100 in more than a year.",
    );
  });

  it("estimates nothing from fewer than 3 days of history, and says so", () => {
    expect(runwaySentence(12, 1, 100, 0)).toBe(
      "Not enough history for a runway estimate yet: it needs 3 days of usage, and this account has 0 days.",
    );
    expect(runwaySentence(12, 2, 100, 1)).toBe(
      "Not enough history for a runway estimate yet: it needs 3 days of usage, and this account has 1 day.",
    );
    expect(runwaySentence(12, 4, 100, 3)).toBe(
      "At your last 4 days' rate, credits reach 100 in ~12 days.",
    );
    // At or below the threshold is a fact, not an estimate: said however young the account.
    expect(runwaySentence(0, 1, 100, 0)).toBe("Your balance is at or below 100 credits.");
  });
});

describe("cheapest package combination", () => {
  const basket = (needed: number) => {
    const cover = cheapestCover(needed);
    return {
      cents: cover.cents,
      credits: cover.credits,
      packages: Object.fromEntries(cover.packages.map((p) => [p.package, p.count])),
    };
  };

  it("buys nothing for nothing", () => {
    expect(basket(0)).toEqual({ cents: 0, credits: 0, packages: {} });
    expect(basket(-5)).toEqual({ cents: 0, credits: 0, packages: {} });
  });

  it("matches hand-computed baskets", () => {
    // 1 credit still needs a whole package.
    expect(basket(1)).toEqual({ cents: 700, credits: 1_000, packages: { credits_1000: 1 } });
    // 2 × $7 = $14 beats one 3,000 at $17.
    expect(basket(1_001)).toEqual({ cents: 1_400, credits: 2_000, packages: { credits_1000: 2 } });
    // 3 × $7 = $21 loses to one 3,000 at $17.
    expect(basket(2_500)).toEqual({ cents: 1_700, credits: 3_000, packages: { credits_3000: 1 } });
    // 5,000: 3,000 + 2 × 1,000 = $31; two 3,000 = $34; one 9,000 = $37.
    expect(basket(5_000)).toEqual({
      cents: 3_100,
      credits: 5_000,
      packages: { credits_1000: 2, credits_3000: 1 },
    });
    // 7,000: one 9,000 ($37) beats 3,000 + 3,000 + 1,000 ($41).
    expect(basket(7_000)).toEqual({ cents: 3_700, credits: 9_000, packages: { credits_9000: 1 } });
    // 100,000: 11 × 9,000 + 1 × 1,000 = $407 + $7 (the bulk step of the algorithm is used here).
    expect(basket(100_000)).toEqual({
      cents: 41_400,
      credits: 100_000,
      packages: { credits_1000: 1, credits_9000: 11 },
    });
  });

  it("equals an exhaustive search for every size up to 60,000 credits", () => {
    const [small, medium, large] = [
      PACKAGES.credits_1000,
      PACKAGES.credits_3000,
      PACKAGES.credits_9000,
    ];
    for (let needed = 0; needed <= 60_000; needed += 250) {
      let best = Number.POSITIVE_INFINITY;
      for (let c = 0; c * large.credits < needed + large.credits; c++) {
        for (let b = 0; b * medium.credits < needed + medium.credits; b++) {
          const rest = needed - c * large.credits - b * medium.credits;
          const a = Math.max(0, Math.ceil(rest / small.credits));
          best = Math.min(
            best,
            a * small.priceCents + b * medium.priceCents + c * large.priceCents,
          );
        }
      }
      const cover = cheapestCover(needed);
      expect({ needed, cents: cover.cents }).toEqual({ needed, cents: best });
      expect(cover.credits).toBeGreaterThanOrEqual(needed);
    }
  });
});

describe("plan advisor", () => {
  it("prices each plan as its fee plus packages for the overflow", () => {
    const costs = planCosts(10_000);
    expect(costs.map((c) => [c.plan, c.overflowCredits, c.totalCents])).toEqual([
      // Free: 9,500 over → 9,000 + 1,000 = $44.
      ["free", 9_500, 4_400],
      // Starter: $19 + 7,000 over → one 9,000 = $37 → $56.
      ["starter", 7_000, 5_600],
      // Pro: $39 + 2,000 over → two 1,000 = $14 → $53.
      ["pro", 2_000, 5_300],
    ]);
  });

  it("names a cheaper plan and the saving", () => {
    // 8,000 credits at a peak of 100 requests/minute (Free's 60/minute is too low):
    // Starter $19 + 5,000 over ($31) = $50; Pro $39 with nothing over → $11 less.
    const advice = advisePlan(8_000, "starter", 100);
    expect(advice.cheapest).toBe("pro");
    expect(advice.savingCents).toBe(1_100);
    expect(advice.sentence).toBe("Pro would have cost $11.00 less than your Starter plan.");
    expect(advice.costs.find((c) => c.plan === "free")?.fitsPeak).toBe(false);
  });

  it("counts Free with packages when its rate limit would have carried the traffic", () => {
    // Free: 7,500 over → one 9,000 = $37, against Starter's $50.
    const advice = advisePlan(8_000, "starter", 60);
    expect(advice.cheapest).toBe("free");
    expect(advice.savingCents).toBe(1_300);
    expect(advice.sentence).toBe("Free would have cost $13.00 less than your Starter plan.");
  });

  it("keeps the current plan when it is cheapest or tied", () => {
    // 11,000 at 100/minute: Starter $19 + 8,000 over ($37) = $56; Pro $39 + 3,000 ($17) = $56.
    const tied = advisePlan(11_000, "starter", 100);
    expect(tied.cheapest).toBe("starter");
    expect(tied.savingCents).toBe(0);
    expect(tied.sentence).toBe("Your Starter plan was the cheapest option for this usage.");
    expect(advisePlan(0, "free").sentence).toBe(
      "Your Free plan was the cheapest option for this usage.",
    );
  });
});

describe("projection over the cycle", () => {
  const DAY = 86_400;
  it("scales the usage so far to the whole cycle, rounding up", () => {
    expect(projectOverCycle(100, 10 * DAY, 30 * DAY)).toBe(300);
    expect(projectOverCycle(2, 10 * DAY, 31 * DAY)).toBe(7);
    expect(projectOverCycle(0, 10 * DAY, 30 * DAY)).toBe(0);
    // A finished (or not yet started) cycle is taken as it is.
    expect(projectOverCycle(100, 30 * DAY, 30 * DAY)).toBe(100);
    expect(projectOverCycle(100, 0, 30 * DAY)).toBe(100);
  });

  it("words a projection about the cycle under way", () => {
    // As in "names a cheaper plan": Starter $50 against Pro $39.
    expect(advisePlan(8_000, "starter", 100, { projected: true }).sentence).toBe(
      "At this rate Pro would cost $11.00 less than your Starter plan over the whole cycle.",
    );
    expect(advisePlan(100, "free", 1, { projected: true }).sentence).toBe(
      "At this rate your Free plan is the cheapest option for the whole cycle.",
    );
  });
});

describe("unusual usage", () => {
  const days = (credits: number[]) =>
    credits.map((n, i) => ({ start: `2026-04-${String(i + 1).padStart(2, "0")}`, credits: n }));

  it("flags a day above 3× its trailing 7-day mean", () => {
    // Trailing 700 (mean 100): 400 is 4× → flagged.
    expect(unusualDays(days([...week(100), 400]))).toEqual([
      { start: "2026-04-08", credits: 400, trailingCredits: 700, window: 7 },
    ]);
  });

  it("does not flag exactly 3×, days under the floor, or days without a full window", () => {
    expect(unusualDays(days([...week(100), 300]))).toEqual([]);
    // After a silent week: 99 is under the floor of 100, 100 is not.
    expect(unusualDays(days([...week(0), 99]))).toEqual([]);
    expect(unusualDays(days([...week(0), 100])).map((d) => d.start)).toEqual(["2026-04-08"]);
    // The first 7 days have no full trailing window.
    expect(unusualDays(days([5_000, 0, 0, 0, 0, 0, 0]))).toEqual([]);
  });

  it("takes the floor, factor and window as options", () => {
    const series = days([10, 10, 10, 50]);
    expect(unusualDays(series, { window: 3, floor: 20 }).map((d) => d.credits)).toEqual([50]);
    expect(unusualDays(series, { window: 3, floor: 20, factor: 5 })).toEqual([]);
  });
});

describe("purchases waiting for the customer's bank: one state, said once", () => {
  const ar: WaitingPurchase = {
    id: "rch_ar",
    kind: "auto_recharge",
    credits: 1_000,
    amountCents: 700,
    since: "2026-12-01T10:00:00.000Z",
    actionUrl: "https://pay.example/i/ar",
  };
  const topUp: WaitingPurchase = {
    id: "rch_tu",
    kind: "top_up",
    credits: 3_000,
    amountCents: 1_700,
    since: "2026-12-01T11:00:00.000Z",
    actionUrl: "https://pay.example/i/tu",
  };
  const base = { autoRechargeInFlight: false, autoRechargeEnabled: false };

  it("nothing waits: buying is offered; a pending auto-recharge is 'being processed'", () => {
    expect(purchaseState({ ...base, waiting: [] })).toMatchObject({
      sentence: null,
      links: [],
      canBuy: true,
      processing: false,
    });
    expect(
      purchaseState({ waiting: [], autoRechargeInFlight: true, autoRechargeEnabled: true }),
    ).toMatchObject({ canBuy: true, processing: true });
  });

  it("an auto-recharge waits: what, where to complete it, no purchase offered, not 'processing'", () => {
    // `pending` in the settings is true for a waiting auto-recharge too: it is not "processing".
    const s = purchaseState({
      waiting: [ar],
      autoRechargeInFlight: true,
      autoRechargeEnabled: false,
    });
    expect(s.sentence).toBe(
      "Your auto-recharge of 1,000 credits ($7) is waiting for you to confirm the payment with your bank.",
    );
    expect(s.detail).toContain("Nothing has been charged or added yet.");
    expect(s.detail).toContain("No other credits can be bought until then");
    expect(s.detail).toContain("Auto-recharge stays off until you turn it back on.");
    // Said once: the reason is not repeated in the detail.
    expect(s.detail).not.toContain("bank asks");
    expect(s.links).toEqual([{ href: ar.actionUrl, label: "Complete the payment" }]);
    expect(s).toMatchObject({ canBuy: false, processing: false });
    // Turned back on by the customer: no "stays off".
    expect(
      purchaseState({ waiting: [ar], autoRechargeInFlight: true, autoRechargeEnabled: true })
        .detail,
    ).not.toContain("stays off");
  });

  it("a top-up waits: the same state, named as the top-up; a pending auto-recharge still shows", () => {
    const s = purchaseState({ ...base, waiting: [topUp] });
    expect(s.sentence).toBe(
      "Your top-up of 3,000 credits ($17) is waiting for you to confirm the payment with your bank.",
    );
    expect(s.detail).not.toContain("Auto-recharge");
    expect(s).toMatchObject({ canBuy: false, processing: false });
    expect(
      purchaseState({ waiting: [topUp], autoRechargeInFlight: true, autoRechargeEnabled: true }),
    ).toMatchObject({ canBuy: false, processing: true });
  });

  it("both wait: one sentence naming both, oldest first, one link each", () => {
    const s = purchaseState({ ...base, autoRechargeInFlight: true, waiting: [topUp, ar] });
    expect(s.sentence).toBe(
      "Two purchases are waiting for you to confirm the payment with your bank: the auto-recharge of 1,000 credits ($7) and the top-up of 3,000 credits ($17).",
    );
    expect(s.links).toEqual([
      { href: ar.actionUrl, label: "Complete the auto-recharge payment ($7)" },
      { href: topUp.actionUrl, label: "Complete the top-up payment ($17)" },
    ]);
    expect(s.detail).toContain("Complete each one");
    expect(s).toMatchObject({ canBuy: false, processing: false });
  });

  it("the top-up paid while the auto-recharge still waits: the auto-recharge's state stays", () => {
    // The settings' last failure named the top-up and was cleared when it was paid; what waits
    // comes from the recharges themselves, so the auto-recharge is still said, with its link.
    const s = purchaseState({ ...base, autoRechargeInFlight: true, waiting: [ar] });
    expect(s.sentence).toContain("Your auto-recharge of 1,000 credits ($7) is waiting");
    expect(s.links).toEqual([{ href: ar.actionUrl, label: "Complete the payment" }]);
    expect(s.canBuy).toBe(false);
  });

  it("a waiting purchase whose link is not known yet points to the email", () => {
    const s = purchaseState({ ...base, waiting: [{ ...topUp, actionUrl: null }] });
    expect(s.links).toEqual([]);
    expect(s.detail).toContain("the link is also in the email we sent you");
  });
});
