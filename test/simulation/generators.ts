/**
 * Random steps from a seeded PRNG. A step is plain data, so a failing run prints the exact
 * sequence that led to it. The generator reads the model (never the live system), so the same
 * seed makes the same choices as long as the system keeps agreeing with the model.
 */
import { PACKAGE_IDS, type PackageId, type PlanId } from "../../src/pricing";
import { type BillingEvent, CARD_IDS, type CardId, type ModelState, total } from "./model";
import type { Prng } from "./prng";

/** A fault for the local Stripe server, scoped to this account's customer. */
export interface FaultPlan {
  kind: "500" | "drop_before" | "drop_after" | "delay";
  /** At most 2, so a recharge always finishes within the queue's retries. */
  times: number;
  ms: number;
}

/** Extra stress around a step that starts a purchase; ignored by steps that start none. */
export interface PurchaseStress {
  fault?: FaultPlan;
  /** The ledger's next queue send fails; the outbox and its alarm must carry the job. */
  queueSendFails?: boolean;
  /** The same job delivered again by hand while the real delivery is being processed. */
  racingRedelivery?: boolean;
  /** The reconciler, an hour in the future, runs while the recharge is in flight. */
  racingReconcile?: boolean;
}

export type Action =
  | { kind: "classify"; count: number }
  | { kind: "upstreamFailure" }
  | { kind: "freeRequest" }
  | { kind: "directDebit"; cost: number }
  | { kind: "directRefund"; pick: number }
  | { kind: "setBalance"; monthly: number; purchased: number }
  | { kind: "adjust"; monthly: number; purchased: number; idempotencyKey: string | null }
  | { kind: "autoRecharge"; enabled?: boolean; package?: PackageId }
  | { kind: "topUp"; package: PackageId; idempotencyKey: string | null }
  | { kind: "attachCard"; card: CardId }
  | { kind: "webhook"; event: number; delivery: "once" | "twice" | "concurrent" | "newEventId" }
  | { kind: "redeliver"; pick: number; copies: number }
  | { kind: "reconcile"; later: boolean }
  | { kind: "restart" }
  | { kind: "revokeKeys"; extra: number }
  /**
   * `count` debits of 1 sent at once, and the object aborted while they are in flight:
   * between a debit's decision in memory and its reply (its write, alone or shared with the
   * debits decided beside it, comes between them).
   */
  | { kind: "crashDebits"; count: number };

export type Step = Action & {
  stress?: PurchaseStress;
  /** Abort the account's Durable Object right after the action, while its work is in flight. */
  restartInflight?: boolean;
};

/** What the generator knows beyond the model: the subscription's billing timeline. */
export interface GeneratorContext {
  timeline: TimelineEvent[];
}

const WEIGHTS = {
  classify: 14,
  upstreamFailure: 5,
  freeRequest: 2,
  directDebit: 10,
  directRefund: 4,
  setBalance: 12,
  adjust: 6,
  autoRecharge: 9,
  topUp: 8,
  attachCard: 4,
  webhook: 7,
  redeliver: 4,
  reconcile: 3,
  restart: 3,
  revokeKeys: 2,
  crashDebits: 3,
} as const satisfies Record<Action["kind"], number>;

const TOP_UP_KEYS = ["topup-a", "topup-b", "topup-c"];
const ADJUST_KEYS = ["adjust-a", "adjust-b"];

export function generateStep(rng: Prng, model: ModelState, ctx: GeneratorContext): Step {
  const action = generateAction(rng, model, ctx);
  const step: Step = { ...action };
  // Only used when the step starts a purchase (the driver asks the model).
  if (rng.chance(0.6)) step.stress = generateStress(rng);
  if (action.kind !== "restart" && rng.chance(0.08)) step.restartInflight = true;
  // It restarts the object itself, at a moment the stress could not aim at.
  if (action.kind === "crashDebits") {
    delete step.stress;
    delete step.restartInflight;
  }
  return step;
}

function generateStress(rng: Prng): PurchaseStress {
  const stress: PurchaseStress = {};
  if (rng.chance(0.6)) {
    const kind = rng.pick(["500", "drop_before", "drop_after", "delay"] as const);
    stress.fault = { kind, times: rng.int(1, 2), ms: kind === "delay" ? rng.int(100, 700) : 0 };
  }
  if (rng.chance(0.2)) stress.queueSendFails = true;
  if (rng.chance(0.25)) stress.racingRedelivery = true;
  if (rng.chance(0.2)) stress.racingReconcile = true;
  return stress;
}

function generateAction(rng: Prng, model: ModelState, ctx: GeneratorContext): Action {
  // Without a card nothing can be bought: find one sooner.
  const kind = rng.weighted(
    model.card === null ? { ...WEIGHTS, attachCard: WEIGHTS.attachCard * 4 } : WEIGHTS,
  );
  switch (kind) {
    case "classify":
      return { kind, count: rng.int(1, 4) };
    case "upstreamFailure":
    case "freeRequest":
    case "restart":
      return { kind };
    case "crashDebits":
      return { kind, count: rng.int(2, 10) };
    case "directDebit":
      // Mostly small, sometimes enough to cross the threshold or be refused.
      return { kind, cost: rng.chance(0.8) ? rng.int(1, 30) : rng.int(100, 900) };
    case "directRefund":
      return { kind, pick: rng.int(0, 1_000) };
    case "setBalance": {
      // Near the threshold, where the interesting things happen.
      const target = rng.int(0, 260);
      const monthly = rng.int(0, target);
      return { kind, monthly, purchased: target - monthly };
    }
    case "adjust": {
      const monthly = rng.int(-400, 400);
      const purchased = rng.chance(0.5) ? rng.int(-total(model), 300) : 0;
      return {
        kind,
        monthly: monthly === 0 && purchased === 0 ? 1 : monthly,
        purchased,
        idempotencyKey: rng.chance(0.4) ? rng.pick(ADJUST_KEYS) : null,
      };
    }
    case "autoRecharge": {
      const change: { enabled?: boolean; package?: PackageId } = {};
      if (rng.chance(0.75)) change.enabled = rng.chance(0.75);
      if (rng.chance(0.5)) change.package = rng.pick(PACKAGE_IDS);
      return { kind, ...change };
    }
    case "topUp":
      return {
        kind,
        package: rng.pick(PACKAGE_IDS),
        idempotencyKey: rng.chance(0.5) ? rng.pick(TOP_UP_KEYS) : null,
      };
    case "attachCard": {
      // Working cards more often, so purchases keep happening after a decline. Cards attached
      // before come back too (re-attaching once left Stripe's default on the other card).
      const good = CARD_IDS.filter((c) => c === "pm_card_visa" || c === "pm_card_mastercard");
      return { kind, card: rng.chance(0.6) ? rng.pick(good) : rng.pick(CARD_IDS) };
    }
    case "webhook": {
      // Any event, in any order, any number of times: a late invoice after the cancellation
      // included (it once reset a free account's cycles).
      const delivery = rng.weighted({ once: 5, twice: 2, concurrent: 2, newEventId: 1 });
      return { kind, event: rng.int(0, ctx.timeline.length - 1), delivery };
    }
    case "redeliver":
      return { kind, pick: rng.int(0, 1_000), copies: rng.int(1, 3) };
    case "reconcile":
      return { kind, later: rng.chance(0.5) };
    case "revokeKeys":
      return { kind, extra: rng.int(1, 3) };
  }
}

// ------------------------------------------------------------------------ billing timeline

/** One event of the subscription's life, as Stripe would send it. */
export interface TimelineEvent {
  type:
    | "customer.subscription.created"
    | "customer.subscription.updated"
    | "customer.subscription.deleted"
    | "invoice.paid";
  eventId: string;
  createdSeconds: number;
  plan: Exclude<PlanId, "free">;
  /** A proration invoice's change: from this plan to `plan`. */
  from?: Exclude<PlanId, "free">;
  invoice?: {
    id: string;
    billingReason: "subscription_create" | "subscription_cycle" | "subscription_update";
    periodStart: number;
    periodEnd: number;
  };
}

const DAY = 86_400;

/**
 * A subscription's life: created on one paid plan, first invoice, upgraded or downgraded with a
 * proration invoice, next cycle's invoice, then cancelled. The simulation delivers these in
 * random order, some twice, some concurrently.
 */
export function billingTimeline(rng: Prng, seed: number, t0: number): TimelineEvent[] {
  const first = rng.pick(["starter", "pro"] as const);
  const second: "starter" | "pro" = first === "starter" ? "pro" : "starter";
  const id = (what: string) => `${what}_sim${seed}_${rng.int(0, 2 ** 30)}`;
  const invoice = (
    k: number,
    reason: NonNullable<TimelineEvent["invoice"]>["billingReason"],
  ): TimelineEvent["invoice"] => ({
    id: id("in"),
    billingReason: reason,
    periodStart: t0 + k * 30 * DAY,
    periodEnd: t0 + (k + 1) * 30 * DAY,
  });
  return [
    {
      type: "customer.subscription.created",
      eventId: id("evt"),
      createdSeconds: t0 + 10,
      plan: first,
    },
    {
      type: "invoice.paid",
      eventId: id("evt"),
      createdSeconds: t0 + 11,
      plan: first,
      invoice: invoice(0, "subscription_create"),
    },
    {
      type: "customer.subscription.updated",
      eventId: id("evt"),
      createdSeconds: t0 + 20,
      plan: second,
    },
    {
      type: "invoice.paid",
      eventId: id("evt"),
      createdSeconds: t0 + 21,
      plan: second,
      from: first,
      invoice: invoice(0, "subscription_update"),
    },
    {
      type: "invoice.paid",
      eventId: id("evt"),
      createdSeconds: t0 + 30 * DAY,
      plan: second,
      invoice: invoice(1, "subscription_cycle"),
    },
    {
      type: "customer.subscription.deleted",
      eventId: id("evt"),
      createdSeconds: t0 + 40 * DAY,
      plan: second,
    },
    // 6–9: plan flip-flops within the first cycle (money rule 9: they once minted monthly
    // credits). Last in the list so the indices above stay stable.
    ...([first, second, first, second] as const).map(
      (plan, i): TimelineEvent => ({
        type: "customer.subscription.updated",
        eventId: id("evt"),
        createdSeconds: t0 + 22 + i,
        plan,
      }),
    ),
    // 10–12: a change to Starter and two paid upgrades to Pro in the first cycle (money rule
    // 9: credits come with the upgrade's paid invoice, up to the largest allowance paid for).
    {
      type: "customer.subscription.updated",
      eventId: id("evt"),
      createdSeconds: t0 + 28,
      plan: "starter",
    },
    {
      type: "invoice.paid",
      eventId: id("evt"),
      createdSeconds: t0 + 29,
      plan: "pro",
      from: "starter",
      invoice: invoice(0, "subscription_update"),
    },
    {
      type: "invoice.paid",
      eventId: id("evt"),
      createdSeconds: t0 + 27,
      plan: "pro",
      from: "starter",
      invoice: invoice(0, "subscription_update"),
    },
  ];
}

const EVENT_RANK: Record<TimelineEvent["type"], number> = {
  "customer.subscription.created": 1,
  "invoice.paid": 2,
  "customer.subscription.updated": 3,
  "customer.subscription.deleted": 4,
};

/** The model's view of a timeline event (versions as the contract orders events). */
export function asBillingEvent(e: TimelineEvent, eventId = e.eventId): BillingEvent {
  const version = e.createdSeconds * 10 + EVENT_RANK[e.type];
  if (e.type !== "invoice.paid" || !e.invoice) {
    const plan = e.type === "customer.subscription.deleted" ? "free" : e.plan;
    return { type: "subscription", id: eventId, plan, version };
  }
  return {
    type: "invoice",
    id: eventId,
    invoiceId: e.invoice.id,
    plan: e.plan,
    version,
    startsAt: e.invoice.periodStart * 1000,
    endsAt: e.invoice.periodEnd * 1000,
    cycle: e.invoice.billingReason !== "subscription_update",
    ...(e.from ? { from: e.from } : {}),
  };
}
