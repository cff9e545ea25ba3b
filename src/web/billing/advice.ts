/**
 * Billing advice for the dashboard: runway, plan advisor, unusual usage. Pure functions over
 * integers (credits, cents); floats appear only where a number is formatted for people.
 */
import { formatCents } from "../../platform/money";
import {
  type CreditPackage,
  PACKAGES,
  type PackageId,
  PLAN_IDS,
  PLANS,
  type PlanId,
  RECHARGE_THRESHOLD,
} from "../../pricing";

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const credits = (n: number) => n.toLocaleString("en-US");

// ---------------------------------------------------------------- runway

/**
 * Whole days until the total balance reaches the threshold at the average daily rate of
 * `dailyCredits` (one entry per day, e.g. the last 7): 0 when already at or below it, null
 * when nothing was used (no rate, no estimate).
 */
export function runwayDays(
  dailyCredits: readonly number[],
  total: number,
  threshold = RECHARGE_THRESHOLD,
): number | null {
  if (total <= threshold) return 0;
  const used = sum(dailyCredits);
  if (used <= 0 || dailyCredits.length === 0) return null;
  // (total − threshold) ÷ (used ÷ days), rearranged so the division happens once, at the end.
  return Math.floor(((total - threshold) * dailyCredits.length) / used);
}

/** Days of history the runway needs before it says anything: one busy day is not a rate. */
export const MIN_RUNWAY_DAYS = 3;
/** Beyond this many days the runway is "more than a year": the rate will change before then. */
export const LONG_RUNWAY_DAYS = 365;

/**
 * The runway as the dashboard says it. `window`: the days the rate was measured over;
 * `historyDays`: whole days the account has existed (below MIN_RUNWAY_DAYS: no estimate).
 */
export function runwaySentence(
  days: number | null,
  window = 7,
  threshold = RECHARGE_THRESHOLD,
  historyDays: number = Number.POSITIVE_INFINITY,
): string {
  if (days === 0) return `Your balance is at or below ${credits(threshold)} credits.`;
  if (historyDays < MIN_RUNWAY_DAYS) {
    return `Not enough history for a runway estimate yet: it needs ${MIN_RUNWAY_DAYS} days of usage, and this account has ${
      historyDays === 1 ? "1 day" : `${Math.max(0, historyDays)} days`
    }.`;
  }
  if (days === null)
    return `No credits used in the last ${window} days, so there is no rate to project.`;
  const rate = `At your last ${window} days' rate, credits reach ${credits(threshold)}`;
  if (days > LONG_RUNWAY_DAYS) return `${rate} in more than a year.`;
  return `${rate} in ~${credits(days)} ${days === 1 ? "day" : "days"}.`;
}

// ---------------------------------------------------------------- plan advisor

export interface PackageCount {
  package: PackageId;
  count: number;
}

export interface PackageCover {
  credits: number;
  cents: number;
  packages: PackageCount[];
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The cheapest combination of packages (any number of each) whose credits add up to at least
 * `needed`. Exact: a dynamic program over package-size units, after taking out in bulk the
 * packages with the best price per credit. The bulk step is safe because some optimal basket
 * holds fewer than `best.units` other packages (among that many, a subset's units add up to a
 * multiple of `best.units`, and best packages cover those units for no more money), so it
 * holds at least ⌊(units − best.units × max units) ÷ best.units⌋ best packages.
 */
export function cheapestCover(
  needed: number,
  packages: readonly CreditPackage[] = Object.values(PACKAGES),
): PackageCover {
  if (needed <= 0 || packages.length === 0) return { credits: 0, cents: 0, packages: [] };
  const unit = packages.map((p) => p.credits).reduce(gcd);
  const sizes = packages.map((p) => ({ p, units: p.credits / unit }));
  const best = sizes.reduce((a, b) =>
    // Cheaper per unit wins (cross-multiplied to stay in integers); on a tie, the bigger one.
    b.p.priceCents * a.units < a.p.priceCents * b.units ||
    (b.p.priceCents * a.units === a.p.priceCents * b.units && b.units > a.units)
      ? b
      : a,
  );
  const maxUnits = Math.max(...sizes.map((s) => s.units));
  let units = Math.ceil(needed / unit);
  const bound = best.units * maxUnits;
  const bulk = units > bound ? Math.floor((units - bound) / best.units) : 0;
  units -= bulk * best.units;

  // cost[i]: cheapest cover of at least i units; pick[i]: the package bought last for it.
  const cost = new Array<number>(units + 1).fill(Number.POSITIVE_INFINITY);
  const pick = new Array<number>(units + 1).fill(-1);
  cost[0] = 0;
  for (let i = 1; i <= units; i++) {
    sizes.forEach((s, j) => {
      const c = s.p.priceCents + (cost[Math.max(0, i - s.units)] ?? 0);
      if (c < (cost[i] ?? Number.POSITIVE_INFINITY)) {
        cost[i] = c;
        pick[i] = j;
      }
    });
  }
  const counts = sizes.map(() => 0);
  counts[sizes.indexOf(best)] = bulk;
  for (let i = units; i > 0; ) {
    const j = pick[i] ?? 0;
    counts[j] = (counts[j] ?? 0) + 1;
    i = Math.max(0, i - (sizes[j]?.units ?? units));
  }
  const bought = sizes
    .map((s, j) => ({ p: s.p, count: counts[j] ?? 0 }))
    .filter((b) => b.count > 0);
  return {
    credits: sum(bought.map((b) => b.p.credits * b.count)),
    cents: sum(bought.map((b) => b.p.priceCents * b.count)),
    packages: bought.map((b) => ({ package: b.p.id, count: b.count })),
  };
}

export interface PlanCost {
  plan: PlanId;
  planCents: number;
  /** Credits used beyond the plan's monthly allowance, bought as packages. */
  overflowCredits: number;
  cover: PackageCover;
  totalCents: number;
  /** Whether the plan's per-minute rate limit carries the busiest minute of the period. */
  fitsPeak: boolean;
}

export interface PlanAdvice {
  usedCredits: number;
  peakRequestsPerMinute: number;
  current: PlanId;
  costs: PlanCost[];
  cheapest: PlanId;
  /** What the cheapest plan would have saved against the current one; 0 when it is the current. */
  savingCents: number;
  sentence: string;
}

/** Days of a cycle the advisor needs, when there is no whole previous cycle to look at. */
export const MIN_ADVICE_DAYS = 7;

/**
 * Credits over the whole cycle at the rate so far: `used` in `elapsedSeconds` of a cycle
 * `cycleSeconds` long, rounded up (integers only; the division happens once, at the end).
 */
export function projectOverCycle(
  used: number,
  elapsedSeconds: number,
  cycleSeconds: number,
): number {
  if (elapsedSeconds >= cycleSeconds) return used;
  if (elapsedSeconds <= 0) return used;
  return Math.ceil((used * cycleSeconds) / elapsedSeconds);
}

/** What one cycle of `usedCredits` would have cost on each plan, topped up with packages. */
export function planCosts(usedCredits: number, peakRequestsPerMinute = 0): PlanCost[] {
  return PLAN_IDS.map((id) => {
    const plan = PLANS[id];
    const overflowCredits = Math.max(0, usedCredits - plan.monthlyCredits);
    const cover = cheapestCover(overflowCredits);
    return {
      plan: id,
      planCents: plan.priceCents,
      overflowCredits,
      cover,
      totalCents: plan.priceCents + cover.cents,
      fitsPeak: peakRequestsPerMinute <= plan.rateLimitPerMinute,
    };
  });
}

/**
 * Compares the plans on a real period's spend. A plan whose rate limit would have refused the
 * busiest minute is never advised, however cheap. On a tie the current plan stays the
 * cheapest, so the advice never suggests a change that saves nothing.
 */
export function advisePlan(
  usedCredits: number,
  current: PlanId,
  peakRequestsPerMinute = 0,
  options: { projected?: boolean } = {},
): PlanAdvice {
  const costs = planCosts(usedCredits, peakRequestsPerMinute);
  const currentCost = costs.find((c) => c.plan === current) as PlanCost;
  const cheapest = costs
    .filter((c) => c.fitsPeak)
    .reduce((a, b) => (b.totalCents < a.totalCents ? b : a), currentCost);
  const savingCents = currentCost.totalCents - cheapest.totalCents;
  // A projection is about the cycle under way ("would cost"), a real cycle about the past.
  const sentence = options.projected
    ? cheapest.plan === current
      ? `At this rate your ${PLANS[current].name} plan is the cheapest option for the whole cycle.`
      : `At this rate ${PLANS[cheapest.plan].name} would cost ${formatCents(savingCents)} less than your ${
          PLANS[current].name
        } plan over the whole cycle.`
    : cheapest.plan === current
      ? `Your ${PLANS[current].name} plan was the cheapest option for this usage.`
      : `${PLANS[cheapest.plan].name} would have cost ${formatCents(savingCents)} less than your ${
          PLANS[current].name
        } plan.`;
  return {
    usedCredits,
    peakRequestsPerMinute,
    current,
    costs,
    cheapest: cheapest.plan,
    savingCents,
    sentence,
  };
}

// ---------------------------------------------------------------- unusual usage

export interface DayUsage {
  start: string;
  credits: number;
}

export interface UnusualDay extends DayUsage {
  /** Sum of the `window` days before it. */
  trailingCredits: number;
  window: number;
}

export interface UnusualOptions {
  /** Flag a day above this many times the trailing mean. */
  factor?: number;
  /** Days below this many credits are never flagged: small numbers swing wildly. */
  floor?: number;
  /** Days in the trailing mean; a day is judged only once this many days precede it. */
  window?: number;
}

/** Days (oldest first, one per day) whose credits are far above the trailing average. */
export function unusualDays(days: readonly DayUsage[], options: UnusualOptions = {}): UnusualDay[] {
  const { factor = 3, floor = 100, window = 7 } = options;
  const flagged: UnusualDay[] = [];
  for (let i = window; i < days.length; i++) {
    const day = days[i] as DayUsage;
    const trailingCredits = sum(days.slice(i - window, i).map((d) => d.credits));
    // credits > factor × (trailing ÷ window), multiplied out to stay in integers.
    if (day.credits >= floor && day.credits * window > factor * trailingCredits) {
      flagged.push({ start: day.start, credits: day.credits, trailingCredits, window });
    }
  }
  return flagged;
}

// ---------------------------------------------------------------- payments waiting

/** A purchase waiting for the customer's bank (its recharge is `requires_action`). */
export interface WaitingPurchase {
  id: string;
  kind: "auto_recharge" | "top_up";
  credits: number;
  amountCents: number;
  /** When it was started (RFC 3339). */
  since: string;
  /** Stripe's hosted invoice page, where the customer completes it; null if not known yet. */
  actionUrl: string | null;
}

export interface PurchaseState {
  /** What waits, oldest first; the page says it once, in one notice. */
  waiting: WaitingPurchase[];
  /** The notice's sentences, or null when nothing waits. */
  sentence: string | null;
  detail: string | null;
  /** One link per waiting purchase that has one. */
  links: Array<{ href: string; label: string }>;
  /** "Buy credits now" is offered only when nothing waits (POST /v1/account/top-ups is 409 then). */
  canBuy: boolean;
  /** An auto-recharge is being paid right now (pending, not waiting for the customer). */
  processing: boolean;
}

const KIND_NAMES = { auto_recharge: "auto-recharge", top_up: "top-up" } as const;
const purchaseLabel = (p: WaitingPurchase) =>
  `${KIND_NAMES[p.kind]} of ${credits(p.credits)} credits (${formatPrice(p.amountCents)})`;
const formatPrice = (cents: number) => formatCents(cents).replace(/\.00$/, "");
/** Days an unconfirmed payment waits before the reconciler cancels it (money rule 6). */
export const ACTION_WAIT_DAYS = 3;

/**
 * The one state the Billing page says about purchases in flight. Derived from the recharges
 * that wait for the customer (never from the settings' last failure, which a later purchase
 * can overwrite or clear while an older one still waits), and from whether an auto-recharge is
 * in flight at all (`pending` in the settings covers waiting ones too).
 */
export function purchaseState(input: {
  waiting: readonly WaitingPurchase[];
  autoRechargeInFlight: boolean;
  autoRechargeEnabled: boolean;
}): PurchaseState {
  const waiting = [...input.waiting].sort((a, b) => a.since.localeCompare(b.since));
  const arWaits = waiting.some((w) => w.kind === "auto_recharge");
  const processing = input.autoRechargeInFlight && !arWaits;
  if (waiting.length === 0) {
    return { waiting, sentence: null, detail: null, links: [], canBuy: true, processing };
  }
  const sentence =
    waiting.length === 1
      ? `Your ${purchaseLabel(waiting[0] as WaitingPurchase)} is waiting for you to confirm the payment with your bank.`
      : `${waiting.length === 2 ? "Two" : credits(waiting.length)} purchases are waiting for you to confirm the payment with your bank: ${waiting
          .map((w, i) => `${i === waiting.length - 1 ? "and " : ""}the ${purchaseLabel(w)}`)
          .join(waiting.length === 2 ? " " : ", ")}.`;
  const noLink = waiting.some((w) => w.actionUrl === null);
  const detail = [
    `Nothing has been charged or added yet. Complete ${waiting.length === 1 ? "it" : "each one"} to get the credits${
      noLink ? " (the link is also in the email we sent you)" : ""
    }; unconfirmed, ${waiting.length === 1 ? "it is" : "each is"} cancelled ${ACTION_WAIT_DAYS} days after it started.`,
    "No other credits can be bought until then, so you never pay twice for one shortfall.",
    arWaits && !input.autoRechargeEnabled
      ? "Auto-recharge stays off until you turn it back on."
      : null,
  ]
    .filter(Boolean)
    .join(" ");
  const links = waiting.flatMap((w) =>
    w.actionUrl
      ? [
          {
            href: w.actionUrl,
            label:
              waiting.length === 1
                ? "Complete the payment"
                : `Complete the ${KIND_NAMES[w.kind]} payment (${formatPrice(w.amountCents)})`,
          },
        ]
      : [],
  );
  return { waiting, sentence, detail, links, canBuy: false, processing };
}
