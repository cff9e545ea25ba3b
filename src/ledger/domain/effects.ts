/**
 * What a committed transaction leaves to do. The transaction returns it; the object flushes it
 * once, after the commit (`afterCommit`): nothing is delivered or scheduled for a write that
 * might still roll back, and no effect waits in a field for another method to pick up.
 */
import type { OutboxItem } from "./types";

export interface Effects {
  /** Outbox items, already written in the transaction, to deliver in this order. */
  deliver: OutboxItem[];
  /** Alarm times the transaction asked for (the earliest one wins). */
  alarms: number[];
}

export function noEffects(): Effects {
  return { deliver: [], alarms: [] };
}

/** `more` appended to `fx` (in place: the transaction's own list). */
export function addEffects(fx: Effects, more: Effects): void {
  fx.deliver.push(...more.deliver);
  fx.alarms.push(...more.alarms);
}
