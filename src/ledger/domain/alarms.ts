/**
 * When the ledger's alarm is due, decided pure from the state row. The object keeps one alarm
 * (the earliest time asked for wins, `ledger/alarms.ts`); these say which times to ask for.
 */
import { nextMonthStart } from "./rules";
import type { StateRow } from "./types";

/** How often an active account's open minutes are settled (the checkpoint). */
export const SETTLE_EVERY_MS = 3_600_000;
/** How soon an outbox item that was not delivered is tried again. */
export const OUTBOX_RETRY_MS = 5_000;

/** When the open minutes are next due to be settled: an hour after the last checkpoint. */
export function settleDue(s: Pick<StateRow, "compacted_until">): number {
  return s.compacted_until * 1000 + SETTLE_EVERY_MS;
}

/** The end of an alarm-driven cycle (no Stripe subscription starts the next one); else null. */
export function cycleAlarm(s: Pick<StateRow, "stripe_cycles" | "cycle_ends_at">): number | null {
  return s.stripe_cycles === 0 ? s.cycle_ends_at : null;
}

/**
 * The alarms to set once an alarm has run: the outbox retried while it holds items, the next
 * checkpoint while the account is busy (so the next hour's debits set no alarm), the end of an
 * alarm-driven cycle, and the month's turn that lifts a spending-limit pause.
 */
export function alarmsAfterAlarm(input: {
  s: StateRow | null;
  /** The checkpoint settled debits or saw traffic. */
  active: boolean;
  outboxWaiting: boolean;
  now: number;
}): number[] {
  const { s, active, outboxWaiting, now } = input;
  const at: number[] = [];
  if (outboxWaiting) at.push(now + OUTBOX_RETRY_MS);
  if (!s) return at;
  if (active) at.push(settleDue(s));
  const cycle = cycleAlarm(s);
  if (cycle !== null) at.push(cycle);
  if (s.paused_period !== null) at.push(nextMonthStart(s.paused_period));
  return at;
}
