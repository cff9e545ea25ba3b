/**
 * What a paid subscription invoice paid for, read from its lines' prices (pure). Credits follow
 * money that was paid (money rule 9), so the plan comes from the invoice, never from the
 * subscription's current state.
 */
import type Stripe from "stripe";
import type { PlanId } from "../pricing";

/** The parts of an invoice line read here (both API shapes: `pricing` and the legacy `price`). */
export type LineLike = Pick<Stripe.InvoiceLineItem, "amount" | "period"> & {
  pricing?: { price_details?: { price?: string | { id: string } | null } | null } | null;
  parent?: {
    invoice_item_details?: { proration?: boolean } | null;
    subscription_item_details?: { proration?: boolean } | null;
  } | null;
  /** Before API version 2025-03-31. */
  price?: { id: string } | null;
  proration?: boolean;
};

export function linePrice(line: LineLike): string | null {
  const price = line.pricing?.price_details?.price ?? line.price ?? null;
  return typeof price === "string" ? price : (price?.id ?? null);
}

export function isProration(line: LineLike): boolean {
  return (
    line.parent?.invoice_item_details?.proration === true ||
    line.parent?.subscription_item_details?.proration === true ||
    line.proration === true
  );
}

export interface PaidPlan {
  plan: Exclude<PlanId, "free">;
  /** The billed period (unix seconds): its end names the cycle. */
  start: number;
  end: number;
}

type PriceToPlan = (price: string | null) => PlanId | null;

/**
 * A cycle's invoice (`subscription_create`, `subscription_cycle`): the plan of its subscription
 * line. Proration lines that ride along (a change made with `create_prorations`) are not what
 * the period bills, whatever order Stripe lists them in.
 */
export function planOfCycleInvoice(lines: LineLike[], planFor: PriceToPlan): PaidPlan | null {
  const paid = (l: LineLike) => {
    const plan = planFor(linePrice(l));
    return plan && plan !== "free" ? plan : null;
  };
  const line = lines.find((l) => !isProration(l) && paid(l)) ?? lines.find((l) => paid(l));
  const plan = line ? paid(line) : null;
  if (!line || !plan) return null;
  return { plan, start: line.period.start, end: line.period.end };
}

/**
 * An upgrade's invoice (`subscription_update`, `always_invoice`): the plan the subscription was
 * changed to, the positive proration line of ours. Several changes billed together (up and
 * back down) name the last one: the line whose period starts latest (the later in the list on
 * a tie). An invoice whose total is not positive (a downgrade's credit) pays for nothing.
 */
export function planOfUpgradeInvoice(
  invoice: { total?: number | null; lines: LineLike[] },
  planFor: PriceToPlan,
): PaidPlan | null {
  if (!invoice.total || invoice.total <= 0) return null;
  let best: { line: LineLike; plan: Exclude<PlanId, "free"> } | null = null;
  for (const line of invoice.lines) {
    const plan = planFor(linePrice(line));
    if (!plan || plan === "free" || !isProration(line) || line.amount <= 0) continue;
    if (!best || line.period.start >= best.line.period.start) best = { line, plan };
  }
  return best
    ? { plan: best.plan, start: best.line.period.start, end: best.line.period.end }
    : null;
}
