import type { FC } from "hono/jsx";
import type { ListedKey } from "../../db/api-keys";
import { PACKAGE_IDS, PLANS, RECHARGE_THRESHOLD } from "../../pricing";
import { runwaySentence } from "../advice";
import type { CsrfPurpose } from "../session";
import { UsageChart } from "./chart";
import type { BillingModel, Transaction } from "./data";
import {
  formatCredits,
  formatDate,
  formatDay,
  formatPrice,
  formatTime,
  packageLabel,
} from "./format";
import { type Notice, NoticeBox } from "./layout";
import { BILLING_PATH } from "./pages";

export type CsrfTokens = Record<CsrfPurpose, string>;

const Csrf: FC<{ token: string }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token} />
);

const TYPE_LABELS: Record<Transaction["type"], string> = {
  auto_recharge: "Auto-recharge",
  top_up: "Top-up",
  monthly_grant: "Monthly credits",
  adjustment: "Adjustment",
};

export interface BillingPageProps {
  model: BillingModel;
  tokens: CsrfTokens;
  sessionKeyId: string;
  notice?: Notice | null;
  /** A key just created: its only appearance. */
  newKey?: { key: string; name: string | null } | null;
}

/** The signed-in Account / Billing page. */
export const BillingPage: FC<BillingPageProps> = ({
  model,
  tokens,
  sessionKeyId,
  notice,
  newKey,
}) => (
  <>
    <header class="top">
      <div class="wrap">
        <div class="brand">
          Tollgate <span>· Product Classifier</span>
        </div>
        <div class="who">
          <span>{model.email}</span>
          <form method="post" action="/account/sign-out">
            <Csrf token={tokens["sign-out"]} />
            <button type="submit" class="secondary">
              Sign out
            </button>
          </form>
        </div>
      </div>
    </header>
    <main id="main" class="wrap">
      <h1>Account / Billing</h1>
      <p class="lead">Balances are live; usage is added about every 30 seconds. Times are UTC.</p>
      <NoticeBox notice={notice} />
      {newKey ? <NewKey created={newKey} /> : null}
      <BalanceSection model={model} tokens={tokens} />
      <UsageSection model={model} />
      <AdviceSection model={model} />
      <HistorySection transactions={model.transactions} />
      <KeysSection keys={model.keys} token={tokens.keys} sessionKeyId={sessionKeyId} />
    </main>
  </>
);

const BalanceSection: FC<{ model: BillingModel; tokens: CsrfTokens }> = ({ model, tokens }) => {
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
              When your total balance drops to {formatCredits(RECHARGE_THRESHOLD)} credits or below,
              the package below is bought with your saved payment method.
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
            {ar.pending ? (
              <p class="hint" role="status">
                A recharge is being processed; its credits appear within seconds of payment.
              </p>
            ) : null}
            {!s.has_payment_method ? (
              <p class="hint">
                No payment method on file: add one with “Manage plan and billing” before turning
                auto-recharge on.
              </p>
            ) : null}
            {ar.last_failure ? (
              <div class="notice bad" role="alert">
                <p>
                  The last recharge failed on {formatTime(ar.last_failure.at)}:{" "}
                  {ar.last_failure.message || "the payment was declined"} (code{" "}
                  <code>{ar.last_failure.code}</code>).
                </p>
                <p>
                  Auto-recharge was turned off. Update your payment method, then turn it back on.
                </p>
              </div>
            ) : null}
            <div class="actions">
              <button type="submit">Save auto-recharge</button>
              <span class="muted">{ar.enabled ? "Currently on" : "Currently off"}</span>
            </div>
          </fieldset>
        </form>
        <PlanAndPayment model={model} tokens={tokens} />
      </div>
    </section>
  );
};

const PlanAndPayment: FC<{ model: BillingModel; tokens: CsrfTokens }> = ({ model, tokens }) => {
  const { account } = model;
  const sub = account.subscription;
  const card = account.payment_method;
  // A live subscription is changed in the portal; otherwise Checkout starts one.
  const live = sub !== null && ["active", "trialing", "past_due"].includes(sub.status);
  return (
    <div>
      <h3>Plan and payment</h3>
      <p class="hint" id="plan-state">
        {account.complimentary
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
      {live ? null : (
        <form method="post" action={`${BILLING_PATH}/checkout`} class="actions">
          <Csrf token={tokens.checkout} />
          <button type="submit" name="plan" value="starter">
            Subscribe to Starter ({formatPrice(PLANS.starter.priceCents)}/month)
          </button>
          <button type="submit" name="plan" value="pro" class="secondary">
            Subscribe to Pro ({formatPrice(PLANS.pro.priceCents)}/month)
          </button>
        </form>
      )}
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
    </div>
  );
};

const UsageSection: FC<{ model: BillingModel }> = ({ model }) => (
  <section class="card" aria-labelledby="usage-h">
    <h2 id="usage-h">Usage this cycle</h2>
    <UsageChart
      days={model.cycleUsage}
      slots={model.cycleDays}
      unusual={new Set(model.unusual.map((d) => d.start))}
    />
  </section>
);

const AdviceSection: FC<{ model: BillingModel }> = ({ model }) => {
  const a = model.advice;
  return (
    <section class="card advice" aria-labelledby="advice-h">
      <h2 id="advice-h">Advice</h2>
      <h3>Runway</h3>
      <p>{runwaySentence(model.runway)}</p>
      <h3>Plan advisor</h3>
      <p>
        Based on {formatCredits(a.usedCredits)} credits used{" "}
        {a.period === "last_cycle" ? "in your last billing cycle" : "so far this cycle"}:
      </p>
      <p class="headline">{a.sentence}</p>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Plan</th>
              <th scope="col" class="num">
                Plan price
              </th>
              <th scope="col">Packages for usage beyond the plan</th>
              <th scope="col" class="num">
                Total
              </th>
            </tr>
          </thead>
          <tbody>
            {a.costs.map((c) => (
              <tr class={c.plan === a.current ? "current" : undefined}>
                <th scope="row">
                  {PLANS[c.plan].name}
                  {c.plan === a.current ? <span class="tag">your plan</span> : null}
                  {c.plan === a.cheapest ? <span class="tag">cheapest</span> : null}
                  {c.fitsPeak ? null : <span class="tag">rate limit too low</span>}
                </th>
                <td class="num">{formatPrice(c.planCents)}</td>
                <td>
                  {c.cover.packages.length === 0
                    ? "none needed"
                    : `${c.cover.packages
                        .map((p) => `${p.count} × ${packageLabel(p.package)}`)
                        .join(" + ")}`}
                </td>
                <td class="num">{formatPrice(c.totalCents)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="hint">
        Packages are bought whole. Your busiest minute had {formatCredits(a.peakRequestsPerMinute)}{" "}
        requests; a plan whose rate limit is below that is not advised.
      </p>
      <h3>Unusual usage</h3>
      {model.unusual.length === 0 ? (
        <p>No day this cycle used more than 3× its trailing 7-day average.</p>
      ) : (
        <ul>
          {model.unusual.map((d) => (
            <li>
              <strong>{formatDay(d.start)}</strong>: {formatCredits(d.credits)} credits,{" "}
              {d.trailingCredits === 0
                ? `after ${d.window} days with no usage`
                : `${Math.round((d.credits * d.window) / d.trailingCredits)}× the ${d.window}-day average of ${formatCredits(Math.round(d.trailingCredits / d.window))}`}
              .
            </li>
          ))}
        </ul>
      )}
    </section>
  );
};

const HistorySection: FC<{ transactions: Transaction[] }> = ({ transactions }) => (
  <section class="card" aria-labelledby="history-h">
    <h2 id="history-h">Transaction history</h2>
    {transactions.length === 0 ? (
      <p>No transactions yet.</p>
    ) : (
      <div class="table-scroll">
        <table id="transactions">
          <caption class="muted">The latest {transactions.length}, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Type</th>
              <th scope="col" class="num">
                Credits
              </th>
              <th scope="col" class="num">
                Amount
              </th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {transactions.map((t) => (
              <tr data-type={t.type} data-status={t.status}>
                <td>{formatTime(t.created_at)}</td>
                <td>{TYPE_LABELS[t.type]}</td>
                <td class="num">
                  {t.credits > 0 ? "+" : ""}
                  {formatCredits(t.credits)}
                </td>
                <td class="num">{t.amount_cents > 0 ? formatPrice(t.amount_cents) : "—"}</td>
                <td>
                  <span class={`pill ${t.status}`}>{t.status}</span>
                  {t.failure_code ? (
                    <>
                      {" "}
                      <code>{t.failure_code}</code>
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
  </section>
);

const keyLabel = (k: ListedKey) => k.name ?? `${k.prefix}…${k.last4}`;

const KeysSection: FC<{ keys: ListedKey[]; token: string; sessionKeyId: string }> = ({
  keys,
  token,
  sessionKeyId,
}) => (
  <section class="card" aria-labelledby="keys-h">
    <h2 id="keys-h">API keys</h2>
    <div class="table-scroll">
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Key</th>
            <th scope="col">Scope</th>
            <th scope="col">Created</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span class="muted">Action</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr>
              <td>
                {k.name ?? <span class="muted">unnamed</span>}
                {k.id === sessionKeyId ? <span class="tag">signed in with this key</span> : null}
              </td>
              <td>
                <code>
                  {k.prefix}…{k.last4}
                </code>
              </td>
              <td>{k.scope === "full" ? "full" : "classify only"}</td>
              <td>{formatDate(k.created_at)}</td>
              <td>
                <span class={`pill ${k.revoked_at ? "revoked" : "active"}`}>
                  {k.revoked_at ? "revoked" : "active"}
                </span>
              </td>
              <td>
                {k.revoked_at ? null : (
                  <form method="post" action={`${BILLING_PATH}/keys/${k.id}/revoke`}>
                    <Csrf token={token} />
                    <button type="submit" class="danger" aria-label={`Revoke key ${keyLabel(k)}`}>
                      Revoke
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
    <h3>Create a key</h3>
    <form method="post" action={`${BILLING_PATH}/keys`} class="new-key">
      <Csrf token={token} />
      <div>
        <label class="field" for="key-name">
          Name (optional)
        </label>
        <input type="text" id="key-name" name="name" maxlength={100} />
      </div>
      <div>
        <label class="field" for="key-scope">
          Scope
        </label>
        <select id="key-scope" name="scope">
          <option value="classify" selected>
            classify only: spends credits, cannot buy or change anything
          </option>
          <option value="full">full: everything this page can do</option>
        </select>
      </div>
      <button type="submit">Create key</button>
    </form>
  </section>
);

const NewKey: FC<{ created: { key: string; name: string | null } }> = ({ created }) => (
  <div class="notice ok" role="status">
    <p>
      <strong>New API key{created.name ? ` “${created.name}”` : ""}.</strong> Copy it now: it is
      shown only this once.
    </p>
    <p>
      <label class="field" for="new-key">
        Your new key
      </label>
      <input type="text" id="new-key" readonly value={created.key} spellcheck={false} />
    </p>
  </div>
);
