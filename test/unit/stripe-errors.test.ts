import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { providerError } from "../../src/billing/stripe-errors";

describe("providerError", () => {
  it("a card declined when it is attached is a 400 naming the field, with the decline code", () => {
    const declined = new Stripe.errors.StripeCardError({
      type: "card_error",
      code: "card_declined",
      decline_code: "generic_decline",
      message: "Your card was declined.",
    });
    const err = providerError(declined, "payment_method");
    expect(err.status).toBe(400);
    expect(err.type).toBe("invalid_request");
    expect(err.message).toBe("Your card was declined.");
    expect(err.extra).toMatchObject({
      fields: [{ field: "payment_method", message: "generic_decline" }],
    });
  });

  it("an invalid request is a 400 naming the field; other Stripe failures are 502", () => {
    const invalid = new Stripe.errors.StripeInvalidRequestError({
      type: "invalid_request_error",
      code: "resource_missing",
      message: "No such PaymentMethod: 'pm_x'",
    });
    expect(providerError(invalid, "payment_method").status).toBe(400);
    const api = new Stripe.errors.StripeAPIError({ type: "api_error", message: "boom" });
    expect(providerError(api, "payment_method")).toMatchObject({
      status: 502,
      type: "payment_provider_error",
    });
    // Without a field to name, even a card error stays the provider's.
    const card = new Stripe.errors.StripeCardError({ type: "card_error", code: "card_declined" });
    expect(providerError(card).status).toBe(502);
  });
});
