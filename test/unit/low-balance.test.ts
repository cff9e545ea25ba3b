import { describe, expect, it } from "vitest";
import { lowBalance } from "../../src/delivery/email-templates";
import { lowBalanceSituation, lowBalanceStep } from "../../src/ledger/domain/low-balance";
import { DEFAULT_BRAND } from "../../src/platform/brand";
import { PACKAGES } from "../../src/pricing";

describe("lowBalanceStep: one email per crossing of the level", () => {
  it("alerts when armed and the total reaches the level exactly", () => {
    expect(lowBalanceStep({ level: 50, armed: true, total: 50 })).toBe("alert");
  });
  it("alerts when armed and the total falls below the level", () => {
    expect(lowBalanceStep({ level: 50, armed: true, total: 3 })).toBe("alert");
  });
  it("does nothing while armed and above the level", () => {
    expect(lowBalanceStep({ level: 50, armed: true, total: 51 })).toBeNull();
  });
  it("does nothing while disarmed and still at or below the level (no second email)", () => {
    expect(lowBalanceStep({ level: 50, armed: false, total: 50 })).toBeNull();
    expect(lowBalanceStep({ level: 50, armed: false, total: 0 })).toBeNull();
  });
  it("arms again once the total is above the level", () => {
    expect(lowBalanceStep({ level: 50, armed: false, total: 51 })).toBe("arm");
  });
  it("does nothing without a level, armed or not", () => {
    expect(lowBalanceStep({ level: null, armed: true, total: 0 })).toBeNull();
    expect(lowBalanceStep({ level: null, armed: false, total: 1_000 })).toBeNull();
  });
  it("a level of 0 alerts when the balance runs out", () => {
    expect(lowBalanceStep({ level: 0, armed: true, total: 0 })).toBe("alert");
    expect(lowBalanceStep({ level: 0, armed: false, total: 1 })).toBe("arm");
  });
});

const base = {
  autoEnabled: false,
  package: PACKAGES.credits_3000,
  threshold: 100,
  pending: false,
  pausedThisMonth: false,
  nextFits: true,
  limitCents: 20_000 as number | null,
  resumesAt: "2026-02-01T00:00:00.000Z",
  lastFailure: null as {
    kind: "auto_recharge" | "top_up";
    code: string;
    message: string;
    actionUrl: string | null;
  } | null,
};
const declined = {
  kind: "auto_recharge" as const,
  code: "card_declined",
  message: "Your card was declined.",
  actionUrl: null,
};

describe("lowBalanceSituation: which wording, from auto-recharge at the crossing", () => {
  it("on: the package it will buy at the threshold", () => {
    expect(lowBalanceSituation({ ...base, autoEnabled: true })).toEqual({
      auto_recharge: "on",
      package: "credits_3000",
      credits: 3_000,
      amount_cents: 1_700,
      pending: false,
      threshold: 100,
    });
  });
  it("on with a recharge in flight, even when no further package fits the limit", () => {
    expect(
      lowBalanceSituation({ ...base, autoEnabled: true, pending: true, nextFits: false }),
    ).toMatchObject({ auto_recharge: "on", pending: true });
  });
  it("paused: this month is paused by the spending limit", () => {
    expect(lowBalanceSituation({ ...base, autoEnabled: true, pausedThisMonth: true })).toEqual({
      auto_recharge: "paused",
      limit_cents: 20_000,
      resumes_at: "2026-02-01T00:00:00.000Z",
    });
  });
  it("paused: on, but the next package would go over the limit (it will pause at the threshold)", () => {
    expect(lowBalanceSituation({ ...base, autoEnabled: true, nextFits: false })).toMatchObject({
      auto_recharge: "paused",
    });
  });
  it("failed: off after a failed recharge, with its reason", () => {
    expect(lowBalanceSituation({ ...base, lastFailure: declined })).toEqual({
      auto_recharge: "failed",
      kind: "auto_recharge",
      code: "card_declined",
      message: "Your card was declined.",
      action_url: null,
    });
  });
  it("on again after a failure: the customer turned it back on, so it is on", () => {
    expect(
      lowBalanceSituation({ ...base, autoEnabled: true, lastFailure: declined }),
    ).toMatchObject({ auto_recharge: "on" });
  });
  it("off: never turned on, or turned off with no failure", () => {
    expect(lowBalanceSituation(base)).toEqual({ auto_recharge: "off" });
    expect(lowBalanceSituation({ ...base, pausedThisMonth: true, nextFits: false })).toEqual({
      auto_recharge: "off",
    });
  });
});

describe("the low-balance email's wording", () => {
  const mail = (situation: Parameters<typeof lowBalance>[0]["situation"]) =>
    lowBalance({
      brand: DEFAULT_BRAND,
      level: 50,
      total: 49,
      situation,
      dashboardUrl: "https://x.test/account",
    });
  it("on: no action needed", () => {
    const m = mail({
      auto_recharge: "on",
      package: "credits_1000",
      credits: 1_000,
      amount_cents: 700,
      pending: true,
      threshold: 100,
    });
    expect(m.subject).toBe("Low balance: 49 credits left (auto-recharge is on)");
    expect(m.text).toContain("Auto-recharge is buying 1,000 credits for $7.00");
    expect(m.text).toContain("No action is needed.");
    expect(m.text).toContain("at or below the low-balance level of 50 credits");
  });
  it("off: turn on auto-recharge or buy credits", () => {
    const m = mail({ auto_recharge: "off" });
    expect(m.subject).toMatch(/^Action needed/);
    expect(m.text).toContain("turn on auto-recharge or buy credits");
  });
  it("paused: raise the spending limit", () => {
    const m = mail({
      auto_recharge: "paused",
      limit_cents: 5_000,
      resumes_at: "2026-02-01T00:00:00.000Z",
    });
    expect(m.text).toContain("spending limit of $50.00");
    expect(m.text).toContain("raise or remove the spending limit");
    expect(m.text).toContain("2026-02-01");
  });
  it("failed: update the card, with the reason; or complete the authentication", () => {
    const card = mail({ ...declinedSituation(), action_url: null });
    expect(card.text).toContain("(card_declined: Your card was declined.)");
    expect(card.text).toContain("Update your payment method");
    const sca = mail({ ...declinedSituation(), action_url: "https://invoice.test/pay" });
    expect(sca.text).toContain("complete the authentication here: https://invoice.test/pay");
  });
  it("failed after a top-up: names the purchase, not auto-recharge", () => {
    const m = mail({ ...declinedSituation(), kind: "top_up", action_url: null });
    expect(m.subject).toContain("(your last credit purchase failed)");
    expect(m.text).toContain("Your last credit purchase did not go through");
  });
});

function declinedSituation() {
  return {
    auto_recharge: "failed" as const,
    kind: "auto_recharge" as const,
    code: "card_declined",
    message: "Your card was declined.",
  };
}
