import { describe, expect, it } from "vitest";
import { type CheckoutFacts, checkoutReturn } from "../../src/web/billing/checkout-return";

const session: CheckoutFacts = {
  status: "complete",
  mode: "subscription",
  accountId: "acct_1",
  plan: "starter",
  subscriptionId: "sub_1",
  paymentStatus: "paid",
};
const free = {
  accountId: "acct_1",
  subscriptionId: null,
  subscriptionStatus: null,
  plan: "free" as const,
  ledgerPlan: "free" as const,
};
const mirrored = {
  ...free,
  subscriptionId: "sub_1",
  subscriptionStatus: "active",
  plan: "starter" as const,
  ledgerPlan: "starter" as const,
};

describe("back from a plan Checkout", () => {
  it("paid, webhooks not yet arrived: being activated", () => {
    expect(checkoutReturn(session, free)).toEqual({
      state: "activating",
      plan: "starter",
      paid: true,
    });
    // A payment method that settles later: complete, but not "payment received".
    expect(checkoutReturn({ ...session, paymentStatus: "unpaid" }, free)).toMatchObject({
      state: "activating",
      paid: false,
    });
  });

  it("paid and mirrored in D1 and the ledger: active; half mirrored is still activating", () => {
    expect(checkoutReturn(session, mirrored)).toEqual({ state: "active", plan: "starter" });
    expect(checkoutReturn(session, { ...mirrored, ledgerPlan: "free" }).state).toBe("activating");
    expect(checkoutReturn(session, { ...mirrored, subscriptionId: "sub_old" }).state).toBe(
      "activating",
    );
    expect(checkoutReturn(session, { ...mirrored, subscriptionStatus: "incomplete" }).state).toBe(
      "activating",
    );
  });

  it("open or expired: not completed", () => {
    for (const status of ["open", "expired"]) {
      expect(checkoutReturn({ ...session, status, subscriptionId: null }, free)).toEqual({
        state: "not_completed",
      });
    }
  });

  it("another account's session, a setup session, an unknown id or plan: nothing to say", () => {
    expect(checkoutReturn({ ...session, accountId: "acct_2" }, free).state).toBe("unknown");
    expect(checkoutReturn({ ...session, mode: "setup" }, free).state).toBe("unknown");
    expect(checkoutReturn({ ...session, plan: "gold" }, free).state).toBe("unknown");
    expect(checkoutReturn(null, free).state).toBe("unknown");
  });
});
