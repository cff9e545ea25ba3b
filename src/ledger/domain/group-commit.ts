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

/** After this many batches in a row that no timer grew, a lone caller stops waiting for one. */
export const LONE_BATCHES = 8;

/**
 * Where an object's count starts: its first batch is a timer that probes for concurrency, and
 * unless that timer gathers debits from other calls it flushes by microtask from then on. An
 * object that sees a few debits now and then (one of many accounts) thus almost never waits
 * a turn of the event loop for a timer that gathers nothing.
 */
export const FIRST_LONE = LONE_BATCHES;

/**
 * Adaptive: how the next batch is flushed, given how many batches in a row no timer grew.
 * A timer costs a lone caller a turn of the event loop (and in workerd a dispatch of its own)
 * for nothing; a microtask lets no concurrent call join. So: a timer while timers gather
 * debits from other calls, a microtask after `LONE_BATCHES` batches they did not, and every
 * `LONE_BATCHES`-th batch a timer again, to notice concurrency coming back.
 */
export function flushBy(loneBatches: number): "timer" | "microtask" {
  return loneBatches >= LONE_BATCHES && loneBatches % LONE_BATCHES !== 0 ? "microtask" : "timer";
}

/**
 * The count after a batch: back to 0 when its timer gathered debits from calls after the one
 * that scheduled it (concurrency: timers pay), one more otherwise (a microtask's batch, or a
 * timer that waited for nothing). Counting calls, not debits: a call that brings many debits
 * at once (the gateway's coalesced `debitMany`) is batched by a microtask just as well.
 */
export function loneAfter(loneBatches: number, grewByTimer: boolean): number {
  return grewByTimer ? 0 : loneBatches + 1;
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
