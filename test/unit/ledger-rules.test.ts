import { describe, expect, it } from "vitest";
import {
  addOneMonth,
  applyDeltas,
  shouldTriggerRecharge,
  splitDebit,
} from "../../src/ledger/domain/rules";

describe("splitDebit: monthly credits first, then purchased, all or nothing", () => {
  it("takes from monthly while it lasts", () => {
    expect(splitDebit({ monthly: 5, purchased: 10 }, 3)).toEqual({ monthly: 3, purchased: 0 });
  });
  it("spills into purchased only for the remainder", () => {
    expect(splitDebit({ monthly: 2, purchased: 10 }, 5)).toEqual({ monthly: 2, purchased: 3 });
  });
  it("uses purchased when monthly is empty", () => {
    expect(splitDebit({ monthly: 0, purchased: 1 }, 1)).toEqual({ monthly: 0, purchased: 1 });
  });
  it("refuses a cost the buckets cannot pay in full", () => {
    expect(splitDebit({ monthly: 2, purchased: 2 }, 5)).toBeNull();
    expect(splitDebit({ monthly: 0, purchased: 0 }, 1)).toBeNull();
  });
  it("allows a zero cost on an empty balance", () => {
    expect(splitDebit({ monthly: 0, purchased: 0 }, 0)).toEqual({ monthly: 0, purchased: 0 });
  });
  it("rejects negative or fractional costs as bugs", () => {
    expect(() => splitDebit({ monthly: 5, purchased: 0 }, -1)).toThrow(RangeError);
    expect(() => splitDebit({ monthly: 5, purchased: 0 }, 1.5)).toThrow(RangeError);
  });
});

describe("shouldTriggerRecharge: the product document's scenarios", () => {
  it("scenario 1: monthly 0, purchased 100 → total 100 triggers", () => {
    expect(shouldTriggerRecharge({ total: 0 + 100, enabled: true, pending: false })).toBe(true);
  });
  it("scenario 2: monthly 50, purchased 40 → total 90 triggers", () => {
    expect(shouldTriggerRecharge({ total: 50 + 40, enabled: true, pending: false })).toBe(true);
  });
  it("scenario 3: monthly 500, purchased 100 → total 600 does not trigger", () => {
    expect(shouldTriggerRecharge({ total: 500 + 100, enabled: true, pending: false })).toBe(false);
  });
  it("101 does not trigger; 100 does", () => {
    expect(shouldTriggerRecharge({ total: 101, enabled: true, pending: false })).toBe(false);
    expect(shouldTriggerRecharge({ total: 100, enabled: true, pending: false })).toBe(true);
  });
  it("never when disabled or when one is already pending", () => {
    expect(shouldTriggerRecharge({ total: 10, enabled: false, pending: false })).toBe(false);
    expect(shouldTriggerRecharge({ total: 10, enabled: true, pending: true })).toBe(false);
  });
});

describe("applyDeltas", () => {
  it("refuses a result below zero in either bucket", () => {
    expect(applyDeltas({ monthly: 5, purchased: 5 }, { monthly: -6, purchased: 10 })).toBeNull();
    expect(applyDeltas({ monthly: 5, purchased: 5 }, { monthly: 1, purchased: -6 })).toBeNull();
    expect(applyDeltas({ monthly: 5, purchased: 5 }, { monthly: -5, purchased: -5 })).toEqual({
      monthly: 0,
      purchased: 0,
    });
  });
});

describe("addOneMonth", () => {
  it("keeps the day of month", () => {
    expect(new Date(addOneMonth(Date.UTC(2026, 0, 15, 10))).toISOString()).toBe(
      "2026-02-15T10:00:00.000Z",
    );
  });
  it("clamps to the last day of a shorter month", () => {
    expect(new Date(addOneMonth(Date.UTC(2026, 0, 31))).toISOString()).toBe(
      "2026-02-28T00:00:00.000Z",
    );
  });
  it("crosses a year", () => {
    expect(new Date(addOneMonth(Date.UTC(2026, 11, 5))).toISOString()).toBe(
      "2027-01-05T00:00:00.000Z",
    );
  });
});
