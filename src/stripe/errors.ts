import Stripe from "stripe";
import { ApiError } from "../platform/errors";

/**
 * Stripe failures reaching an HTTP route: the client's mistake is a 400, the rest a 502. A card
 * the issuer declines while it is attached (Stripe checks a card when it is saved: every decline
 * test card but `pm_card_chargeCustomerFail` fails there) is the card's problem, not the
 * provider's: a 400 naming the field, with the decline code.
 */
export function providerError(err: unknown, field?: string): ApiError {
  if (err instanceof ApiError) return err;
  if (
    (err instanceof Stripe.errors.StripeInvalidRequestError ||
      err instanceof Stripe.errors.StripeCardError) &&
    field
  ) {
    const code =
      err instanceof Stripe.errors.StripeCardError ? (err.decline_code ?? err.code) : err.code;
    return ApiError.invalidRequest(err.message, [{ field, message: code ?? "invalid" }]);
  }
  if (err instanceof Stripe.errors.StripeError) {
    return new ApiError(
      "payment_provider_error",
      "The payment provider could not complete the request.",
      {
        extra: { provider_code: err.code ?? err.type },
      },
    );
  }
  return new ApiError("payment_provider_error", "The payment provider could not be reached.");
}
