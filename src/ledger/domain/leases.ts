/**
 * Escrow leases (docs/ledger-shards.md): the pure decisions of the bank (the account's ledger)
 * and of its shards. No I/O. The invariant they keep, per bucket: the bank's live balance plus
 * every open lease's grant is the account's balance as of the last reports.
 */
import { type Buckets, splitDebit } from "./rules";

/** The most credits one lease holds: a dead shard holds at most this many. */
export const LEASE_MAX = 1_000;
/** A lease's lifetime; the bank recalls it when it expires. */
export const LEASE_TTL_MS = 30_000;
/** A shard stops spending a lease this long before it expires, and returns it. */
export const LEASE_MARGIN_MS = 5_000;
/** The bank retries a recall it could not deliver (the shard unreachable) this much later. */
export const RECALL_RETRY_MS = 30_000;
/** The most shards an account may have. */
export const MAX_SHARDS = 16;

/** A lease as the bank granted it. */
export interface Lease extends Buckets {
  id: string;
  expiresAt: number;
}

/** One (minute, key) line of a shard's report: gross debits and what was refunded of them. */
export interface ReportRow {
  minute: number;
  key_id: string;
  requests: number;
  monthly: number;
  purchased: number;
}

/** One refund a shard applied to a debit of the lease (`refund:<ref>` at the bank). */
export interface ReportRefund extends Buckets {
  ref: string;
  minute: number;
  key_id: string;
}

/** What a shard spent of one lease, sent once when the lease closes. */
export interface LeaseReport {
  rows: ReportRow[];
  refunds: ReportRefund[];
}

export const EMPTY_REPORT: LeaseReport = { rows: [], refunds: [] };

/**
 * How much the bank grants: at most `want`, `LEASE_MAX` and half of what it holds divided by
 * the shard count (so it always keeps half, and leases shrink geometrically near zero), monthly
 * first (money rule 3). Null, a grant of nothing, when that would not cover `cost`: the shard
 * then forwards the request to the bank, which contends the last credits exactly.
 */
export function leaseGrant(
  available: Buckets,
  input: { want: number; cost: number; shards: number },
): Buckets | null {
  const shards = Math.max(1, Math.min(MAX_SHARDS, Math.floor(input.shards)));
  const total = available.monthly + available.purchased;
  const size = Math.min(input.want, LEASE_MAX, Math.floor(total / (2 * shards)));
  if (size <= 0 || size < input.cost) return null;
  return splitDebit(available, size);
}

/** The report's totals per bucket: gross debits, and refunds. */
export function reportTotals(report: LeaseReport): { gross: Buckets; refunded: Buckets } {
  const gross = { monthly: 0, purchased: 0 };
  for (const r of report.rows) {
    gross.monthly += r.monthly;
    gross.purchased += r.purchased;
  }
  const refunded = { monthly: 0, purchased: 0 };
  for (const r of report.refunds) {
    refunded.monthly += r.monthly;
    refunded.purchased += r.purchased;
  }
  return { gross, refunded };
}

/**
 * Whether a report can be settled against its lease: every amount a non-negative integer, no
 * refund twice, refunds within what was debited, and what was spent net within the grant per
 * bucket (a shard can never have spent more than it was leased, money rules 1 and 2).
 */
export function reportFits(lease: Buckets, report: LeaseReport): boolean {
  const whole = (n: number) => Number.isSafeInteger(n) && n >= 0;
  if (!report.rows.every((r) => whole(r.requests) && whole(r.monthly) && whole(r.purchased)))
    return false;
  if (!report.refunds.every((r) => whole(r.monthly) && whole(r.purchased))) return false;
  if (new Set(report.refunds.map((r) => r.ref)).size !== report.refunds.length) return false;
  const { gross, refunded } = reportTotals(report);
  if (refunded.monthly > gross.monthly || refunded.purchased > gross.purchased) return false;
  return (
    gross.monthly - refunded.monthly <= lease.monthly &&
    gross.purchased - refunded.purchased <= lease.purchased
  );
}

/** The account-wide buckets: the bank's live balance plus every open lease's grant. */
export function accountWide(bank: Buckets, open: readonly Buckets[]): Buckets {
  let monthly = bank.monthly;
  let purchased = bank.purchased;
  for (const l of open) {
    monthly += l.monthly;
    purchased += l.purchased;
  }
  return { monthly, purchased };
}

/** What a shard may still spend of its lease: granted, less spent, plus refunded. */
export function leaseRemaining(granted: Buckets, spent: Buckets, refunded: Buckets): Buckets {
  return {
    monthly: granted.monthly - spent.monthly + refunded.monthly,
    purchased: granted.purchased - spent.purchased + refunded.purchased,
  };
}

/**
 * A shard's debit on its lease: monthly first, all or nothing (`splitDebit`), and only while
 * the lease is not within `LEASE_MARGIN_MS` of its expiry (the bank may recall it then).
 */
export function shardTake(
  remaining: Buckets,
  expiresAt: number,
  cost: number,
  now: number,
): Buckets | null {
  if (now >= expiresAt - LEASE_MARGIN_MS) return null;
  return splitDebit(remaining, cost);
}

/** Which shard a request goes to: one of `n`, uniformly (`random` in [0, 1)). */
export function pickShard(n: number, random: number): number {
  const shards = Math.max(1, Math.min(MAX_SHARDS, Math.floor(n)));
  return Math.min(shards - 1, Math.floor(random * shards));
}

/**
 * A shard's part of the account's per-minute rate limit: requests spread evenly over the
 * shards, so each lets through its share, rounded up (approximate by design).
 */
export function shardRateLimit(limit: number, shards: number): number {
  return Math.ceil(limit / Math.max(1, Math.min(MAX_SHARDS, Math.floor(shards))));
}
