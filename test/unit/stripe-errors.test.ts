import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { declinedOutcome } from "../../src/purchases/payments";
import { providerError } from "../../src/stripe/errors";

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

/**
 * Stripe has one test card that attaches and then declines (`pm_card_chargeCustomerFail`,
 * always `generic_decline`): a saved card failing at recharge with insufficient funds or as
 * expired cannot be made with a test card, so the codes of those declines are checked here.
 */
describe("declinedOutcome (a recharge's invoice payment declined)", () => {
  const invoice = {
    id: "in_1",
    hosted_invoice_url: "https://invoice.stripe.com/i/in_1",
  } as unknown as Stripe.Invoice;
  const cardError = (raw: Record<string, unknown>) =>
    new Stripe.errors.StripeCardError({ type: "card_error", ...raw });

  it.each([
    ["card_declined", "generic_decline", "Your card was declined.", "card_declined"],
    [
      "card_declined",
      "insufficient_funds",
      "Your card has insufficient funds.",
      "insufficient_funds",
    ],
    ["expired_card", "expired_card", "Your card has expired.", "expired_card"],
    ["incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "incorrect_cvc"],
    ["card_declined", undefined, "Your card was declined.", "card_declined"],
  ])("%s / %s is a failure coded %s", (code, declineCode, message, expected) => {
    const outcome = declinedOutcome(
      cardError({ code, decline_code: declineCode, message, payment_intent: { id: "pi_1" } }),
      invoice,
    );
    expect(outcome).toEqual({
      status: "failed",
      code: expected,
      message,
      invoiceId: "in_1",
      invoiceUrl: "https://invoice.stripe.com/i/in_1",
      paymentIntentId: "pi_1",
    });
  });

  it("a card that needs authentication waits on the invoice page", () => {
    for (const raw of [
      { code: "invoice_payment_intent_requires_action" },
      { code: "card_declined", decline_code: "authentication_required" },
      { code: "card_declined", payment_intent: { id: "pi_2", status: "requires_action" } },
    ]) {
      expect(declinedOutcome(cardError({ message: "x", ...raw }), invoice)).toMatchObject({
        status: "requires_action",
        code: "authentication_required",
        actionUrl: "https://invoice.stripe.com/i/in_1",
      });
    }
  });
});
