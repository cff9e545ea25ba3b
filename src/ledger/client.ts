import type { Bindings } from "../platform/env";

/**
 * Cloudflare's location hints for Durable Objects. An object is created near its first
 * caller, or in the hinted region, and never moves; the hint counts only on the `get` that
 * creates it (later ones are ignored), so only account creation passes one.
 */
export const LOCATION_HINTS = [
  "wnam",
  "enam",
  "sam",
  "weur",
  "eeur",
  "apac",
  "oc",
  "afr",
  "me",
] as const;
export type LocationHint = (typeof LOCATION_HINTS)[number];

/** `request.cf.continent` (and, for North America and Europe, the longitude) → a location hint. */
export function locationHintFor(cf: object | undefined): LocationHint | undefined {
  const where = (cf ?? {}) as { continent?: unknown; longitude?: unknown };
  const longitude = typeof where.longitude === "string" ? Number(where.longitude) : Number.NaN;
  switch (where.continent) {
    case "NA":
      // West of the Mississippi, roughly: the western data centres are closer.
      return Number.isFinite(longitude) && longitude < -100 ? "wnam" : "enam";
    case "SA":
      return "sam";
    case "EU":
      return Number.isFinite(longitude) && longitude > 20 ? "eeur" : "weur";
    case "AS":
      // West Asia (the Middle East) has its own hint; the rest of Asia is apac.
      return Number.isFinite(longitude) && longitude < 63 ? "me" : "apac";
    case "OC":
      return "oc";
    case "AF":
      return "afr";
    default:
      return undefined;
  }
}

/** The AccountLedger stub of an account: one object per account id, addressed by name. */
export function ledgerFor(
  env: Pick<Bindings, "ACCOUNT_LEDGER">,
  accountId: string,
  options: { locationHint?: LocationHint } = {},
) {
  const id = env.ACCOUNT_LEDGER.idFromName(accountId);
  return options.locationHint
    ? env.ACCOUNT_LEDGER.get(id, { locationHint: options.locationHint })
    : env.ACCOUNT_LEDGER.get(id);
}
