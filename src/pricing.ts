/**
 * The one pricing table: plans, credit packages, the auto-recharge threshold and route costs.
 * Money is integer cents; credits are integers.
 */

export const PLAN_IDS = ["free", "starter", "pro"] as const;
export type PlanId = (typeof PLAN_IDS)[number];

export interface Plan {
  id: PlanId;
  name: string;
  monthlyCredits: number;
  priceCents: number;
  /** Requests per minute per API key. */
  rateLimitPerMinute: number;
}

export const PLANS: Record<PlanId, Plan> = {
  // Free gets enough to evaluate the API; it sits well above the recharge threshold.
  free: { id: "free", name: "Free", monthlyCredits: 500, priceCents: 0, rateLimitPerMinute: 60 },
  starter: {
    id: "starter",
    name: "Starter",
    monthlyCredits: 3_000,
    priceCents: 1_900,
    rateLimitPerMinute: 600,
  },
  pro: {
    id: "pro",
    name: "Pro",
    monthlyCredits: 8_000,
    priceCents: 3_900,
    rateLimitPerMinute: 3_000,
  },
};

export const PACKAGE_IDS = ["credits_1000", "credits_3000", "credits_9000"] as const;
export type PackageId = (typeof PACKAGE_IDS)[number];

export interface CreditPackage {
  id: PackageId;
  credits: number;
  priceCents: number;
}

export const PACKAGES: Record<PackageId, CreditPackage> = {
  credits_1000: { id: "credits_1000", credits: 1_000, priceCents: 700 },
  credits_3000: { id: "credits_3000", credits: 3_000, priceCents: 1_700 },
  credits_9000: { id: "credits_9000", credits: 9_000, priceCents: 3_700 },
};

export const DEFAULT_PACKAGE: PackageId = "credits_1000";
export const CURRENCY = "usd";

/** Auto-recharge fires when the total balance (monthly + purchased) is at or below this. */
export const RECHARGE_THRESHOLD = 100;

/** Cost in credits of proxied routes; anything not listed costs DEFAULT_ROUTE_COST. */
export const ROUTE_COSTS: ReadonlyArray<{ method: string; path: string; cost: number }> = [
  { method: "POST", path: "/v1/classify", cost: 1 },
  { method: "GET", path: "/v1/categories", cost: 0 },
];
export const DEFAULT_ROUTE_COST = 1;

export function isPackageId(value: unknown): value is PackageId {
  return typeof value === "string" && (PACKAGE_IDS as readonly string[]).includes(value);
}

/** The one form a proxied path is priced and forwarded in: no trailing slashes. */
export function normalizePath(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 47 /* "/" */) end--;
  if (end === path.length && end > 0) return path;
  return end === 0 ? "/" : path.slice(0, end);
}

/** Credits a proxied request costs. Trailing slashes do not change the price. */
export function routeCost(method: string, path: string): number {
  const normalized = normalizePath(path);
  const match = ROUTE_COSTS.find((r) => r.method === method && r.path === normalized);
  return match ? match.cost : DEFAULT_ROUTE_COST;
}
