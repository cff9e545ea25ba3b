import { describe, expect, it } from "vitest";
import {
  accountWide,
  LEASE_MARGIN_MS,
  LEASE_MAX,
  leaseGrant,
  leaseRemaining,
  pickShard,
  reportFits,
  shardRateLimit,
  shardTake,
} from "../../src/ledger/domain/leases";

describe("leaseGrant: escrow leases shrink near zero (docs/ledger-shards.md)", () => {
  it("grants at most LEASE_MAX far from zero, monthly first", () => {
    expect(
      leaseGrant({ monthly: 50_000, purchased: 50_000 }, { want: 5_000, cost: 1, shards: 4 }),
    ).toEqual({
      monthly: LEASE_MAX,
      purchased: 0,
    });
  });
  it("spills into purchased only for what monthly cannot cover (money rule 3)", () => {
    expect(
      leaseGrant({ monthly: 300, purchased: 9_700 }, { want: 5_000, cost: 1, shards: 4 }),
    ).toEqual({
      monthly: 300,
      purchased: 700,
    });
  });
  it("keeps half of the bank's credits and divides the rest by the shard count", () => {
    expect(leaseGrant({ monthly: 80, purchased: 0 }, { want: 1_000, cost: 1, shards: 4 })).toEqual({
      monthly: 10,
      purchased: 0,
    });
  });
  it("grants nothing once a lease would not cover the request: the bank decides it", () => {
    expect(
      leaseGrant({ monthly: 7, purchased: 0 }, { want: 1_000, cost: 1, shards: 4 }),
    ).toBeNull();
    expect(
      leaseGrant({ monthly: 40, purchased: 0 }, { want: 1_000, cost: 6, shards: 4 }),
    ).toBeNull();
    expect(
      leaseGrant({ monthly: 0, purchased: 0 }, { want: 1_000, cost: 0, shards: 2 }),
    ).toBeNull();
  });
});

describe("reportFits: a shard never spent more than it was leased", () => {
  const lease = { monthly: 10, purchased: 5 };
  const row = (monthly: number, purchased: number) => ({
    minute: 60,
    key_id: "k",
    requests: 1,
    monthly,
    purchased,
  });
  it("accepts spending within the grant, refunds within the debits", () => {
    expect(reportFits(lease, { rows: [row(10, 5)], refunds: [] })).toBe(true);
    const refund = { ref: "d1", minute: 60, key_id: "k", monthly: 3, purchased: 0 };
    expect(reportFits(lease, { rows: [row(10, 5), row(3, 0)], refunds: [refund] })).toBe(true);
  });
  it("refuses overspending per bucket, a refund twice, or more refunded than debited", () => {
    expect(reportFits(lease, { rows: [row(11, 0)], refunds: [] })).toBe(false);
    expect(reportFits(lease, { rows: [row(0, 6)], refunds: [] })).toBe(false);
    const r = { ref: "d1", minute: 60, key_id: "k", monthly: 1, purchased: 0 };
    expect(reportFits(lease, { rows: [row(2, 0)], refunds: [r, r] })).toBe(false);
    expect(reportFits(lease, { rows: [row(0, 0)], refunds: [r] })).toBe(false);
    expect(reportFits(lease, { rows: [row(-1, 0)], refunds: [] })).toBe(false);
  });
});

describe("shard debits", () => {
  it("take from the lease monthly first, all or nothing", () => {
    const left = leaseRemaining(
      { monthly: 5, purchased: 5 },
      { monthly: 4, purchased: 0 },
      { monthly: 1, purchased: 0 },
    );
    expect(left).toEqual({ monthly: 2, purchased: 5 });
    expect(shardTake(left, 100_000, 3, 0)).toEqual({ monthly: 2, purchased: 1 });
    expect(shardTake(left, 100_000, 8, 0)).toBeNull();
  });
  it("stop before the lease expires, so the bank can recall it safely", () => {
    const left = { monthly: 5, purchased: 0 };
    expect(shardTake(left, 100_000, 1, 100_000 - LEASE_MARGIN_MS - 1)).not.toBeNull();
    expect(shardTake(left, 100_000, 1, 100_000 - LEASE_MARGIN_MS)).toBeNull();
  });
  it("the account-wide total is the bank plus every open lease", () => {
    expect(
      accountWide({ monthly: 1, purchased: 2 }, [
        { monthly: 3, purchased: 4 },
        { monthly: 5, purchased: 0 },
      ]),
    ).toEqual({
      monthly: 9,
      purchased: 6,
    });
  });
  it("requests spread over every shard, none outside", () => {
    expect(pickShard(4, 0)).toBe(0);
    expect(pickShard(4, 0.999_999)).toBe(3);
    expect(pickShard(1, 0.7)).toBe(0);
    expect(pickShard(40, 0.999)).toBe(15);
  });
  it("each shard lets through its part of the account's rate limit, rounded up", () => {
    expect(shardRateLimit(60, 4)).toBe(15);
    expect(shardRateLimit(61, 4)).toBe(16);
    expect(shardRateLimit(60, 1)).toBe(60);
  });
});
