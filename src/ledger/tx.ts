/**
 * What a mutation's code sees inside the object's one `transactionSync`: the storage, the
 * decision's time, the open debits memory holds (the live balance is the state row's settled
 * buckets less them, `liveBalance`), and the effects it collects for after the commit.
 */
import type { Effects } from "./domain/effects";
import { type Buckets, liveBalance } from "./domain/rules";
import type { StateRow } from "./domain/types";
import { readStateRow } from "./store/state";

export interface Tx {
  readonly sql: SqlStorage;
  readonly now: number;
  /** Gross debits of the minutes not settled yet (the object's memory). */
  readonly open: Buckets;
  /** Outbox items and alarms for after the commit (`OutboxRunner.afterCommit`). */
  readonly fx: Effects;
}

/** The state row read afresh, with the live buckets in place of the settled ones. */
export function currentState(tx: Pick<Tx, "sql" | "open">): StateRow | null {
  const row = readStateRow(tx.sql);
  return row ? { ...row, ...liveBalance(row, tx.open) } : null;
}

/** As `currentState`, for a ledger known to exist (after the mutation's own check). */
export function liveState(tx: Pick<Tx, "sql" | "open">): StateRow {
  return currentState(tx) as StateRow;
}
