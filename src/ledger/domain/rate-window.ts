/**
 * Rate limiting per account: a fixed one-minute window shared by all the account's keys (so
 * making more keys never raises the limit). The counter lives in the account's Durable Object
 * (in memory), so the check rides on the debit call the request makes anyway: still one
 * Durable Object call, and a throttled request is refused before any debit. An evicted object
 * forgets its window, which can only ever let a request through, never charge or block one
 * wrongly.
 */

export const RATE_WINDOW_MS = 60_000;

export interface RateWindow {
  start: number;
  count: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets (at least 1). */
  resetSeconds: number;
}

/** Counts one request against `window` (mutated) and says whether it may pass. */
export function takeFromWindow(window: RateWindow, now: number, limit: number): RateDecision {
  const start = now - (now % RATE_WINDOW_MS);
  if (window.start !== start) {
    window.start = start;
    window.count = 0;
  }
  const resetSeconds = Math.max(1, Math.ceil((start + RATE_WINDOW_MS - now) / 1000));
  if (window.count >= limit) return { allowed: false, limit, remaining: 0, resetSeconds };
  window.count++;
  return { allowed: true, limit, remaining: limit - window.count, resetSeconds };
}
