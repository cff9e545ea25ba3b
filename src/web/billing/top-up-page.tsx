/** The confirmation page of "Buy credits now": package, price, card and the spending limit, then one post. */
import type { FC } from "hono/jsx";
import { PACKAGES, type PackageId } from "../../pricing";
import { formatCredits, formatPrice, packageLabel } from "../kit/format";
import type { BillingModel } from "./data";
import { BILLING_PATH } from "./pages";
import { Csrf } from "./parts";

/** The confirmation step of "Buy credits now": what is bought, for how much, with which card. */
export const TopUpConfirmPage: FC<{
  model: BillingModel;
  pkg: PackageId;
  token: string;
  request: string;
}> = ({ model, pkg, token, request }) => {
  const p = PACKAGES[pkg];
  const card = model.account.payment_method;
  const l = model.snapshot.limits;
  const over =
    l.monthly_spend_limit_cents !== null &&
    l.spent_this_month_cents + p.priceCents > l.monthly_spend_limit_cents;
  return (
    <main id="main" class="wrap">
      <div class="signin">
        <section class="card" aria-labelledby="confirm-h">
          <h1 id="confirm-h">Buy {formatCredits(p.credits)} credits?</h1>
          <dl class="facts">
            <dt>Package</dt>
            <dd>{packageLabel(pkg)}</dd>
            <dt>Charged to</dt>
            <dd>
              {card
                ? `${card.brand ?? "card"} ending ${card.last4 ?? "····"}`
                : "the payment method on file"}
            </dd>
            <dt>Balance now</dt>
            <dd>{formatCredits(model.snapshot.total)} credits</dd>
          </dl>
          {over ? (
            <p class="notice bad">
              This would take this month's purchases to{" "}
              {formatPrice(l.spent_this_month_cents + p.priceCents)}, over your{" "}
              {formatPrice(l.monthly_spend_limit_cents ?? 0)} spending limit: it will be refused.
            </p>
          ) : null}
          <form method="post" action={`${BILLING_PATH}/top-up`}>
            <Csrf token={token} />
            <input type="hidden" name="package" value={pkg} />
            <input type="hidden" name="request" value={request} />
            <div class="actions">
              <button type="submit">Buy now for {formatPrice(p.priceCents)}</button>
              <a href={BILLING_PATH}>Cancel</a>
            </div>
          </form>
          <p class="hint">
            The credits are added as soon as the payment goes through, usually within seconds.
          </p>
        </section>
      </div>
    </main>
  );
};
