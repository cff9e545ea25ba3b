import { RATE_WINDOW_MS, type RateDecision } from "../ledger/domain/rate-window";

/** IETF draft RateLimit headers (policy and current state), plus the older RateLimit-* trio. */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  const windowSeconds = RATE_WINDOW_MS / 1000;
  return {
    "RateLimit-Policy": `"per-account";q=${d.limit};w=${windowSeconds}`,
    RateLimit: `"per-account";r=${d.remaining};t=${d.resetSeconds}`,
    "RateLimit-Limit": String(d.limit),
    "RateLimit-Remaining": String(d.remaining),
    "RateLimit-Reset": String(d.resetSeconds),
  };
}
