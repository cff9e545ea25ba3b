/** The Billing page's money sections: balance and auto-recharge, plan and card, buying credits, the spending limit, the low-balance email. */
import type { FC } from "hono/jsx";
import { PACKAGE_IDS, PLANS, RECHARGE_THRESHOLD } from "../../pricing";
import {
  centsToDollarsInput,
  failureReason,
  formatCredits,
  formatDate,
  formatPrice,
  formatTime,
  packageLabel,
} from "../kit/format";
import type { BillingModel } from "./data";
import { BILLING_PATH } from "./pages";
import { type Activation, Csrf, type CsrfTokens, OneFieldForm } from "./parts";

export const BalanceSection: FC<{
  model: BillingModel;
  tokens: CsrfTokens;
  activation: Activation | null;
  /** Whether the person may change plans, cards and purchases: the forms are shown. */
  billing: boolean;
}> = ({ model, tokens, activation, billing }) => {
  const s = model.snapshot;
  const ar = s.auto_recharge;
  const plan = PLANS[s.plan];
  return (
    <section class="card" aria-labelledby="balance-h">
      <h2 id="balance-h">Credit Balance</h2>
      <dl class="stats">
        <div class="stat">
          <dt>Monthly credits</dt>
          <dd>
            {formatCredits(s.monthly)} <small>of {formatCredits(s.monthly_allowance)}</small>
          </dd>
        </div>
        <div class="stat">
          <dt>Purchased credits</dt>
          <dd>{formatCredits(s.purchased)}</dd>
        </div>
        <div class="stat total">
          <dt>Total credits</dt>
          <dd>{formatCredits(s.total)}</dd>
        </div>
      </dl>
      <p class="meta">
        Plan <strong>{plan.name}</strong> ({formatCredits(plan.monthlyCredits)} credits a month,{" "}
        {formatPrice(plan.priceCents)}/month) · cycle ends{" "}
        <strong>{formatTime(s.cycle_ends_at)}</strong>
      </p>
      <div class="split">
        {billing ? (
          <form method="post" action={`${BILLING_PATH}/auto-recharge`}>
            <Csrf token={tokens["auto-recharge"]} />
            <fieldset>
              <legend>Auto-recharge</legend>
              <p class="check">
                <input
                  type="checkbox"
                  id="ar-enabled"
                  name="enabled"
                  value="on"
                  checked={ar.enabled}
                  aria-describedby="ar-help"
                />
                <label for="ar-enabled">Auto-recharge credits</label>
              </p>
              <p class="hint" id="ar-help">
                When your total balance drops to {formatCredits(RECHARGE_THRESHOLD)} credits or
                below, the package below is bought with your saved payment method.
              </p>
              <label class="field" for="ar-package">
                Credit package
              </label>
              <select id="ar-package" name="package">
                {PACKAGE_IDS.map((id) => (
                  <option value={id} selected={(ar.package ?? PACKAGE_IDS[0]) === id}>
                    {packageLabel(id)}
                  </option>
                ))}
              </select>
              {model.purchases.processing ? (
                <p class="hint" role="status">
                  A recharge is being processed; its credits appear within seconds of payment.
                </p>
              ) : null}
              {!s.has_payment_method ? (
                <p class="hint">
                  No payment method on file: add one with “Add a card” (under Plan and payment)
                  before turning auto-recharge on.
                </p>
              ) : null}
              {ar.paused === "spending_limit_reached" ? (
                <div class="notice warn" id="ar-paused">
                  <p>
                    Auto-recharge is paused until {formatTime(s.limits.period_ends_at)}: another
                    package would take this month's purchases over your spending limit of{" "}
                    {formatPrice(s.limits.monthly_spend_limit_cents ?? 0)}.
                  </p>
                  <p>
                    Raise the limit under <a href="#limit-h">Spending limit</a> to resume it now.
                  </p>
                </div>
              ) : null}
              {ar.last_failure ? <LastFailure model={model} /> : null}
              <div class="actions">
                <button type="submit">Save auto-recharge</button>
                <span class="muted">{ar.enabled ? "Currently on" : "Currently off"}</span>
              </div>
            </fieldset>
          </form>
        ) : (
          <p class="hint" id="ar-state">
            Auto-recharge is {ar.enabled ? "on" : "off"}
            {ar.enabled && ar.package ? ` (${packageLabel(ar.package)})` : ""}.
          </p>
        )}
        <PlanAndPayment model={model} tokens={tokens} activation={activation} billing={billing} />
      </div>
    </section>
  );
};

const PlanAndPayment: FC<{
  model: BillingModel;
  tokens: CsrfTokens;
  activation: Activation | null;
  billing: boolean;
}> = ({ model, tokens, activation, billing }) => {
  const { account } = model;
  const sub = account.subscription;
  const card = account.payment_method;
  // A live subscription is changed in the portal; otherwise Checkout starts one.
  const live = sub !== null && ["active", "trialing", "past_due"].includes(sub.status);
  // A complimentary plan is only offered what it does not already have for free: more credits.
  const offers = (["starter", "pro"] as const).filter(
    (plan) =>
      !account.complimentary || PLANS[plan].monthlyCredits > PLANS[account.plan].monthlyCredits,
  );
  return (
    <div>
      <h3>Plan and payment</h3>
      <p class="hint" id="plan-state">
        {activation
          ? `${PLANS[activation.plan].name} plan: being activated (${activation.paid ? "payment received" : "payment being confirmed"}).`
          : account.complimentary
            ? `${PLANS[account.plan].name}, complimentary (no subscription, nothing is charged for it).`
            : sub
              ? `${PLANS[account.plan].name} subscription: ${sub.status}${
                  sub.current_period_end
                    ? sub.cancel_at_period_end
                      ? `, ends ${formatDate(sub.current_period_end)}`
                      : `, renews ${formatDate(sub.current_period_end)}`
                    : ""
                }.`
              : "No subscription: the Free plan."}
      </p>
      <p class="hint" id="card-on-file">
        {card
          ? `Card on file: ${card.brand ?? "card"} ending ${card.last4 ?? "····"}${
              card.exp_month && card.exp_year
                ? `, expires ${String(card.exp_month).padStart(2, "0")}/${card.exp_year}`
                : ""
            }.`
          : "No card on file yet."}
      </p>
      {!billing || live || activation || offers.length === 0 ? null : (
        <form method="post" action={`${BILLING_PATH}/checkout`} class="actions">
          <Csrf token={tokens.checkout} />
          {offers.map((plan, i) => (
            <button
              type="submit"
              name="plan"
              value={plan}
              class={i === 0 ? undefined : "secondary"}
            >
              Subscribe to {PLANS[plan].name} ({formatPrice(PLANS[plan].priceCents)}/month)
            </button>
          ))}
        </form>
      )}
      {billing ? (
        <div class="actions">
          <form method="post" action={`${BILLING_PATH}/card`}>
            <Csrf token={tokens.checkout} />
            <button type="submit" class="secondary">
              {card ? "Replace card" : "Add a card"}
            </button>
          </form>
          <form method="post" action={`${BILLING_PATH}/portal`}>
            <Csrf token={tokens.portal} />
            <button type="submit" class="secondary">
              Manage plan and billing
            </button>
          </form>
        </div>
      ) : null}
    </div>
  );
};

/**
 * The last failed recharge, as history: it always says what happened; "turned off because of
 * it" only while auto-recharge is still off (turning it back on does not erase the failure).
 * A payment that waits for the customer is not a failure: `PaymentWaiting` says it, once.
 */
const LastFailure: FC<{ model: BillingModel }> = ({ model }) => {
  const ar = model.snapshot.auto_recharge;
  const f = ar.last_failure;
  if (!f || f.action_url) return null;
  return (
    <div class={`notice ${ar.enabled ? "warn" : "bad"}`} id="last-failure">
      <p>
        The last recharge failed on {formatTime(f.at)} ({failureReason(f.code, f.message)}, code{" "}
        <code>{f.code}</code>): nothing was added and nothing was charged.
      </p>
      {ar.enabled ? null : (
        <p>Auto-recharge was turned off because of it. Update your card, then turn it back on.</p>
      )}
    </div>
  );
};

/** Back from a paid plan Checkout before its webhooks: the plan is on its way, not "Free". */
export const Activating: FC<{ activation: Activation }> = ({ activation }) => {
  const plan = PLANS[activation.plan];
  return (
    <div class="notice ok" id="plan-activating" role="status">
      <p>
        <strong>
          {activation.paid ? "Payment received" : "Checkout complete"}: your {plan.name} plan (
          {formatCredits(plan.monthlyCredits)} credits a month) is being activated
          {activation.paid ? "" : " once the payment is confirmed"}.
        </strong>
      </p>
      <p>
        {activation.refreshing
          ? "This page refreshes itself until it shows, usually within seconds. Nothing more needs doing."
          : "Stripe's confirmation is taking longer than usual. Nothing more needs doing and nothing is charged twice: reload this page in a minute or two."}
      </p>
    </div>
  );
};

/**
 * Purchases waiting for the customer's bank (3-D Secure), said once at the top of the page:
 * what waits, where to complete it, and that nothing else can be bought meanwhile.
 */
export const PaymentWaiting: FC<{ model: BillingModel }> = ({ model }) => {
  const p = model.purchases;
  if (!p.sentence) return null;
  return (
    <div class="notice warn" id="payment-waiting" role="status">
      <p>
        <strong>{p.sentence}</strong>
      </p>
      <p>{p.detail}</p>
      {p.links.length > 0 ? (
        <p class="actions">
          {p.links.map((l) => (
            <a href={l.href} class="button">
              {l.label}
            </a>
          ))}
        </p>
      ) : null}
    </div>
  );
};

/**
 * "Buy credits now": a package bought at once with the card on file. The first step is a plain
 * GET to a confirmation page, so nothing is bought without a second, deliberate click.
 */
export const BuyCreditsSection: FC<{ model: BillingModel }> = ({ model }) => {
  const s = model.snapshot;
  const card = model.account.payment_method;
  const low = s.total <= RECHARGE_THRESHOLD;
  return (
    <section class="card" id="buy-credits" aria-labelledby="buy-h">
      <h2 id="buy-h">Buy credits now</h2>
      {low ? (
        <p class="notice warn">
          Your balance is {formatCredits(s.total)} credits
          {s.auto_recharge.enabled ? "" : " and auto-recharge is off"}: requests are refused at
          zero.{" "}
          {model.purchases.canBuy
            ? "Buy a package now to keep going."
            : "Complete the waiting payment to get its credits."}
        </p>
      ) : null}
      {!model.purchases.canBuy ? (
        <p class="hint" id="buy-paused">
          Not offered while a payment waits for your confirmation (see{" "}
          <a href="#payment-waiting">above</a>): completing it adds its credits.
        </p>
      ) : s.has_payment_method ? (
        <form method="get" action={`${BILLING_PATH}/top-up`} class="inline-form">
          <div>
            <label class="field" for="buy-package">
              Package
            </label>
            <select id="buy-package" name="package">
              {PACKAGE_IDS.map((id) => (
                <option value={id}>{packageLabel(id)}</option>
              ))}
            </select>
          </div>
          <button type="submit">Review purchase</button>
        </form>
      ) : (
        <p class="hint">Add a card first (under Plan and payment) to buy credits.</p>
      )}
      <p class="hint">
        {card
          ? `Charged to the ${card.brand ?? "card"} ending ${card.last4 ?? "····"}; you confirm on the next page. `
          : ""}
        Purchased credits do not expire and are used after the monthly ones.
      </p>
    </section>
  );
};

/** The spending limit: spent this month, the limit, and a form to change it. */
export const SpendLimitSection: FC<{ model: BillingModel; token: string | null }> = ({
  model,
  token,
}) => {
  const l = model.snapshot.limits;
  const limit = l.monthly_spend_limit_cents;
  return (
    <section class="card" aria-labelledby="limit-h">
      <h2 id="limit-h">Spending limit</h2>
      <p id="limit-state" aria-describedby="limit-counts">
        Credit purchases this month: <strong>{formatPrice(l.spent_this_month_cents)}</strong>
        {limit === null ? (
          <> · no monthly limit</>
        ) : (
          <>
            {" "}
            of your <strong>{formatPrice(limit)}</strong> monthly limit
          </>
        )}{" "}
        · the month ends {formatTime(l.period_ends_at)}.
      </p>
      <p class="hint" id="limit-counts">
        What the limit counts: auto-recharges and top-ups started this calendar month, including
        those not yet paid (pending, or waiting for your confirmation); failed ones and plan
        subscriptions are not counted.
      </p>
      {model.snapshot.auto_recharge.paused === "spending_limit_reached" ? (
        <p class="notice warn">
          Auto-recharge is paused: another package would take this month past the limit. Raise or
          remove the limit to resume it.
        </p>
      ) : null}
      {token === null ? null : (
        <OneFieldForm
          action={`${BILLING_PATH}/limits`}
          token={token}
          id="limit-dollars"
          name="limit"
          label="Monthly limit in US dollars"
          inputmode="decimal"
          value={limit === null ? "" : centsToDollarsInput(limit)}
          submit="Save limit"
          help="Auto-recharges and top-ups never take a calendar month's purchases over it. Leave empty for no limit."
        />
      )}
    </section>
  );
};

/** The low-balance email: the level, and a form to change or clear it. */
export const AlertsSection: FC<{ model: BillingModel; token: string | null }> = ({
  model,
  token,
}) => {
  const s = model.snapshot;
  const level = s.alerts.low_balance_credits;
  return (
    <section class="card" aria-labelledby="alerts-h">
      <h2 id="alerts-h">Low-balance email</h2>
      <p id="alerts-state">
        {level === null ? (
          <>Off: no email when your balance runs low.</>
        ) : (
          <>
            We email you when your total balance falls to{" "}
            <strong>{formatCredits(level)} credits</strong> or below, once each time.
          </>
        )}
      </p>
      {level !== null && s.total <= level ? (
        <p class="notice warn">
          Your balance ({formatCredits(s.total)} credits) is already at or below this level: the
          next email comes the next time it falls to it after being above it.
        </p>
      ) : null}
      {token === null ? null : (
        <OneFieldForm
          action={`${BILLING_PATH}/alerts`}
          token={token}
          id="alert-credits"
          name="low_balance_credits"
          label="Email me at this balance (credits)"
          inputmode="numeric"
          value={level === null ? "" : String(level)}
          submit="Save alert"
          help="The email says what auto-recharge will do about it. Not sent again until your balance has been above the level. Leave empty to turn it off."
        />
      )}
    </section>
  );
};
