import { describe, expect, it } from "vitest";
import { rateLimitHeaders } from "../../src/gateway/rate-limit";
import { takeFromWindow } from "../../src/ledger/domain/rate-window";

describe("takeFromWindow: a fixed one-minute window per key", () => {
  it("lets `limit` requests through per window and refuses the next", () => {
    const w = { start: 0, count: 0 };
    const t0 = 1_800_000_000_000; // on a minute boundary
    const decisions = Array.from({ length: 4 }, () => takeFromWindow(w, t0 + 1_000, 3));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([2, 1, 0, 0]);
    expect(decisions[3]?.resetSeconds).toBe(59);
  });
  it("starts over in the next window", () => {
    const w = { start: 0, count: 0 };
    const t0 = 1_800_000_000_000;
    for (let i = 0; i < 3; i++) takeFromWindow(w, t0, 3);
    expect(takeFromWindow(w, t0 + 59_999, 3).allowed).toBe(false);
    expect(takeFromWindow(w, t0 + 60_000, 3)).toMatchObject({
      allowed: true,
      remaining: 2,
      resetSeconds: 60,
    });
  });
  it("formats the IETF draft headers", () => {
    expect(
      rateLimitHeaders({ allowed: false, limit: 60, remaining: 0, resetSeconds: 12 }),
    ).toMatchObject({
      "RateLimit-Policy": '"per-account";q=60;w=60',
      RateLimit: '"per-account";r=0;t=12',
    });
  });
});
