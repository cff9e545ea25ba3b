// @ts-check
/**
 * Subscription schedules, as far as the customer portal uses them: a downgrade the portal
 * schedules at period end (`schedule_at_period_end`) is a schedule with two phases, the
 * current price until the period ends and the new price for one period after it,
 * `end_behavior: release`. Renewal (billing.mjs) moves it to its next phase and releases the
 * subscription after the last one. The API can retrieve, list and release schedules.
 */
import {
  getOr404,
  invalidRequest,
  newestFirst,
  newId,
  now,
  paginate,
  readBoolean,
  readString,
  rejectUnknown,
} from "./lib.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */

/**
 * @param {{ price: string, quantity: number }[]} items
 * @param {string} currency
 * @param {number} start
 * @param {number} end
 */
function phase(items, currency, start, end) {
  return {
    add_invoice_items: [],
    application_fee_percent: null,
    billing_cycle_anchor: null,
    billing_thresholds: null,
    collection_method: null,
    currency,
    default_payment_method: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    end_date: end,
    invoice_settings: null,
    items: items.map((i) => ({
      billing_thresholds: null,
      discounts: [],
      metadata: {},
      plan: i.price,
      price: i.price,
      quantity: i.quantity,
      tax_rates: [],
    })),
    metadata: {},
    on_behalf_of: null,
    proration_behavior: "create_prorations",
    start_date: start,
    transfer_data: null,
    trial_end: null,
  };
}

/**
 * Schedules a switch of the subscription's first item to `price` at the end of the period.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {Json} price
 * @param {(ts: number, interval: string, count: number) => number} addInterval
 */
export function scheduleAtPeriodEnd(ctx, subscription, price, addInterval) {
  const item = subscription.items.data[0];
  const start = item.current_period_start;
  const end = item.current_period_end;
  const next = addInterval(end, price.recurring.interval, price.recurring.interval_count);
  const id = newId("sub_sched_");
  const schedule = {
    id,
    object: "subscription_schedule",
    application: null,
    billing_mode: { flexible: null, type: "classic" },
    canceled_at: null,
    completed_at: null,
    created: now(),
    current_phase: { end_date: end, start_date: start },
    customer: subscription.customer,
    customer_account: null,
    default_settings: {
      application_fee_percent: null,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null },
      billing_cycle_anchor: "automatic",
      billing_thresholds: null,
      collection_method: subscription.collection_method,
      default_payment_method: subscription.default_payment_method,
      description: null,
      invoice_settings: { account_tax_ids: null, days_until_due: null, issuer: { type: "self" } },
      on_behalf_of: null,
      transfer_data: null,
    },
    end_behavior: "release",
    livemode: false,
    metadata: {},
    phases: [
      phase([{ price: item.price.id, quantity: item.quantity }], subscription.currency, start, end),
      phase([{ price: price.id, quantity: item.quantity }], subscription.currency, end, next),
    ],
    released_at: null,
    released_subscription: null,
    status: "active",
    subscription: subscription.id,
    test_clock: null,
  };
  ctx.state.subscriptionSchedules.set(id, schedule);
  ctx.emit("subscription_schedule.created", schedule);
  const previous = subscription.schedule;
  subscription.schedule = id;
  ctx.emit("customer.subscription.updated", subscription, { schedule: previous });
  return schedule;
}

/**
 * Detaches a schedule from its subscription; the subscription keeps its current items.
 * @param {Ctx} ctx
 * @param {Json} schedule
 * @param {Json | undefined} subscription
 * @param {boolean} emitSubscription Emit `customer.subscription.updated` (schedule: null).
 */
export function releaseSchedule(ctx, schedule, subscription, emitSubscription) {
  schedule.status = "released";
  schedule.released_at = now();
  schedule.released_subscription = schedule.subscription;
  schedule.subscription = null;
  schedule.current_phase = null;
  ctx.emit("subscription_schedule.released", schedule);
  if (subscription && subscription.schedule === schedule.id) {
    subscription.schedule = null;
    if (emitSubscription) {
      ctx.emit("customer.subscription.updated", subscription, { schedule: schedule.id });
    }
  }
}

/**
 * At period end (`at`): the phase starting then becomes current and its items are returned
 * for the subscription to take; after the last phase the schedule releases the subscription
 * (`end_behavior: release`) and null is returned.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {number} at
 * @returns {{ price: string, quantity: number }[] | null}
 */
export function advanceSchedule(ctx, subscription, at) {
  const schedule = subscription.schedule
    ? ctx.state.subscriptionSchedules.get(subscription.schedule)
    : null;
  if (schedule?.status !== "active") return null;
  const next = schedule.phases.find((/** @type {Json} */ p) => p.start_date === at);
  if (!next) {
    releaseSchedule(ctx, schedule, subscription, false);
    return null;
  }
  schedule.current_phase = { end_date: next.end_date, start_date: next.start_date };
  ctx.emit("subscription_schedule.updated", schedule, {
    current_phase: { end_date: at, start_date: schedule.phases[0].start_date },
  });
  return next.items.map((/** @type {Json} */ i) => ({ price: i.price, quantity: i.quantity }));
}

/** @param {Ctx} ctx */
const scheduleFromPath = (ctx) =>
  getOr404(ctx.state.subscriptionSchedules, ctx.pathParams.id ?? "", "subscription_schedule");

/** @param {Ctx} ctx */
function retrieveSchedule(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: scheduleFromPath(ctx) };
}

/** @param {Ctx} ctx */
function listSchedules(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "canceled_at",
    "completed_at",
    "created",
    "customer",
    "customer_account",
    "ending_before",
    "expand",
    "limit",
    "released_at",
    "scheduled",
    "starting_after",
  ]);
  const customer = readString(params, "customer");
  const scheduled = readBoolean(params, "scheduled");
  const items = newestFirst(
    ctx.state.subscriptionSchedules,
    (s) =>
      (!customer || s.customer === customer) &&
      (scheduled === undefined || (s.status === "not_started") === scheduled),
  );
  return { body: paginate(items, params, "/v1/subscription_schedules") };
}

/** @param {Ctx} ctx */
function releaseEndpoint(ctx) {
  rejectUnknown(ctx.params, ["expand", "preserve_cancel_date"]);
  const schedule = scheduleFromPath(ctx);
  if (schedule.status !== "active" && schedule.status !== "not_started") {
    throw invalidRequest(
      `You cannot release a subscription schedule that is currently in the \`${schedule.status}\` status. It must be in the \`not_started\` or \`active\` status.`,
    );
  }
  releaseSchedule(ctx, schedule, ctx.state.subscriptions.get(schedule.subscription ?? ""), true);
  return { body: schedule };
}

export const SCHEDULE_ROUTES = /** @type {const} */ ([
  ["GET", "/v1/subscription_schedules", listSchedules, ["data.customer", "data.subscription"]],
  ["GET", "/v1/subscription_schedules/:id", retrieveSchedule, ["customer", "subscription"]],
  ["POST", "/v1/subscription_schedules/:id/release", releaseEndpoint, ["customer", "subscription"]],
]);
