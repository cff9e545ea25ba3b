// @ts-check
/**
 * Charges (retrieve) and refunds of card charges: whole or partial, by PaymentIntent or Charge. Card refunds
 * succeed at once in test mode; the charge's `amount_refunded`/`refunded` follow, with
 * `refund.created` and `charge.refunded`.
 */
import {
  getOr404,
  invalidRequest,
  mergeMetadata,
  newestFirst,
  newId,
  now,
  paginate,
  readEnum,
  readInteger,
  readMetadata,
  readString,
  rejectUnknown,
} from "./lib.mjs";

/** @typedef {import("./lib.mjs").Ctx} Ctx */

const REASONS = ["duplicate", "fraudulent", "requested_by_customer"];

/** @param {Ctx} ctx */
function createRefund(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "amount",
    "charge",
    "currency",
    "customer",
    "expand",
    "instructions_email",
    "metadata",
    "origin",
    "payment_intent",
    "reason",
    "refund_application_fee",
    "reverse_transfer",
  ]);
  const chargeId = readString(params, "charge");
  const piId = readString(params, "payment_intent");
  if (!chargeId && !piId) {
    throw invalidRequest(
      "One of the following params should be provided for this request: payment_intent or charge.",
    );
  }
  if (chargeId && piId) {
    throw invalidRequest("You cannot specify both the charge and payment_intent parameters.", {
      param: "payment_intent",
    });
  }
  let charge;
  if (piId) {
    const pi = getOr404(state.paymentIntents, piId, "payment_intent", "payment_intent");
    charge = pi.status === "succeeded" ? state.charges.get(pi.latest_charge) : undefined;
    if (!charge) {
      throw invalidRequest(
        `This PaymentIntent (${piId}) does not have a successful charge to refund.`,
        {
          param: "payment_intent",
        },
      );
    }
  } else {
    charge = getOr404(state.charges, chargeId ?? "", "charge", "charge");
  }
  const left = charge.amount_captured - charge.amount_refunded;
  if (left <= 0) {
    throw invalidRequest(`Charge ${charge.id} has already been refunded.`, {
      code: "charge_already_refunded",
    });
  }
  const amount = readInteger(params, "amount") ?? left;
  if (amount <= 0 || amount > left) {
    throw invalidRequest(
      `Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`,
      { param: "amount" },
    );
  }
  const id = newId("re_");
  const refund = {
    id,
    object: "refund",
    amount,
    balance_transaction: newId("txn_"),
    charge: charge.id,
    created: now(),
    currency: charge.currency,
    customer: charge.customer,
    customer_account: null,
    destination_details: {
      card: {
        reference_status: "pending",
        reference_type: "acquirer_reference_number",
        type: "refund",
      },
      type: "card",
    },
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
    payment_intent: charge.payment_intent,
    payment_method: charge.payment_method,
    reason: readEnum(params, "reason", REASONS) ?? null,
    receipt_number: null,
    source_transfer_reversal: null,
    status: "succeeded",
    transfer_reversal: null,
  };
  state.refunds.set(id, refund);
  const previous = { amount_refunded: charge.amount_refunded, refunded: charge.refunded };
  charge.amount_refunded += amount;
  charge.refunded = charge.amount_refunded === charge.amount_captured;
  // Charges saved by an older server (persistPath) have no refunds list yet.
  charge.refunds ??= {
    object: "list",
    data: [],
    has_more: false,
    total_count: 0,
    url: `/v1/charges/${charge.id}/refunds`,
  };
  charge.refunds.data.unshift(refund);
  charge.refunds.total_count += 1;
  ctx.emit("refund.created", refund);
  ctx.emit("charge.refunded", charge, previous);
  return { body: refund };
}

/** @param {Ctx} ctx */
function retrieveCharge(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getOr404(ctx.state.charges, ctx.pathParams.id ?? "", "charge") };
}

/** @param {Ctx} ctx */
function retrieveRefund(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getOr404(ctx.state.refunds, ctx.pathParams.id ?? "", "refund") };
}

/** @param {Ctx} ctx */
function listRefunds(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "charge",
    "created",
    "ending_before",
    "expand",
    "limit",
    "payment_intent",
    "starting_after",
  ]);
  const charge = readString(params, "charge");
  const pi = readString(params, "payment_intent");
  const items = newestFirst(
    ctx.state.refunds,
    (r) => (!charge || r.charge === charge) && (!pi || r.payment_intent === pi),
  );
  return { body: paginate(items, params, "/v1/refunds") };
}

export const REFUND_ROUTES = /** @type {const} */ ([
  ["GET", "/v1/charges/:id", retrieveCharge, ["customer", "payment_intent"]],
  ["POST", "/v1/refunds", createRefund, ["charge", "payment_intent"]],
  ["GET", "/v1/refunds", listRefunds, ["data.charge", "data.payment_intent"]],
  ["GET", "/v1/refunds/:id", retrieveRefund, ["charge", "payment_intent"]],
]);
