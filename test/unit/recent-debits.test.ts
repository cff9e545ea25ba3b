import { describe, expect, it } from "vitest";
import {
  CLOCK_MARGIN_MS,
  clockMarginMs,
  RECENT_DEBIT_MAX,
  RECENT_DEBIT_MS,
  RecentDebits,
  unansweredDebitOutcome,
} from "../../src/ledger/domain/recent-debits";

const charge = { minute: 600, monthly: 1, purchased: 2 };

describe("a debit whose reply was lost", () => {
  it("remembered: it committed, with what it took", () => {
    expect(
      unansweredDebitOutcome({
        remembered: charge,
        memorySince: 5_000,
        sentAt: 1_000,
        marginMs: 0,
      }),
    ).toEqual({ outcome: "committed", charge });
  });

  it("absent while memory covers the time it was sent (with the clock margin): it never committed", () => {
    const at = { remembered: null, memorySince: 1_000, marginMs: 500 };
    expect(unansweredDebitOutcome({ ...at, sentAt: 1_501 })).toEqual({
      outcome: "never_committed",
    });
    // Sent within the margin of memory's start: it may have run in the instance before.
    expect(unansweredDebitOutcome({ ...at, sentAt: 1_500 })).toEqual({ outcome: "unknown" });
    expect(unansweredDebitOutcome({ ...at, sentAt: 900 })).toEqual({ outcome: "unknown" });
  });

  it("the margin is the configured whole number of ms, else the default", () => {
    expect(clockMarginMs("0")).toBe(0);
    expect(clockMarginMs("250")).toBe(250);
    for (const bad of [undefined, "", "-1", "1.5", "soon"])
      expect(clockMarginMs(bad)).toBe(CLOCK_MARGIN_MS);
  });
});

describe("the memory of recent debits", () => {
  it("forgets debits older than its window, and says from when it is complete", () => {
    const memory = new RecentDebits(0);
    memory.remember("a", charge, 1_000);
    memory.remember("b", charge, 2_000);
    expect(memory.charge("a")).toEqual(charge);
    expect(memory.memorySince).toBe(0);
    memory.remember("c", charge, 1_500 + RECENT_DEBIT_MS);
    expect(memory.charge("a")).toBeNull();
    expect(memory.charge("b")).toEqual(charge);
    expect(memory.memorySince).toBe(1_000);
  });

  it("holds at most RECENT_DEBIT_MAX, forgetting the oldest first", () => {
    const memory = new RecentDebits(0);
    for (let i = 0; i <= RECENT_DEBIT_MAX; i++) memory.remember(`d${i}`, charge, 10 + i);
    expect(memory.charge("d0")).toBeNull();
    expect(memory.charge("d1")).toEqual(charge);
    expect(memory.memorySince).toBe(10);
  });

  it("keeps the oldest-first order through many wraps of its ring, by count and by time", () => {
    const memory = new RecentDebits(0, 3);
    for (let i = 0; i < 10; i++) memory.remember(`d${i}`, { ...charge, minute: i }, 100 + i);
    // The last three, each with its own charge; the ones before forgotten, oldest first.
    expect([6, 7, 8, 9].map((i) => memory.charge(`d${i}`)?.minute ?? null)).toEqual([
      null,
      7,
      8,
      9,
    ]);
    expect(memory.memorySince).toBe(106);
    // Time forgets across the wrap too: d7 and d8 are past the window, d9 is not.
    memory.remember("late", charge, 109 + RECENT_DEBIT_MS);
    expect(memory.charge("d8")).toBeNull();
    expect(memory.charge("d9")).toEqual({ ...charge, minute: 9 });
    expect(memory.memorySince).toBe(108);
  });

  it("remembers a shard's lease with the debit, and forgets both together", () => {
    const memory = new RecentDebits(0, 2);
    memory.remember("a", charge, 1, "lease_1");
    memory.remember("b", charge, 2);
    expect(memory.lease("a")).toBe("lease_1");
    expect(memory.lease("b")).toBeNull();
    memory.remember("c", charge, 3, "lease_2");
    expect(memory.charge("a")).toBeNull();
    expect(memory.lease("a")).toBeNull();
    expect(memory.lease("c")).toBe("lease_2");
  });

  it("a ref remembered again keeps one place in the order", () => {
    const memory = new RecentDebits(0, 2);
    memory.remember("a", charge, 1);
    memory.remember("a", { ...charge, minute: 660 }, 2);
    memory.remember("b", charge, 3);
    expect(memory.charge("a")).toEqual({ ...charge, minute: 660 });
    expect(memory.charge("b")).toEqual(charge);
  });

  it("refuses a voided ref, and only that one", () => {
    const memory = new RecentDebits(0);
    expect(memory.isVoided("x")).toBe(false);
    memory.void("x");
    expect(memory.isVoided("x")).toBe(true);
    expect(memory.isVoided("y")).toBe(false);
  });
});
