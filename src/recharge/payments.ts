import Stripe from "stripe";
import { RetryableChargeError } from "./errors";
import type { RechargeJob } from "./messages";

export type ChargeOutcome =
  | { status: "succeeded"; paymentIntentId: string }
  | { status: "failed"; code: string; message: string; paymentIntentId: string | null };

/**
 * Charges the saved card off-session for one recharge. The idempotency key is the recharge id,
 * the same on every retry and redelivery, so Stripe creates at most one PaymentIntent for it:
 * a replay after a lost response returns the first result instead of charging again.
 */
export async function chargeRecharge(
  stripe: Stripe,
  job: RechargeJob,
  payer: { customerId: string; paymentMethodId: string },
): Promise<ChargeOutcome> {
  try {
    const intent = await stripe.paymentIntents.create(
      {
        amount: job.amount_cents,
        currency: job.currency,
        customer: payer.customerId,
        payment_method: payer.paymentMethodId,
        off_session: true,
        confirm: true,
        description: `Tollgate ${job.kind === "auto_recharge" ? "auto-recharge" : "top-up"}: ${job.credits} credits`,
        metadata: {
          recharge_id: job.recharge_id,
          account_id: job.account_id,
          package: job.package,
          kind: job.kind,
        },
      },
      { idempotencyKey: job.recharge_id },
    );
    if (intent.status === "succeeded") return { status: "succeeded", paymentIntentId: intent.id };
    if (intent.status === "requires_action" || intent.status === "requires_payment_method") {
      return {
        status: "failed",
        code: "authentication_required",
        message: "The card needs the customer to authenticate this payment.",
        paymentIntentId: intent.id,
      };
    }
    // `processing` and the like settle later; ask again with the same key.
    throw new RetryableChargeError(`payment intent ${intent.id} is ${intent.status}`);
  } catch (err) {
    if (err instanceof RetryableChargeError) throw err;
    if (err instanceof Stripe.errors.StripeIdempotencyError) {
      // The key was used with other parameters (or its first request is still running): the
      // first attempt decides. Whatever it did is in Stripe under this recharge id.
      const first = await findPaymentIntent(stripe, job.recharge_id);
      const settled = first ? outcomeOfIntent(first) : null;
      if (settled) return settled;
      throw new RetryableChargeError(
        `idempotency key ${job.recharge_id} is in use and its first attempt has not settled`,
        { cause: err },
      );
    }
    if (err instanceof Stripe.errors.StripeCardError) {
      const decline =
        err.decline_code && err.decline_code !== "generic_decline" ? err.decline_code : undefined;
      return {
        status: "failed",
        code: decline ?? err.code ?? "card_declined",
        message: err.message,
        paymentIntentId: err.payment_intent?.id ?? null,
      };
    }
    if (err instanceof Stripe.errors.StripeInvalidRequestError) {
      // The request itself can never succeed (e.g. the payment method was removed).
      return {
        status: "failed",
        code: err.code ?? "invalid_payment_request",
        message: err.message,
        paymentIntentId: null,
      };
    }
    throw new RetryableChargeError(err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
}

/** The PaymentIntent a recharge created, found by the recharge id in its metadata. */
export async function findPaymentIntent(
  stripe: Stripe,
  rechargeId: string,
): Promise<Stripe.PaymentIntent | null> {
  const found = await stripe.paymentIntents.search({
    query: `metadata['recharge_id']:'${rechargeId}'`,
    limit: 10,
  });
  return found.data.find((pi) => pi.status === "succeeded") ?? found.data[0] ?? null;
}

/**
 * The outcome a PaymentIntent found in Stripe already stands for (the reconciler's view), so a
 * settled intent is never followed by a second create, whatever the age of its idempotency key.
 */
export function outcomeOfIntent(intent: Stripe.PaymentIntent): ChargeOutcome | null {
  if (intent.status === "succeeded") return { status: "succeeded", paymentIntentId: intent.id };
  const error = intent.last_payment_error;
  if (error) {
    const decline =
      error.decline_code && error.decline_code !== "generic_decline"
        ? error.decline_code
        : undefined;
    return {
      status: "failed",
      code: decline ?? error.code ?? "card_declined",
      message: error.message ?? "The payment failed.",
      paymentIntentId: intent.id,
    };
  }
  return null;
}
