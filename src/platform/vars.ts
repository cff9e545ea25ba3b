/**
 * Numeric vars: what a string from wrangler.toml or the dashboard means as a number, in one
 * place, so each setting states only its default and its bounds.
 */

/** A whole number of ms from `min` to `max` when `configured` is one, else `fallback`. */
export function wholeMs(
  configured: string | undefined,
  fallback: number,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  if (configured === undefined || configured.trim() === "") return fallback;
  const ms = Number(configured);
  return Number.isSafeInteger(ms) && ms >= min && ms <= max ? ms : fallback;
}
