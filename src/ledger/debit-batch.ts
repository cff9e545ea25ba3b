/**
 * Group commit for debits (issue 23), in the account ledger and in its escrow shards alike.
 * The object decides each debit in memory at once, in arrival order (money rules 1–3 as
 * before: the next decision's balance already lacks the takes waiting here), and hands the
 * decided delta to this batch. The batch writes every delta it holds at once (the object's
 * `write`: one row per minute, the keys inside it) when the flush comes, and only then answers
 * each caller. If the write throws, no caller is answered as charged: each gets
 * `LedgerWriteFailed` (503, as an unreachable ledger) and the object's memory is rebuilt from
 * storage (`failed`), the last committed state.
 *
 * Anything else that reads or writes the object's debits flushes first (`flush` is
 * synchronous), so no command, checkpoint, view or lease report ever sees memory ahead of
 * storage.
 */
import { FIRST_LONE, flushBy, type GroupCommitMode, loneAfter } from "./domain/group-commit";
import { addToBatch, type MinuteDelta } from "./domain/minute-row";
import type { Buckets } from "./domain/rules";
import { type LastMinuteRow, recordDebits, writtenInOneStatement } from "./store/minute-writes";

/** Writes a batch's deltas (one per minute) atomically, or throws and writes none of them. */
export type BatchWrite = (deltas: MinuteDelta[]) => void;

/**
 * The ledger's write: one minute's row is one statement, atomic on its own; more (a batch
 * across a minute's end) go in one `transactionSync`. `last` learns the row it wrote only once
 * it committed.
 */
export function ledgerWrite(storage: DurableObjectStorage, last: LastMinuteRow): BatchWrite {
  return (deltas) => {
    try {
      const [only, more] = deltas;
      if (only && !more && writtenInOneStatement(only)) recordDebits(storage.sql, only, last);
      else if (only)
        storage.transactionSync(() => {
          for (const delta of deltas) recordDebits(storage.sql, delta, last);
        });
      last.commit();
    } catch (err) {
      last.forget();
      throw err;
    }
  };
}

/**
 * A batch's write failed: nothing of it was charged. `retryable` is what the gateway reads
 * (`durableObjectFailure`): 503 `service_unavailable`, nothing forwarded, the debit reversed by
 * its ref (a no-op: it never committed).
 */
export class LedgerWriteFailed extends Error {
  readonly retryable = true;
  constructor(cause: unknown) {
    super(`The ledger could not write this debit; nothing was charged (${String(cause)}).`);
    this.name = "LedgerWriteFailed";
  }
}

/**
 * A debit's own write (the paths that do not batch): a failure is `LedgerWriteFailed` too.
 * `last` learns the minute row it wrote only once it committed.
 */
export function writeAlone<T>(
  storage: DurableObjectStorage,
  last: LastMinuteRow,
  write: () => T,
): T {
  try {
    const result = storage.transactionSync(write);
    last.commit();
    return result;
  } catch (err) {
    last.forget();
    throw new LedgerWriteFailed(err);
  }
}

interface Waiter {
  answer: unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** Runs once the write committed, before any caller is answered. */
  committed?: () => void;
}

export interface BatchHooks {
  /** After every committed write (the object schedules its checkpoint). */
  committed(): void;
  /** After a failed write: memory back to what storage holds. */
  failed(): void;
}

export class DebitBatch {
  private deltas = new Map<number, MinuteDelta>();
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** Batches in a row that no timer grew (`flushBy`). */
  private lone = FIRST_LONE;
  /** Waiters of the turn that scheduled a timer; more at the flush: other calls joined. */
  private ownTurn: number | null = null;

  constructor(
    private readonly write: BatchWrite,
    private readonly mode: Exclude<GroupCommitMode, "off">,
    private readonly hooks: BatchHooks,
  ) {}

  /** Whether debits wait for a write. */
  get pending(): boolean {
    return this.waiters.length > 0;
  }

  /**
   * A decided debit joins the pending write; `answer` is given once it committed (`committed`
   * runs first), or the promise fails with `LedgerWriteFailed` and nothing was charged.
   */
  take<T>(
    minute: number,
    keyId: string,
    take: Buckets,
    answer: T,
    committed: () => void,
  ): Promise<T> {
    addToBatch(this.deltas, minute, keyId, take);
    return this.wait(answer, committed);
  }

  /**
   * An answer decided on the balance less the pending takes (a refusal for want of credits):
   * given once they are written, or failed with them, so no caller learns of a balance that
   * was never committed. At once when nothing is pending.
   */
  after<T>(answer: T): Promise<T> {
    if (!this.pending) return Promise.resolve(answer);
    return this.wait(answer);
  }

  private wait<T>(answer: T, committed?: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.push({ answer, resolve: resolve as (v: unknown) => void, reject, committed });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.flush();
    };
    const by = this.mode === "adaptive" ? flushBy(this.lone) : this.mode;
    if (by === "microtask") {
      queueMicrotask(run);
      return;
    }
    // The scheduling call's own debits all join in its synchronous turn (debitMany decides
    // them in one loop); counted once that turn is over.
    const batch = this.waiters;
    queueMicrotask(() => {
      // Unless something flushed it meanwhile (every other command flushes first).
      if (this.waiters === batch) this.ownTurn = batch.length;
    });
    setTimeout(run, 0);
  }

  /**
   * Writes what is pending in one transaction and answers its callers. Synchronous, so a caller
   * that flushes first runs after the batch's commit. Returns the failure (the callers have
   * already been refused and memory rebuilt), or null: written, or nothing was pending.
   */
  flush(): LedgerWriteFailed | null {
    if (this.waiters.length === 0) return null;
    const { waiters, deltas } = this;
    this.waiters = [];
    this.deltas = new Map();
    const grew = this.ownTurn !== null && waiters.length > this.ownTurn;
    this.ownTurn = null;
    this.lone = loneAfter(this.lone, grew);
    try {
      this.write([...deltas.values()]);
    } catch (err) {
      const failure = new LedgerWriteFailed(err);
      for (const w of waiters) w.reject(failure);
      this.hooks.failed();
      return failure;
    }
    for (const w of waiters) w.committed?.();
    this.hooks.committed();
    for (const w of waiters) w.resolve(w.answer);
    return null;
  }
}
