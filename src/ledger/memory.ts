/**
 * What the account ledger holds in memory, written through: the state row as last read or
 * written, and the open debits (gross debits of the minutes not settled yet, plus the takes
 * waiting in the group commit's batch), so the live balance is `state − open` without a read.
 * A restarted object rebuilds both from storage; so does a failed batch write (debit-batch.ts).
 *
 * Every read of storage here flushes the pending batch first, so nothing the object reads or
 * decides outside the debit itself is ever ahead of, or behind, what is committed.
 */
import { DebitBatch, type LedgerWriteFailed, ledgerWrite } from "./debit-batch";
import { type DebitDecision, decideDebit } from "./domain/decisions";
import { type GroupCommitMode, joinsBatch } from "./domain/group-commit";
import { accountWide } from "./domain/leases";
import type { RateWindow } from "./domain/rate-window";
import { RecentDebits } from "./domain/recent-debits";
import { addBuckets, type Buckets, liveBalance, minuteOf } from "./domain/rules";
import type { StateRow } from "./domain/types";
import { openDebits } from "./store/aggregates";
import { readExhausted } from "./store/exhaustion";
import { openLeases } from "./store/leases";
import { LastMinuteRow } from "./store/minute-writes";
import { RevokedKeys } from "./store/revoked-keys";
import { readStateRow } from "./store/state";

const NONE: Buckets = { monthly: 0, purchased: 0 };
type Take = Extract<DebitDecision, { kind: "take" }>;

export class LedgerMemory {
  /** The state row as stored (settled buckets); null until `init`. */
  s: StateRow | null = null;
  /** Gross debits of the minutes from `s.compacted_until` on: the ring's, and the batch's. */
  open: Buckets = NONE;
  /** Debits decided and waiting for their shared write; null: group commit off. */
  private readonly batch: DebitBatch | null;
  /** Revoked key ids, read once per object from `revoked_keys` (a handful per account). */
  readonly revoked: RevokedKeys;
  /** The account's request window, all keys together; memory only (see rate-window.ts). */
  private readonly rateWindow: RateWindow = { start: 0, count: 0 };
  /** This instance's committed debits, for a gateway that lost a reply (recent-debits.ts). */
  readonly recent = new RecentDebits(Date.now());
  /** Whether this refusal episode already sent `credits.exhausted` (store/exhaustion.ts). */
  exhausted = false;
  /** The minute row last written: a guess each debit write checks (store/minute-writes.ts). */
  readonly lastMinute = new LastMinuteRow();

  constructor(
    private readonly storage: DurableObjectStorage,
    mode: GroupCommitMode,
    /** After each committed batch write (the object schedules its checkpoint). */
    committed: () => void,
    /** The object's clock (a test may set it): the minute whose row a reload seeds. */
    private readonly now: () => number = Date.now,
  ) {
    this.revoked = new RevokedKeys(storage.sql);
    const hooks = { committed, failed: () => this.reload() };
    this.batch =
      mode === "off" ? null : new DebitBatch(ledgerWrite(storage, this.lastMinute), mode, hooks);
  }

  /**
   * A debit decided on memory alone (`decideDebit`): the balance less the open debits, the
   * pending ones included, so rules 1–3 hold in arrival order. Revoked keys are loaded on the
   * first keyed debit only: an operator's debit reads nothing.
   */
  decide(cost: number, ref: string, keyId: string | undefined, now: number): DebitDecision {
    const voided = this.recent.isVoided(ref);
    const memory = { settled: this.s, open: this.open, voided, revoked: this.revoked };
    return decideDebit({ ...memory, window: this.rateWindow }, cost, keyId, now);
  }

  /** The pending debits written now; their failure, or null. */
  flush(): LedgerWriteFailed | null {
    return this.batch?.flush() ?? null;
  }

  /** Rebuilds memory from storage: the checkpoint (state row) and the open minutes after it. */
  reload(): void {
    this.flush();
    this.s = readStateRow(this.storage.sql);
    this.open = this.s ? openDebits(this.storage.sql, this.s.compacted_until) : NONE;
    this.exhausted = readExhausted(this.storage.sql);
    if (this.s) this.lastMinute.seed(this.storage.sql, minuteOf(this.now()));
  }

  /**
   * The state row read afresh (after the pending debits' write), with the live buckets as the
   * account's people see them: credits out on lease to its shards are still its own
   * (docs/ledger-shards.md). For views; decisions use `live()`.
   */
  current(): StateRow | null {
    this.flush();
    this.reread();
    if (!this.s) return null;
    return {
      ...this.s,
      ...accountWide(liveBalance(this.s, this.open), openLeases(this.storage.sql)),
    };
  }

  /** The state row read afresh, after a transaction that may have written it. */
  reread(): void {
    this.s = readStateRow(this.storage.sql);
  }

  /** The live balance memory holds; null until `init`. */
  live(): Buckets | null {
    return this.s ? liveBalance(this.s, this.open) : null;
  }

  /**
   * An answer decided on the balance less the pending takes: given once they are written, or
   * failed with them (at once when nothing is pending).
   */
  after<T>(answer: T): T | Promise<T> {
    return this.batch ? this.batch.after(answer) : answer;
  }

  /**
   * A decided debit joins the pending write when it may (`joinsBatch`): the next decision sees
   * its take at once, its caller gets `answer` once written. Null: the caller writes it alone
   * (after `flush`) and then calls `tookAlone`.
   */
  join<T>(d: Take, keyId: string, answer: T, committed: () => void): Promise<T> | null {
    if (!this.batch || !joinsBatch(d)) return null;
    this.open = addBuckets(this.open, d.take);
    return this.batch.take(d.minute, keyId, d.take, answer, committed);
  }

  /** A debit written alone committed: memory follows (re-read when it wrote more than its row). */
  tookAlone(d: Take): void {
    if (joinsBatch(d)) this.open = addBuckets(this.open, d.take);
    else this.reload();
  }
}
