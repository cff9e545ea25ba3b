/**
 * The money invariants as pure functions over an observed snapshot. No I/O here: observe.ts
 * reads the live system into these shapes, and test/unit/invariants.test.ts feeds them
 * hand-made broken snapshots to show each checker fires.
 *
 * 1. balance never negative (both buckets, now and at every point of the ledger's history);
 * 2. the ledger replays to the balance;
 * 3. charges = credited purchases: Stripe's succeeded PaymentIntents, the ledger's `purchase`
 *    entries and D1's succeeded purchase rows name the same recharges with the same amounts;
 * 4. at most one auto-recharge in flight;
 * 5. a failed payment added no credits and left auto-recharge disabled (until the customer
 *    enabled it again);
 * 6. plan grants within one cycle never take it past the largest allowance paid for in that
 *    cycle (money rule 9), whatever the plan changes and their order;
 * 7. the account keeps an active `full` key (money rule 11).
 */
import { PLANS } from "../../src/pricing";

export type InvariantId = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export const INVARIANT_NAMES: Record<InvariantId, string> = {
  1: "balance never negative",
  2: "the ledger replays to the balance",
  3: "charges = credited purchases",
  4: "at most one auto-recharge in flight",
  5: "a failed payment adds no credits and disables auto-recharge",
  6: "a cycle's plan grants stay within the largest allowance paid for in it",
  7: "the account keeps an active full key",
};

export interface Violation {
  invariant: InvariantId;
  detail: string;
}

export interface LedgerEntry {
  seq: number;
  ref: string;
  kind: string;
  monthly_delta: number;
  purchased_delta: number;
  /** The ledger's note: which plan a cycle grant or a plan change was for. */
  note?: string | null;
}

export type RechargeStatus = "pending" | "requires_action" | "succeeded" | "failed";

export interface RechargeRecord {
  id: string;
  kind: string;
  package: string;
  credits: number;
  amount_cents: number;
  status: RechargeStatus;
}

/** What `AccountLedger.audit()` reported, when the snapshot asked for it. */
export interface AuditReport {
  consistent: boolean;
  ledger_monthly: number;
  ledger_purchased: number;
  monthly: number;
  purchased: number;
}

/** The account's Durable Object, read in one synchronous pass (so it is self-consistent). */
export interface LedgerSnapshot {
  monthly: number;
  purchased: number;
  autoEnabled: boolean;
  ledger: LedgerEntry[];
  recharges: RechargeRecord[];
  audit?: AuditReport;
}

/** A purchase row in D1 (`transactions` of type auto_recharge or top_up). */
export interface PurchaseRow {
  id: string;
  status: RechargeStatus;
  credits: number;
  amountCents: number;
  /** The purchase's Stripe invoice, as D1 names it. */
  invoiceId: string | null;
  /** Set by the dead-letter consumer: the queue gave up, the reconciler carries it on. */
  needsAttention?: boolean;
}

/**
 * A Stripe invoice of the customer. Every purchase is one one-off invoice; a `paid` one is a
 * charge (its payment is the only one the invoice can ever take).
 */
export interface StripeInvoice {
  id: string;
  /** Stripe's invoice status: draft, open, paid, void, uncollectible. */
  status: string;
  /** The invoice total in cents. */
  amount: number;
  /** `metadata.recharge_id`, null when the invoice carries none (a subscription invoice). */
  rechargeId: string | null;
}

/** The whole system as one account sees it, taken when nothing is in flight. */
export interface SystemSnapshot extends LedgerSnapshot {
  d1: PurchaseRow[];
  stripe: StripeInvoice[];
  /** Active keys of scope `full` in D1. */
  activeFullKeys: number;
}

/**
 * What invariant 5 needs to know about the past: when each failure was first observed and
 * when the customer last switched auto-recharge on. Steps are numbered from 0.
 */
export interface FailureHistory {
  lastEnableStep: number;
  failureFirstSeen: Record<string, number>;
}

export class InvariantViolation extends Error {
  constructor(
    readonly violations: Violation[],
    context: string,
  ) {
    super(
      `${context}\n${violations
        .map((v) => `  invariant ${v.invariant} (${INVARIANT_NAMES[v.invariant]}): ${v.detail}`)
        .join("\n")}`,
    );
    this.name = "InvariantViolation";
  }

  has(invariant: InvariantId): boolean {
    return this.violations.some((v) => v.invariant === invariant);
  }
}

// ------------------------------------------------------------------------------ invariant 1

/** Both buckets are non-negative now, and were after every ledger entry (replayed in order). */
export function balanceNeverNegative(s: LedgerSnapshot): Violation[] {
  const out: Violation[] = [];
  if (s.monthly < 0 || s.purchased < 0) {
    out.push({
      invariant: 1,
      detail: `buckets are monthly=${s.monthly}, purchased=${s.purchased}`,
    });
  }
  let monthly = 0;
  let purchased = 0;
  for (const e of [...s.ledger].sort((a, b) => a.seq - b.seq)) {
    monthly += e.monthly_delta;
    purchased += e.purchased_delta;
    if (monthly < 0 || purchased < 0) {
      out.push({
        invariant: 1,
        detail: `after ledger entry #${e.seq} (${e.kind} ${e.ref}) the replay is monthly=${monthly}, purchased=${purchased}`,
      });
      break;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ invariant 2

function ledgerSums(ledger: LedgerEntry[]): { monthly: number; purchased: number } {
  let monthly = 0;
  let purchased = 0;
  for (const e of ledger) {
    monthly += e.monthly_delta;
    purchased += e.purchased_delta;
  }
  return { monthly, purchased };
}

/** The sum of the ledger equals the buckets, every ref is unique, and audit() agrees. */
export function ledgerReplaysToBalance(s: LedgerSnapshot): Violation[] {
  const out: Violation[] = [];
  const sums = ledgerSums(s.ledger);
  if (sums.monthly !== s.monthly || sums.purchased !== s.purchased) {
    out.push({
      invariant: 2,
      detail: `ledger sums to monthly=${sums.monthly}, purchased=${sums.purchased}; buckets hold monthly=${s.monthly}, purchased=${s.purchased}`,
    });
  }
  const seen = new Set<string>();
  for (const e of s.ledger) {
    if (seen.has(e.ref)) out.push({ invariant: 2, detail: `ledger ref ${e.ref} appears twice` });
    seen.add(e.ref);
  }
  const a = s.audit;
  if (a) {
    const agrees =
      a.ledger_monthly === sums.monthly &&
      a.ledger_purchased === sums.purchased &&
      a.monthly === s.monthly &&
      a.purchased === s.purchased;
    if (!a.consistent || !agrees) {
      out.push({ invariant: 2, detail: `audit() reported ${JSON.stringify(a)}` });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ invariant 3

function describeIds(ids: Iterable<string>): string {
  return [...ids].sort().join(", ");
}

/**
 * Stripe's paid purchase invoices, the ledger's purchase entries and D1's succeeded purchase
 * rows name the same recharges, each charged once (one paid invoice), with matching credits,
 * amounts and invoice ids. Only
 * meaningful when nothing is in flight (a charge always precedes its credit).
 */
export function chargesMatchCredits(s: SystemSnapshot): Violation[] {
  const out: Violation[] = [];
  const charged = new Map<string, StripeInvoice>();
  // Subscription invoices carry no recharge id: they are plan cycles, not purchases.
  for (const pi of s.stripe.filter((p) => p.status === "paid" && p.rechargeId)) {
    if (!pi.rechargeId) continue;
    const first = charged.get(pi.rechargeId);
    if (first) {
      out.push({
        invariant: 3,
        detail: `${pi.rechargeId} charged twice (${first.id}, ${pi.id})`,
      });
    }
    charged.set(pi.rechargeId, pi);
  }
  const credited = new Map(
    s.ledger.filter((e) => e.kind === "purchase").map((e) => [e.ref, e] as const),
  );
  const recorded = new Map(
    s.d1.filter((r) => r.status === "succeeded").map((r) => [r.id, r] as const),
  );

  for (const id of charged.keys()) {
    if (!credited.has(id)) out.push({ invariant: 3, detail: `charge without credit: ${id}` });
    if (!recorded.has(id))
      out.push({ invariant: 3, detail: `charge not recorded as succeeded in D1: ${id}` });
  }
  for (const id of credited.keys()) {
    if (!charged.has(id)) out.push({ invariant: 3, detail: `credit without charge: ${id}` });
  }
  for (const id of recorded.keys()) {
    if (!charged.has(id) && !credited.has(id))
      out.push({ invariant: 3, detail: `D1 says succeeded, nothing else does: ${id}` });
  }

  for (const [id, row] of recorded) {
    const pi = charged.get(id);
    const entry = credited.get(id);
    if (pi && pi.amount !== row.amountCents)
      out.push({
        invariant: 3,
        detail: `${id}: Stripe charged ${pi.amount}¢, D1 says ${row.amountCents}¢`,
      });
    if (pi && row.invoiceId !== pi.id)
      out.push({
        invariant: 3,
        detail: `${id}: D1 names ${row.invoiceId}, Stripe's paid invoice is ${pi.id}`,
      });
    if (entry && (entry.purchased_delta !== row.credits || entry.monthly_delta !== 0))
      out.push({
        invariant: 3,
        detail: `${id}: ledger credited ${entry.monthly_delta}/${entry.purchased_delta}, D1 says ${row.credits} purchased`,
      });
  }
  const doSucceeded = new Set(s.recharges.filter((r) => r.status === "succeeded").map((r) => r.id));
  const mismatch = [...doSucceeded].filter((id) => !credited.has(id));
  if (mismatch.length > 0)
    out.push({
      invariant: 3,
      detail: `ledger's recharges say succeeded without a purchase entry: ${describeIds(mismatch)}`,
    });
  return out;
}

// ------------------------------------------------------------------------------ invariant 4

export function oneAutoRechargeInFlight(s: LedgerSnapshot): Violation[] {
  // In flight: pending, or waiting for the customer (its invoice is still payable).
  const pending = s.recharges.filter(
    (r) => r.kind === "auto_recharge" && (r.status === "pending" || r.status === "requires_action"),
  );
  if (pending.length <= 1) return [];
  return [
    {
      invariant: 4,
      detail: `${pending.length} auto-recharges in flight: ${describeIds(pending.map((r) => r.id))}`,
    },
  ];
}

// ------------------------------------------------------------------------------ invariant 5

/**
 * Ids that are failed, or waiting for the customer to authenticate (money rule 6 holds for
 * both until the invoice is paid), in D1 or in the ledger's recharges.
 */
function failedIds(s: SystemSnapshot): Set<string> {
  const unpaid = (status: string) => status === "failed" || status === "requires_action";
  return new Set([
    ...s.d1.filter((r) => unpaid(r.status)).map((r) => r.id),
    ...s.recharges.filter((r) => unpaid(r.status)).map((r) => r.id),
  ]);
}

/**
 * Every failed payment: no purchase entry, no succeeded charge, failed in both D1 and the
 * ledger; and auto-recharge off unless the customer switched it on after the latest failure.
 * An enable in the same step as a failure came first: nothing is in flight when a step starts,
 * so the failure can only be of a payment that step started.
 */
export function failedPaymentsInert(s: SystemSnapshot, h: FailureHistory): Violation[] {
  const out: Violation[] = [];
  const failed = failedIds(s);
  const purchases = new Set(s.ledger.filter((e) => e.kind === "purchase").map((e) => e.ref));
  const charged = new Set(
    s.stripe.filter((p) => p.status === "paid").map((p) => p.rechargeId ?? ""),
  );
  const d1 = new Map(s.d1.map((r) => [r.id, r.status] as const));
  const ledger = new Map(s.recharges.map((r) => [r.id, r.status] as const));
  for (const id of failed) {
    if (purchases.has(id)) out.push({ invariant: 5, detail: `failed ${id} was credited` });
    if (charged.has(id)) out.push({ invariant: 5, detail: `failed ${id} has a succeeded charge` });
    if (d1.get(id) !== ledger.get(id))
      out.push({
        invariant: 5,
        detail: `${id} is ${d1.get(id) ?? "missing"} in D1 but ${ledger.get(id) ?? "missing"} in the ledger`,
      });
  }
  const latestFailure = Math.max(
    -1,
    ...[...failed].map((id) => h.failureFirstSeen[id] ?? Number.POSITIVE_INFINITY),
  );
  if (latestFailure >= 0 && h.lastEnableStep <= latestFailure && s.autoEnabled) {
    out.push({
      invariant: 5,
      detail: `auto-recharge is on after the failure seen at step ${latestFailure} (last enabled at step ${h.lastEnableStep})`,
    });
  }
  return out;
}

/** Records the step at which each failure was first seen (pure: returns a new history). */
export function noteFailures(h: FailureHistory, s: SystemSnapshot, step: number): FailureHistory {
  const failureFirstSeen = { ...h.failureFirstSeen };
  for (const id of failedIds(s)) failureFirstSeen[id] ??= step;
  return { ...h, failureFirstSeen };
}

// ------------------------------------------------------------------------------ invariant 6

const allowanceOf = (plan: string | undefined): number =>
  plan && plan in PLANS ? PLANS[plan as keyof typeof PLANS].monthlyCredits : 0;

/**
 * Replays the ledger's plan entries cycle by cycle: a cycle starts with its grant (the initial
 * grant, or a cycle grant for a new period, naming the plan whose allowance it granted), and
 * every plan change or paid upgrade after it may add at most what brings the cycle's grants to
 * the largest allowance of the plans it saw.
 */
export function planGrantsWithinCycleBound(s: LedgerSnapshot): Violation[] {
  const out: Violation[] = [];
  let start = 0;
  let largest = 0;
  let added = 0;
  for (const e of s.ledger) {
    const note = e.note ?? "";
    if (e.kind === "cycle_grant" && /^initial monthly credits/.test(note)) {
      start = e.monthly_delta;
      largest = start;
      added = 0;
      continue;
    }
    const cycle = e.kind === "cycle_grant" ? /^cycle (\w+)$/.exec(note) : null;
    if (cycle) {
      start = allowanceOf(cycle[1]);
      largest = start;
      added = 0;
      continue;
    }
    if (e.kind !== "plan_change" && e.kind !== "upgrade_grant") continue;
    // Only a paid upgrade granted for this cycle raises what was paid for; a plan change (a
    // subscription event) pays for nothing.
    if (e.kind === "upgrade_grant") {
      largest = Math.max(largest, allowanceOf(/^paid upgrade -> (\w+)$/.exec(note)?.[1]));
    }
    added += e.monthly_delta;
    if (start + added > largest) {
      out.push({
        invariant: 6,
        detail: `after ${e.ref} (${note}) the cycle's plan grants are ${start + added}, past the largest allowance paid for, ${largest}`,
      });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ invariant 7

export function keepsAFullKey(s: SystemSnapshot): Violation[] {
  return s.activeFullKeys >= 1
    ? []
    : [{ invariant: 7, detail: `${s.activeFullKeys} active full keys` }];
}

// ------------------------------------------------------------------------------ together

/** The invariants that hold at every instant (the ledger writes each change atomically). */
export function checkLedger(s: LedgerSnapshot): Violation[] {
  return [
    ...balanceNeverNegative(s),
    ...ledgerReplaysToBalance(s),
    ...oneAutoRechargeInFlight(s),
    ...planGrantsWithinCycleBound(s),
  ];
}

/** All seven, for a snapshot taken when nothing is in flight. */
export function checkSystem(s: SystemSnapshot, h: FailureHistory): Violation[] {
  return [
    ...checkLedger(s),
    ...chargesMatchCredits(s),
    ...failedPaymentsInert(s, h),
    ...keepsAFullKey(s),
  ];
}
