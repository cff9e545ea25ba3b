import type { AccountRow } from "../db/accounts";

/** The account as `GET /v1/account` shows it (the Billing page and operators read the same). */
export function accountView(a: AccountRow) {
  return {
    id: a.id,
    email: a.email,
    plan: a.plan,
    created_at: a.createdAt,
    complimentary: a.complimentary,
    subscription:
      a.stripeSubscriptionId && a.subscriptionStatus
        ? {
            status: a.subscriptionStatus,
            current_period_end: a.subscriptionPeriodEnd,
            cancel_at_period_end: a.subscriptionCancelAtPeriodEnd,
          }
        : null,
    payment_method: a.paymentMethodId
      ? {
          brand: a.cardBrand,
          last4: a.cardLast4,
          exp_month: a.cardExpMonth,
          exp_year: a.cardExpYear,
        }
      : null,
    // An operator's suspension and why: the account's people see it here and on the page.
    suspension: a.suspendedAt ? { suspended_at: a.suspendedAt, reason: a.suspensionReason } : null,
  };
}

export type AccountView = ReturnType<typeof accountView>;
