/**
 * Group commit's rules, pure: when a debit may share a write with the debits around it, and
 * how the object is configured (`LEDGER_GROUP_COMMIT`). The shell is `src/ledger/debit-batch.ts`.
 */
import type { DebitDecision } from "./decisions";

/**
 * How a batch of debits is flushed: after a `setTimeout(0)` (`timer`: the calls that arrive
 * meanwhile join it), at the end of the current microtask queue (`microtask`: only debits of
 * the same turn join, which incoming calls never are), `adaptive` (the default: a timer while
 * debits come concurrently, a microtask for a lone caller; `flushBy`), or never batched
 * (`off`: one write per debit, as before group commit; the bench's A/B).
 */
export type GroupCommitMode = "adaptive" | "timer" | "microtask" | "off";

/** `LEDGER_GROUP_COMMIT`; unset or unknown: `adaptive`. */
export function groupCommitMode(configured: string | undefined): GroupCommitMode {
  if (configured === "off" || configured === "microtask" || configured === "timer")
    return configured;
  return "adaptive";
}

/** After this many batches of one debit in a row, a lone caller stops waiting for a timer. */
export const LONE_BATCHES = 8;

/**
 * Adaptive: how the next batch is flushed, given how many batches in a row held one debit.
 * A timer costs a lone caller a turn of the event loop (about half a millisecond in workerd)
 * for nothing; a microtask lets no concurrent call join. So: a timer while batches hold more
 * than one debit, a microtask after `LONE_BATCHES` lone ones, and every `LONE_BATCHES`-th
 * batch a timer again, to notice concurrency coming back.
 */
export function flushBy(loneBatches: number): "timer" | "microtask" {
  return loneBatches >= LONE_BATCHES && loneBatches % LONE_BATCHES !== 0 ? "microtask" : "timer";
}

/**
 * A debit joins the pending write only when its decision needs nothing but its minute's delta:
 * one that must settle the ring first, that reaches the recharge threshold (the trigger reads
 * and writes the recharge) or that crosses the low-balance level (the alert) takes the path
 * of one write of its own, after the pending batch.
 */
export function joinsBatch(d: Extract<DebitDecision, { kind: "take" }>): boolean {
  return !(d.mustSettle || d.nearThreshold || d.crossesAlert);
}
