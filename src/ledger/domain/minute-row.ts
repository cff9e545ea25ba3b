/**
 * One account-minute of request debits as one row (schema 10): the account's sums in columns
 * and, in a JSON column `keys`, the same sums for each named key. The debits no key made (an
 * operator's, and every debit from before per-key usage) are the remainder: the columns less
 * the named keys, shown under key "". So a write of any number of debits of any keys is one
 * row, and nothing but the columns is ever needed for the balance (replay, the open debits).
 *
 * Pure: the shapes, the batch of deltas a group commit writes, and the rules that read or
 * change a row a refund touches (test/unit/minute-row.test.ts).
 */
import type { Buckets } from "./rules";

/** One key's sums in a minute, in this order in the `keys` JSON (short: a row per minute). */
export interface Counts {
  requests: number;
  credits: number;
  debit_monthly: number;
  debit_purchased: number;
  refunded_monthly: number;
  refunded_purchased: number;
}

export type KeyCounts = [number, number, number, number, number, number];

export interface MinuteRow extends Counts {
  minute: number;
  /** Named keys only (never ""); the remainder of the columns is key "". */
  keys: Record<string, Counts>;
}

/** A row's counts before any debit. */
export const ZERO: Counts = {
  requests: 0,
  credits: 0,
  debit_monthly: 0,
  debit_purchased: 0,
  refunded_monthly: 0,
  refunded_purchased: 0,
};

export function toArray(c: Counts): KeyCounts {
  return [
    c.requests,
    c.credits,
    c.debit_monthly,
    c.debit_purchased,
    c.refunded_monthly,
    c.refunded_purchased,
  ];
}

function fromArray(a: readonly number[]): Counts {
  return {
    requests: a[0] ?? 0,
    credits: a[1] ?? 0,
    debit_monthly: a[2] ?? 0,
    debit_purchased: a[3] ?? 0,
    refunded_monthly: a[4] ?? 0,
    refunded_purchased: a[5] ?? 0,
  };
}

/** The `keys` column read back (`{"key_a":[requests, credits, dm, dp, rm, rp], …}`). */
export function parseKeys(json: string | null): Record<string, Counts> {
  const out: Record<string, Counts> = {};
  if (!json) return out;
  for (const [k, v] of Object.entries(JSON.parse(json) as Record<string, number[]>))
    out[k] = fromArray(v);
  return out;
}

export function keysJson(keys: Record<string, Counts>): string {
  const out: Record<string, KeyCounts> = {};
  for (const [k, c] of Object.entries(keys)) out[k] = toArray(c);
  return JSON.stringify(out);
}

function minus(a: Counts, b: Counts): Counts {
  return {
    requests: a.requests - b.requests,
    credits: a.credits - b.credits,
    debit_monthly: a.debit_monthly - b.debit_monthly,
    debit_purchased: a.debit_purchased - b.debit_purchased,
    refunded_monthly: a.refunded_monthly - b.refunded_monthly,
    refunded_purchased: a.refunded_purchased - b.refunded_purchased,
  };
}

function plus(a: Counts, b: Counts): Counts {
  return minus(a, minus(ZERO, b));
}

const isZero = (c: Counts) => toArray(c).every((n) => n === 0);

/** The debits no named key made: the columns less every named key. */
export function remainder(row: MinuteRow): Counts {
  return Object.values(row.keys).reduce(minus, row as Counts);
}

/**
 * The row as one entry per key, as the per-key tables (hours, days) and usage by key hold
 * them: every named key, and "" for the remainder when it holds anything.
 */
export function perKey(row: MinuteRow): Array<Counts & { key_id: string }> {
  const out = Object.entries(row.keys).map(([key_id, c]) => ({ ...c, key_id }));
  const rest = remainder(row);
  if (!isZero(rest)) out.unshift({ ...rest, key_id: "" });
  return out;
}

// ---------------------------------------------------------------- a refund's change to a row

/**
 * A refunded debit taken out of its minute, guarded as before one row per minute: the key's
 * share (the remainder for "") must still hold a request and, per bucket, at least what the
 * refund returns net of earlier refunds, so no refund returns more than its minute took.
 * Null: it cannot pay it back (an unknown debit, or one already refunded).
 */
export function takeBack(row: MinuteRow, keyId: string, charge: Buckets): MinuteRow | null {
  const own = keyId === "" ? remainder(row) : row.keys[keyId];
  if (!own || own.requests < 1) return null;
  if (own.debit_monthly - own.refunded_monthly < charge.monthly) return null;
  if (own.debit_purchased - own.refunded_purchased < charge.purchased) return null;
  const back: Counts = {
    ...ZERO,
    requests: -1,
    credits: -(charge.monthly + charge.purchased),
    refunded_monthly: charge.monthly,
    refunded_purchased: charge.purchased,
  };
  return withDelta(row, keyId, back);
}

/**
 * A request refunded from its settled hour leaves the minute it is still shown in (usage only:
 * the balance is the hour's business then). Never below zero.
 */
export function leaveMinute(row: MinuteRow, keyId: string, credits: number): MinuteRow {
  const own = keyId === "" ? remainder(row) : (row.keys[keyId] ?? ZERO);
  const back: Counts = {
    ...ZERO,
    requests: -Math.min(1, Math.max(own.requests, 0)),
    credits: -Math.min(credits, Math.max(own.credits, 0)),
  };
  return withDelta(row, keyId, back);
}

/**
 * A shard's refunds of one key in a minute (its lease's report, checked against what the
 * lease spent before it is closed), taken out of the row its debits were just added to.
 */
export function refundedAtShard(
  row: MinuteRow,
  keyId: string,
  refunds: number,
  refunded: Buckets,
): MinuteRow {
  const back: Counts = {
    ...ZERO,
    requests: -refunds,
    credits: -(refunded.monthly + refunded.purchased),
    refunded_monthly: refunded.monthly,
    refunded_purchased: refunded.purchased,
  };
  return withDelta(row, keyId, back);
}

function withDelta(row: MinuteRow, keyId: string, delta: Counts): MinuteRow {
  const keys = { ...row.keys };
  const own = keys[keyId];
  if (keyId !== "" && own) keys[keyId] = plus(own, delta);
  return { ...plus(row, delta), minute: row.minute, keys };
}

// ---------------------------------------------------------------- the batch a commit writes

/** What one write adds to one minute's row: the account's sums and each named key's. */
export interface MinuteDelta {
  minute: number;
  requests: number;
  monthly: number;
  purchased: number;
  keys: Map<string, { requests: number; monthly: number; purchased: number }>;
}

/** A delta's sums as a row's counts (nothing refunded). */
function debited(d: { requests: number; monthly: number; purchased: number }): Counts {
  return {
    ...ZERO,
    requests: d.requests,
    credits: d.monthly + d.purchased,
    debit_monthly: d.monthly,
    debit_purchased: d.purchased,
  };
}

/**
 * The minute's row after a write of `delta`, from the row as stored before it: what the
 * ledger's merging UPSERT computes in SQL (store/minute-writes.ts), computed here instead
 * when the object knows the row, so the write is a plain one.
 */
export function addDelta(row: MinuteRow, delta: MinuteDelta): MinuteRow {
  const keys = { ...row.keys };
  for (const [keyId, k] of delta.keys) keys[keyId] = plus(keys[keyId] ?? ZERO, debited(k));
  return { ...plus(row, debited(delta)), minute: row.minute, keys };
}

/**
 * Adds one debit to the batch's deltas, per minute (a batch rarely spans two). `keyId` ""
 * (a debit no key made) adds to the account's sums only: it is the remainder.
 */
export function addToBatch(
  batch: Map<number, MinuteDelta>,
  minute: number,
  keyId: string,
  take: Buckets,
): void {
  let d = batch.get(minute);
  if (!d) {
    d = { minute, requests: 0, monthly: 0, purchased: 0, keys: new Map() };
    batch.set(minute, d);
  }
  d.requests += 1;
  d.monthly += take.monthly;
  d.purchased += take.purchased;
  if (keyId === "") return;
  const k = d.keys.get(keyId) ?? { requests: 0, monthly: 0, purchased: 0 };
  k.requests += 1;
  k.monthly += take.monthly;
  k.purchased += take.purchased;
  d.keys.set(keyId, k);
}

/**
 * The JSON path of a key in `keys` (SQLite: `$."label"`, which cannot hold a quote). Key ids
 * are ours (`newId("key")`), so a quote is a bug, refused rather than written elsewhere.
 */
export function keyPath(keyId: string): string {
  if (keyId.includes('"')) throw new Error("a key id with a quote cannot be a JSON label");
  return `$."${keyId}"`;
}
