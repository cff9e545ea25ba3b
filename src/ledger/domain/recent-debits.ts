/**
 * The debits this object committed lately, in memory only: what lets the ledger answer, for a
 * debit whose reply the gateway never got, whether it committed (and what it took) without a
 * row per debit. The hot path only adds to a Map; storage is written on the failure path alone
 * (the refund, or the `void:<debit>` entry that records a debit that never committed).
 *
 * Memory covers the time since this object started (a restart forgets) and at most
 * `RECENT_DEBIT_MS` back; a question about a debit sent before that is answered `unknown`.
 */
import { wholeMs } from "../../platform/vars";
import type { DebitCharge } from "./types";

/** How long a committed debit is remembered: the gateway asks at once, the queue within minutes. */
export const RECENT_DEBIT_MS = 10 * 60_000;
/** At most this many remembered (about 100 bytes each), whatever the traffic. */
export const RECENT_DEBIT_MAX = 20_000;
/**
 * How far apart the gateway's and this object's clocks may be. A debit sent this close to the
 * start of memory may have run just before it, in the previous instance: `unknown`, not "never".
 */
export const CLOCK_MARGIN_MS = 1_000;

/** `LEDGER_CLOCK_MARGIN_MS` when it is a whole number of ms, else the default. */
export function clockMarginMs(configured: string | undefined): number {
  return wholeMs(configured, CLOCK_MARGIN_MS);
}

export type UnansweredDebit =
  | { outcome: "committed"; charge: DebitCharge }
  | { outcome: "never_committed" }
  | { outcome: "unknown" };

/**
 * The rule for a debit the gateway sent at `sentAt` (its clock) and got no reply to: in memory,
 * it committed; absent while memory covers its whole life (it started before the debit was sent,
 * with the clock margin), it never did; otherwise no one can tell.
 */
export function unansweredDebitOutcome(input: {
  remembered: DebitCharge | null;
  memorySince: number;
  sentAt: number;
  marginMs: number;
}): UnansweredDebit {
  if (input.remembered) return { outcome: "committed", charge: input.remembered };
  if (input.memorySince + input.marginMs < input.sentAt) return { outcome: "never_committed" };
  return { outcome: "unknown" };
}

export class RecentDebits {
  private readonly byRef = new Map<string, DebitCharge>();
  /** On a shard: the lease each remembered debit was taken from (docs/ledger-shards.md). */
  private readonly leases = new Map<string, string>();
  /**
   * The remembered refs and their times, oldest first, in a ring: forgetting the oldest is
   * O(1). Not the Map's own order: a Map iterated from its start after deletions there skips
   * every deleted slot until V8 rehashes it, which at the cap cost each `remember` microseconds
   * (docs/performance.md).
   */
  private readonly refs: string[] = [];
  private readonly ats: number[] = [];
  private head = 0;
  private size = 0;
  /** Refs declared never committed: a late delivery of one is refused, not charged. */
  private readonly voided = new Set<string>();
  /** The time from which every committed debit is in `byRef`. */
  private since: number;

  constructor(
    now: number,
    private readonly max = RECENT_DEBIT_MAX,
  ) {
    this.since = now;
  }

  get memorySince(): number {
    return this.since;
  }

  /** After the debit's commit: O(1), and the oldest ones are forgotten as new ones come. */
  remember(ref: string, charge: DebitCharge, now: number, lease?: string): void {
    const known = this.byRef.has(ref);
    this.byRef.set(ref, charge);
    if (lease !== undefined) this.leases.set(ref, lease);
    if (known) return;
    for (;;) {
      const oldest = this.size > 0 ? this.ats[this.head] : undefined;
      if (oldest === undefined) break;
      if (this.size < this.max && oldest >= now - RECENT_DEBIT_MS) break;
      const forgotten = this.refs[this.head] ?? "";
      this.byRef.delete(forgotten);
      if (this.leases.size > 0) this.leases.delete(forgotten);
      this.since = Math.max(this.since, oldest);
      this.head = (this.head + 1) % this.max;
      this.size--;
    }
    const slot = (this.head + this.size) % this.max;
    this.refs[slot] = ref;
    this.ats[slot] = now;
    this.size++;
  }

  charge(ref: string): DebitCharge | null {
    return this.byRef.get(ref) ?? null;
  }

  /** The lease a remembered debit was taken from; null if none was given or it is forgotten. */
  lease(ref: string): string | null {
    return this.leases.get(ref) ?? null;
  }

  void(ref: string): void {
    this.voided.add(ref);
  }

  isVoided(ref: string): boolean {
    return this.voided.size > 0 && this.voided.has(ref);
  }
}
