/**
 * Escrow leases applied at the bank (docs/ledger-shards.md): a grant takes credits out of the
 * buckets as the entry `lease:<id>`; a close gives the whole grant back as `lease-close:<id>`,
 * writes the shard's gross debits into the minute aggregates and each refund the shard made as
 * `refund:<debit>`, so replay (money rule 4) reads leases as it reads everything else. Inside
 * the object's `transactionSync`; the auto-recharge trigger follows on the account-wide total.
 */
import { rateLimitOf } from "../domain/decisions";
import { addEffects } from "../domain/effects";
import {
  accountWide,
  LEASE_TTL_MS,
  type Lease,
  type LeaseReport,
  leaseGrant,
  reportFits,
} from "../domain/leases";
import { type Buckets, debitMinute, liveBalance, ringNeedsSettling } from "../domain/rules";
import type { StateRow } from "../domain/types";
import { lowBalanceFollowUp, rechargeFollowUp } from "../follow-ups";
import { openDebits, recordShardDebits, settleMinutes } from "../store/aggregates";
import { appendEntry, hasEntry } from "../store/entries";
import { closeLease, findLease, insertLease, type LeaseRow, openLeases } from "../store/leases";
import { loadRevokedKeys } from "../store/revoked-keys";
import { addToBuckets, readStateRow } from "../store/state";
import { currentState, type Tx } from "../tx";

export interface LeaseTakeInput {
  /** Chosen by the shard and stored there before it asks: a retried take is a replay. */
  id: string;
  shard: number;
  shards: number;
  want: number;
  cost: number;
}

export type LeaseTakeResult =
  /**
   * `bankTotal`: the bank's own live credits after the grant; `revoked`: keys the shard
   * refuses; `rateLimit`: the account's requests per minute, which the shards share.
   */
  | { ok: true; lease: Lease; bankTotal: number; revoked: string[]; rateLimit: number }
  /** Nothing granted (near zero, suspended), or the lease was already closed: not refusals. */
  | { ok: false; closed: boolean };

export interface LeaseCloseInput {
  id: string;
  report: LeaseReport;
}

export type LeaseCloseResult = { ok: true; replayed: boolean };

/** The trigger, decided on the bank's live balance plus every open lease (once: `pending`). */
function followAccountWide(tx: Tx, s: StateRow): void {
  const open = openLeases(tx.sql);
  const wide = accountWide(s, open);
  addEffects(tx.fx, rechargeFollowUp(tx.sql, { ...s, ...wide }, tx.now));
}

function leaseOf(row: LeaseRow): Lease {
  return { id: row.id, monthly: row.monthly, purchased: row.purchased, expiresAt: row.expires_at };
}

export function applyLeaseTake(tx: Tx, input: LeaseTakeInput): LeaseTakeResult {
  const { sql, now } = tx;
  const known = findLease(sql, input.id);
  if (known) {
    const s = currentState(tx);
    if (known.closed_at !== null || !s) return closed();
    const bank = s.monthly + s.purchased;
    return { ok: true, lease: leaseOf(known), bankTotal: bank, ...shardRules(sql, s) };
  }
  const s = currentState(tx);
  // A suspended account's shards get nothing: its requests reach the bank, which refuses them.
  if (!s || s.suspended_at !== null) return { ok: false, closed: false };
  const grant = leaseGrant(s, input);
  if (!grant) return { ok: false, closed: false };
  const lease = { id: input.id, ...grant, expiresAt: now + LEASE_TTL_MS };
  insertLease(sql, { ...lease, shard: input.shard });
  appendEntry(
    sql,
    {
      ref: `lease:${lease.id}`,
      kind: "lease",
      monthly: -grant.monthly,
      purchased: -grant.purchased,
      at: now,
    },
    `shard ${input.shard}`,
  );
  addToBuckets(sql, -grant.monthly, -grant.purchased);
  followAccountWide(tx, {
    ...s,
    monthly: s.monthly - grant.monthly,
    purchased: s.purchased - grant.purchased,
  });
  const bank = s.monthly + s.purchased - grant.monthly - grant.purchased;
  return { ok: true, lease, bankTotal: bank, ...shardRules(sql, s) };
}

/** What a shard enforces itself: the revoked keys (a handful) and the account's rate limit. */
function shardRules(sql: SqlStorage, s: StateRow): { revoked: string[]; rateLimit: number } {
  return { revoked: [...loadRevokedKeys(sql)], rateLimit: rateLimitOf(s) };
}

function closed(): LeaseTakeResult {
  return { ok: false, closed: true };
}

/**
 * Settles a lease once: a replayed close (the shard retrying after a lost reply) adds nothing.
 * A report that does not fit its lease is refused by throwing (the transaction rolls back and
 * the lease stays open): it can come only from a bug, never from a client.
 */
export function applyLeaseClose(tx: Tx, input: LeaseCloseInput): LeaseCloseResult {
  const { sql, now } = tx;
  const lease = findLease(sql, input.id);
  // Unknown: never granted (a take the bank refused), or closed long ago.
  if (!lease || lease.closed_at !== null) return { ok: true, replayed: true };
  if (!reportFits(lease, input.report))
    throw new Error(`lease ${lease.id}: report exceeds the lease`);
  const s = currentState(tx);
  if (!s) throw new Error("unreachable: a lease exists only on an initialized ledger");
  // The minute a debit of now counts in (never one settled already: `debitMinute`).
  const nowMinute = debitMinute(now, s.compacted_until);
  // As a debit would (`applyDebit`): no checkpoint for a day, so settle before reusing a slot.
  const settleFirst = ringNeedsSettling(nowMinute, s.compacted_until);
  if (settleFirst) settleMinutes(sql, s.compacted_until, nowMinute, Math.floor(now / 1000));
  const settledUntil = settleFirst ? nowMinute : s.compacted_until;
  const rows = new Map<
    string,
    { minute: number; key_id: string; requests: number; refunds: number } & Buckets & {
        refunded: Buckets;
      }
  >();
  // Each debit stays in its own minute while that minute is open; else the report's minute.
  const minuteFor = (m: number) => (m >= settledUntil && m <= nowMinute ? m : nowMinute);
  const rowFor = (minute: number, key_id: string) => {
    const k = `${minute}:${key_id}`;
    const r = rows.get(k) ?? {
      minute,
      key_id,
      requests: 0,
      refunds: 0,
      monthly: 0,
      purchased: 0,
      refunded: { monthly: 0, purchased: 0 },
    };
    rows.set(k, r);
    return r;
  };
  for (const r of input.report.rows) {
    const row = rowFor(minuteFor(r.minute), r.key_id);
    row.requests += r.requests;
    row.monthly += r.monthly;
    row.purchased += r.purchased;
  }
  let back = { monthly: lease.monthly, purchased: lease.purchased };
  for (const f of input.report.refunds) {
    // A refund already entered (the bank refunded the same debit) is not given twice.
    if (hasEntry(sql, `refund:${f.ref}`)) continue;
    appendEntry(
      sql,
      {
        ref: `refund:${f.ref}`,
        kind: "refund",
        monthly: f.monthly,
        purchased: f.purchased,
        at: now,
      },
      "shard",
    );
    const row = rowFor(minuteFor(f.minute), f.key_id);
    row.refunds += 1;
    row.refunded.monthly += f.monthly;
    row.refunded.purchased += f.purchased;
    back = { monthly: back.monthly + f.monthly, purchased: back.purchased + f.purchased };
  }
  for (const row of rows.values()) recordShardDebits(sql, row);
  appendEntry(
    sql,
    {
      ref: `lease-close:${lease.id}`,
      kind: "lease",
      monthly: lease.monthly,
      purchased: lease.purchased,
      at: now,
    },
    `shard ${lease.shard}`,
  );
  addToBuckets(sql, back.monthly, back.purchased);
  closeLease(sql, lease.id, now);
  // Read afresh: memory's open debits do not hold the rows written just now.
  const row = readStateRow(sql);
  if (!row) return { ok: true, replayed: false };
  const open = openDebits(sql, row.compacted_until);
  followAccountWide(tx, { ...row, ...liveBalance(row, open) });
  // What the shard spent is the account's now: the low-balance alert follows, as for a debit.
  addEffects(tx.fx, lowBalanceFollowUp({ sql, open, now }, true));
  return { ok: true, replayed: false };
}
