import Stripe from "stripe";
import { ApiError } from "../errors";

/** Stripe failures reaching an HTTP route: the client's mistake is a 400, the rest a 502. */
export function providerError(err: unknown, field?: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof Stripe.errors.StripeInvalidRequestError && field) {
    return ApiError.invalidRequest(err.message, [{ field, message: err.code ?? "invalid" }]);
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
