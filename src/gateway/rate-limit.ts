import type { Context } from "hono";
import type { AppEnv } from "../env";

/**
 * Per-key rate limit, checked before the debit so a throttled request costs nothing.
 * The seam for the rate-limiting issue; it allows everything for now.
 */
export async function enforceRateLimit(_c: Context<AppEnv>): Promise<void> {}
