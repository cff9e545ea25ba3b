import type { FC } from "hono/jsx";
import { keyPermission, may, type Permission, ROLES, type Role } from "../../accounts/roles";
import type { CsrfPurpose } from "../../accounts/sessions";
import { retryableFailure } from "../../accounts/transactions";
import type { ListedKey } from "../../db/api-keys";
import type { ListedMember } from "../../db/members";
import { pageWords } from "../../platform/refusals";
import {
  PACKAGE_IDS,
  PACKAGES,
  type PackageId,
  PLANS,
  type PlanId,
  RECHARGE_THRESHOLD,
} from "../../pricing";
import { keyHint, Quickstart } from "../docs/quickstart";
import {
  centsToDollarsInput,
  failureReason,
  formatCredits,
  formatDate,
  formatDay,
  formatPrice,
  formatTime,
  packageLabel,
} from "../kit/format";
import { BrandLine, type Notice, NoticeBox } from "../kit/layout";
import { COPY_SCRIPT } from "../kit/security";
import { activityAction, activityActor, activityDetail } from "./activity";
import { MIN_ADVICE_DAYS, type PlanAdvice, runwaySentence } from "./advice";
import { UsageChart } from "./chart";
import type { Activity, BillingModel, HistoryPage, Transaction, WebhookEndpointView } from "./data";
import { BILLING_PATH } from "./pages";
import { type PasskeysModel, PasskeysSection } from "./passkeys-section";

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
  /** The person signed in: their role decides which forms the page shows. */
  viewer: { memberId: string; email: string; role: Role };
  notice?: Notice | null;
  /** A key just created: its only appearance. */
  newKey?: { key: string; name: string | null } | null;
  /** Where the API answers (this page's origin), for the new key's quickstart. */
  apiBase?: string;
  /** Back from a paid plan Checkout that the webhooks have not mirrored yet. */
  activation?: Activation | null;
  /** The person's passkeys and "Add a passkey"'s options. */
  passkeys?: PasskeysModel | null;
}

/** A plan paid for in Checkout, not yet shown by D1 and the ledger; `refreshing` while the page polls. */
export interface Activation {
  plan: Exclude<PlanId, "free">;
  /** False for a payment method that confirms later: the page does not say "payment received". */
  paid: boolean;
  refreshing: boolean;
}

/** The signed-in Account / Billing page. */
export const BillingPage: FC<BillingPageProps> = ({
  model,
  tokens,
  viewer,
  notice,
  newKey,
  activation,
  apiBase = "",
  passkeys,
}) => {
  const can = (p: Permission) => may(viewer.role, p);
  return (
    <>
      <header class="top">
        <div class="wrap">
          <div class="brand">
            <BrandLine />
          </div>
          <div class="who">
            <span>
              {viewer.email} <span class="tag">{viewer.role}</span>
              {viewer.email === model.email ? null : <span class="muted"> · {model.email}</span>}
            </span>
            <form method="post" action="/account/sign-out">
              <Csrf token={tokens["sign-out"]} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
            <form method="post" action="/account/sign-out">
              <Csrf token={tokens["sign-out"]} />
              <input type="hidden" name="everywhere" value="on" />
              <button type="submit" class="secondary">
                Sign out everywhere
              </button>
            </form>
          </div>
        </div>
      </header>
      <main id="main" class="wrap">
        <h1>Account / Billing</h1>
        <p class="lead">
          Balances and usage are read when this page loads and include every request served. Times
          are UTC.
        </p>
        <NoticeBox notice={notice} />
        {model.account.suspension ? (
          // The refusal's words, and the operator's reason: the people of the account see why.
          <NoticeBox
            notice={{
              tone: "bad",
              text: pageWords("account_suspended").text,
              detail: `Reason: ${model.account.suspension.reason ?? "none given"}. ${pageWords("account_suspended").action ?? ""}`,
            }}
          />
        ) : null}
        {activation ? <Activating activation={activation} /> : null}
        <PaymentWaiting model={model} />
        {newKey ? <NewKey created={newKey} apiBase={apiBase} /> : null}
        <BalanceSection
          model={model}
          tokens={tokens}
          activation={activation ?? null}
          billing={can("billing")}
        />
        {can("billing") ? <BuyCreditsSection model={model} /> : null}
        <SpendLimitSection model={model} token={can("billing") ? tokens.limits : null} />
        <AlertsSection model={model} token={can("billing") ? tokens.alerts : null} />
        <UsageSection model={model} />
        <AdviceSection model={model} />
        <HistorySection
          transactions={model.transactions}
          page={model.history}
          // Only the newest page knows which failure is the latest one.
          retry={
            model.purchases.canBuy && !model.history.paged
              ? retryableFailure(model.transactions)
              : null
          }
        />
        <KeysSection keys={model.keys} token={tokens.keys} can={can} />
        <MembersSection
          members={model.members}
          token={can("members") ? tokens.members : null}
          viewer={viewer}
        />
        <WebhooksSection webhooks={model.webhooks} />
        {passkeys ? <PasskeysSection passkeys={passkeys} token={tokens.passkeys} /> : null}
        <ActivitySection activity={model.activity} />
      </main>
    </>
  );
};

const BalanceSection: FC<{
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

const UsageSection: FC<{ model: BillingModel }> = ({ model }) => (
  <section class="card" aria-labelledby="usage-h">
    <h2 id="usage-h">Usage this cycle</h2>
    <UsageChart
      days={model.cycleUsage}
      slots={model.cycleDays}
      unusual={new Set(model.unusual.map((d) => d.start))}
    />
    <KeyUsageTable model={model} />
    <p class="actions">
      <a id="usage-csv" href={USAGE_CSV} download>
        Download CSV
      </a>
      <span class="muted"> usage per key and day, the last 30 days</span>
    </p>
  </section>
);

/** The usage export the page links to: per key and day, the API's default range (30 days). */
const USAGE_CSV = "/v1/account/usage?granularity=day&group_by=key&format=csv";
/** The whole history as CSV (every page). */
const HISTORY_CSV = "/v1/account/transactions?format=csv";

/** "Usage per key": each key's requests and credits this cycle, and its last use. */
const KeyUsageTable: FC<{ model: BillingModel }> = ({ model }) => {
  const named = new Map(model.keys.map((k) => [k.id, keyLabel(k)]));
  const label = (id: string) =>
    id === "" ? "No key (operator)" : (named.get(id) ?? `Revoked key ${id}`);
  return model.keyUsage.length === 0 ? (
    <p id="key-usage" class="muted">
      No requests this cycle yet.
    </p>
  ) : (
    <div class="table-scroll">
      <table id="key-usage" class="stack">
        <caption class="muted">Usage per key this cycle</caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col" class="num">
              Requests
            </th>
            <th scope="col" class="num">
              Credits
            </th>
            <th scope="col">Last used</th>
          </tr>
        </thead>
        <tbody>
          {model.keyUsage.map((u) => {
            const last = model.keysLastUsed[u.keyId];
            return (
              <tr data-key={u.keyId}>
                <td data-label="Key">{label(u.keyId)}</td>
                <td data-label="Requests" class="num">
                  {formatCredits(u.requests)}
                </td>
                <td data-label="Credits" class="num">
                  {formatCredits(u.credits)}
                </td>
                <td data-label="Last used">
                  {last === undefined ? "—" : formatTime(new Date(last * 1000).toISOString())}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
};

const AdviceSection: FC<{ model: BillingModel }> = ({ model }) => {
  const a = model.advice;
  const e = model.evidence;
  return (
    <section class="card advice" aria-labelledby="advice-h">
      <h2 id="advice-h">Advice</h2>
      <h3>Runway</h3>
      <p id="runway">
        {runwaySentence(model.runway, model.runwayWindow, RECHARGE_THRESHOLD, model.historyDays)}
      </p>
      <h3>Plan advisor</h3>
      <p id="advice-basis">
        {e.period === "last_cycle"
          ? `Based on ${formatCredits(e.usedCredits)} credits used in your last billing cycle (${e.days} days):`
          : a
            ? `Based on ${formatCredits(e.usedCredits)} credits used in the first ${e.days} days of this ${e.cycleDays}-day cycle, projected to ${formatCredits(e.projectedCredits ?? e.usedCredits)} over the whole cycle:`
            : `Not enough usage yet to compare plans: the advisor needs ${MIN_ADVICE_DAYS} days of this cycle (or a whole previous cycle), and ${e.days === 1 ? "1 day has" : `${e.days} days have`} passed, with ${formatCredits(e.usedCredits)} credits used.`}
      </p>
      {a ? <AdviceTable a={a} /> : null}
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

const AdviceTable: FC<{ a: PlanAdvice }> = ({ a }) => (
  <>
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
  </>
);

/**
 * "Transaction history", a page at a time, newest first. Paging is plain links
 * (`?history=<cursor>`), as in Activity, so every transaction is reachable without JavaScript;
 * the CSV link exports them all at once.
 */
const HistorySection: FC<{
  transactions: Transaction[];
  page: HistoryPage;
  retry: string | null;
}> = ({ transactions, page, retry }) => (
  <section class="card" id="history" aria-labelledby="history-h">
    <h2 id="history-h">Transaction history</h2>
    {transactions.length === 0 ? (
      <p>{page.paged ? "No older transactions." : "No transactions yet."}</p>
    ) : (
      <div class="table-scroll">
        <table id="transactions" class="stack">
          <caption class="muted">
            {page.paged
              ? "Older transactions, newest first"
              : transactions.length === 1
                ? "The latest transaction"
                : `The latest ${transactions.length}, newest first`}
          </caption>
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
              <HistoryRow t={t} retry={t.id === retry} />
            ))}
          </tbody>
        </table>
      </div>
    )}
    <nav aria-label="History pages">
      <p class="actions">
        {page.paged ? <a href={`${BILLING_PATH}#history`}>Newest transactions</a> : null}
        {page.older ? (
          <a
            id="history-older"
            href={`${BILLING_PATH}?history=${encodeURIComponent(page.older)}#history`}
          >
            Older transactions
          </a>
        ) : null}
        <a id="history-csv" href={HISTORY_CSV} download>
          Download CSV
        </a>
      </p>
    </nav>
  </section>
);

/**
 * "Webhooks": the account's endpoints and their latest deliveries, read only; endpoints are
 * added, tested and deleted through `/v1/account/webhooks` (docs/contract.md).
 */
const WebhooksSection: FC<{ webhooks: WebhookEndpointView[] }> = ({ webhooks }) => (
  <section class="card" id="webhooks" aria-labelledby="webhooks-h">
    <h2 id="webhooks-h">Webhooks</h2>
    {webhooks.length === 0 ? (
      <p>
        No webhook endpoints. Add one with <code>POST /v1/account/webhooks</code> to have your own
        systems told of low balances, purchases and plan changes.
      </p>
    ) : (
      webhooks.map((w) => (
        <div class="table-scroll" data-endpoint={w.id}>
          <table class="stack">
            <caption>
              <code>{w.url}</code>{" "}
              <span class="muted">{w.events === null ? "every event" : w.events.join(", ")}</span>
            </caption>
            <thead>
              <tr>
                <th scope="col">Date</th>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
              </tr>
            </thead>
            <tbody>
              {w.deliveries.length === 0 ? (
                <tr>
                  <td colspan={4}>Nothing sent yet.</td>
                </tr>
              ) : (
                w.deliveries.map((d) => (
                  <tr data-delivery={d.id}>
                    <td data-label="Date">{formatTime(d.at)}</td>
                    <td data-label="Event">{d.type}</td>
                    <td data-label="Status">{d.status}</td>
                    <td data-label="Attempts">{d.attempts}</td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
      ))
    )}
  </section>
);

/**
 * "Activity": the audit log, who changed what on the account, newest first, a page at a time.
 * Paging is plain links (`?activity=<cursor>`), so it works without JavaScript.
 */
const ActivitySection: FC<{ activity: Activity }> = ({ activity }) => (
  <section class="card" id="activity" aria-labelledby="activity-h">
    <h2 id="activity-h">Activity</h2>
    {activity.entries.length === 0 ? (
      <p>{activity.paged ? "No older entries." : "Nothing has been changed yet."}</p>
    ) : (
      <div class="table-scroll">
        <table id="activity-log" class="stack">
          <caption class="muted">
            {activity.paged ? "Older changes, newest first" : "The latest changes, newest first"}
          </caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Change</th>
              <th scope="col">By</th>
            </tr>
          </thead>
          <tbody>
            {activity.entries.map((e) => {
              const detail = activityDetail(e);
              return (
                <tr data-action={e.action}>
                  <td data-label="Date">{formatTime(e.at)}</td>
                  <td data-label="Change">
                    {activityAction(e.action)}
                    {detail ? <span class="muted desc">{detail}</span> : null}
                  </td>
                  <td data-label="By">{activityActor(e.actor)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    )}
    {activity.paged || activity.older ? (
      <nav aria-label="Activity pages">
        <p class="actions">
          {activity.paged ? <a href={`${BILLING_PATH}#activity`}>Newest changes</a> : null}
          {activity.older ? (
            <a href={`${BILLING_PATH}?activity=${encodeURIComponent(activity.older)}#activity`}>
              Older changes
            </a>
          ) : null}
        </p>
      </nav>
    ) : null}
  </section>
);

const keyLabel = (k: ListedKey) => k.name ?? `${k.prefix}…${k.last4}`;

/** The account's only active `full` key, which cannot be revoked. */
function isLastFull(keys: ListedKey[], key: ListedKey): boolean {
  return (
    key.scope === "full" && keys.filter((k) => k.scope === "full" && !k.revoked_at).length === 1
  );
}

const KeysSection: FC<{ keys: ListedKey[]; token: string; can: (p: Permission) => boolean }> = ({
  keys,
  token,
  can,
}) => (
  <section class="card" aria-labelledby="keys-h">
    <h2 id="keys-h">API keys</h2>
    <div class="table-scroll">
      <table id="keys" class="stack">
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
              <td data-label="Name">{k.name ?? <span class="muted">unnamed</span>}</td>
              <td data-label="Key">
                <code>
                  {k.prefix}…{k.last4}
                </code>
              </td>
              <td data-label="Scope">{k.scope === "full" ? "full" : "classify only"}</td>
              <td data-label="Created">{formatDate(k.created_at)}</td>
              <td data-label="Status">
                <span class={`pill ${k.revoked_at ? "revoked" : "active"}`}>
                  {k.revoked_at ? "revoked" : "active"}
                </span>
              </td>
              <td data-label="Action" class="action">
                {k.revoked_at || !can(keyPermission(k.scope)) ? null : isLastFull(keys, k) ? (
                  // Revoking it is refused (money rule 11): say so instead of offering it.
                  <span class="muted">Kept: the last full key (create another to revoke it)</span>
                ) : (
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
    {can("classify_keys") ? (
      <>
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
            <select id="key-scope" name="scope" aria-describedby="key-scope-help">
              <option value="classify" selected>
                classify only
              </option>
              {can("full_keys") ? <option value="full">full</option> : null}
            </select>
          </div>
          <button type="submit">Create key</button>
        </form>
        <p class="hint" id="key-scope-help">
          A classify-only key spends credits and cannot buy or change anything; a full key can do
          everything this page can.
        </p>
      </>
    ) : null}
  </section>
);

const ROLE_HELP: Record<Role, string> = {
  owner: "everything, members included",
  billing: "plans, cards, purchases, limits and alerts",
  developer: "classify keys and usage",
  viewer: "reads everything, changes nothing",
};

/**
 * The account's people. Everyone sees who they are; an owner (`token` set) invites, changes
 * roles and removes. The last owner's row offers no demotion or removal (the server refuses
 * them anyway, also when two owners race).
 */
const MembersSection: FC<{
  members: ListedMember[];
  token: string | null;
  viewer: { memberId: string };
}> = ({ members, token, viewer }) => {
  const owners = members.filter((m) => m.role === "owner" && m.status === "active").length;
  return (
    <section class="card" aria-labelledby="members-h">
      <h2 id="members-h">Members</h2>
      <div class="table-scroll">
        <table id="members" class="stack">
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
              <th scope="col">Last sign-in</th>
              {token ? (
                <th scope="col">
                  <span class="muted">Action</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {members.map((m) => {
              const lastOwner = m.role === "owner" && m.status === "active" && owners === 1;
              return (
                <tr>
                  <td data-label="Email">
                    {m.email}
                    {m.id === viewer.memberId ? <span class="tag">you</span> : null}
                  </td>
                  <td data-label="Role">
                    {token && !lastOwner ? (
                      <form
                        method="post"
                        action={`${BILLING_PATH}/members/${m.id}/role`}
                        class="inline-form"
                      >
                        <Csrf token={token} />
                        <select id={`role-${m.id}`} name="role" aria-label={`Role of ${m.email}`}>
                          {ROLES.map((r) => (
                            <option value={r} selected={r === m.role}>
                              {r}
                            </option>
                          ))}
                        </select>
                        <button
                          type="submit"
                          class="secondary"
                          aria-label={`Change the role of ${m.email}`}
                        >
                          Change
                        </button>
                      </form>
                    ) : (
                      m.role
                    )}
                  </td>
                  <td data-label="Status">{m.status === "invited" ? "invited" : "active"}</td>
                  <td data-label="Last sign-in">
                    {m.last_sign_in_at ? (
                      formatDate(m.last_sign_in_at)
                    ) : (
                      <span class="muted">never</span>
                    )}
                  </td>
                  {token ? (
                    <td data-label="Action" class="action">
                      {lastOwner ? (
                        <span class="muted">The last owner stays</span>
                      ) : (
                        <form method="post" action={`${BILLING_PATH}/members/${m.id}/remove`}>
                          <Csrf token={token} />
                          <button type="submit" class="danger" aria-label={`Remove ${m.email}`}>
                            Remove
                          </button>
                        </form>
                      )}
                    </td>
                  ) : null}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {token ? (
        <>
          <h3>Invite someone</h3>
          <form method="post" action={`${BILLING_PATH}/members`} class="new-key">
            <Csrf token={token} />
            <div>
              <label class="field" for="invite-email">
                Email address
              </label>
              <input type="email" id="invite-email" name="email" required maxlength={254} />
            </div>
            <div>
              <label class="field" for="invite-role">
                Role
              </label>
              <select id="invite-role" name="role" aria-describedby="invite-role-help">
                {ROLES.map((r) => (
                  <option value={r} selected={r === "developer"}>
                    {r}
                  </option>
                ))}
              </select>
            </div>
            <button type="submit">Send invitation</button>
          </form>
          <p class="hint" id="invite-role-help">
            {ROLES.map((r) => `${r}: ${ROLE_HELP[r]}`).join("; ")}. The invitation link works once,
            for 7 days.
          </p>
        </>
      ) : null}
    </section>
  );
};

/**
 * A key just created, shown whole (it wraps) in a read-only field: selectable by hand, so the
 * page works without JavaScript; the hashed script only reveals the "Copy key" button.
 */
const NewKey: FC<{ created: { key: string; name: string | null }; apiBase: string }> = ({
  created,
  apiBase,
}) => (
  <div class="notice ok new-key-box" id="new-key-box">
    <p>
      <strong>New API key{created.name ? ` “${created.name}”` : ""}.</strong> Copy it now: it is
      shown only this once.
    </p>
    <label class="field" for="new-key">
      Your new key
    </label>
    <textarea id="new-key" class="secret" readonly rows={2} spellcheck={false} autocomplete="off">
      {created.key}
    </textarea>
    <div class="actions">
      <button type="button" data-copy="new-key" data-status="copy-status" hidden>
        Copy key
      </button>
      <span id="copy-status" role="status" />
    </div>
    {/* Before the script, which wires every copy button present when it runs. */}
    <Quickstart baseUrl={apiBase} keyHint={keyHint(created.key)} />
    <script dangerouslySetInnerHTML={{ __html: COPY_SCRIPT }} />
  </div>
);

const STATUS_LABELS: Record<string, string> = {
  succeeded: "succeeded",
  pending: "pending",
  requires_action: "needs your action",
  failed: "failed",
};

/**
 * One history row. Only a succeeded row says "+credits": a pending one says what it will add,
 * a failed one that nothing was added and nothing charged, and why; `retry` (the newest
 * purchase, failed: see `retryableFailure`) also says what to do about it. A row with a
 * description (an operator's reason) says why the balance changed.
 */
export const HistoryRow: FC<{ t: Transaction; retry?: boolean }> = ({ t, retry = false }) => {
  const failed = t.status === "failed";
  const settled = t.status === "succeeded";
  const purchase = t.type === "auto_recharge" || t.type === "top_up";
  return (
    <tr data-type={t.type} data-status={t.status} data-id={t.id}>
      <td data-label="Date">{formatTime(t.created_at)}</td>
      <td data-label="Type">
        {TYPE_LABELS[t.type]}
        {purchase && t.package && t.package in PACKAGES ? (
          <span class="muted pkg">
            {formatCredits(PACKAGES[t.package as PackageId].credits)}-credit package
          </span>
        ) : null}
        {t.description ? <span class="muted desc">{t.description}</span> : null}
      </td>
      <td data-label="Credits" class="num">
        {failed ? (
          <span>none added</span>
        ) : settled ? (
          `${t.credits > 0 ? "+" : ""}${formatCredits(t.credits)}`
        ) : (
          `${formatCredits(t.credits)} when paid`
        )}
      </td>
      <td data-label="Amount" class="num">
        {t.amount_cents <= 0
          ? "—"
          : failed
            ? "not charged"
            : settled
              ? formatPrice(t.amount_cents)
              : `${formatPrice(t.amount_cents)}, not yet charged`}
      </td>
      <td data-label="Status">
        <span class={`pill ${t.status}`}>{STATUS_LABELS[t.status] ?? t.status}</span>
        {failed ? (
          <span class="why">
            {" "}
            {failureReason(t.failure_code)}
            {t.failure_code ? (
              <>
                {" "}
                (<code>{t.failure_code}</code>)
              </>
            ) : null}
            .
          </span>
        ) : null}
        {t.action_url && !settled ? (
          <>
            {" "}
            <a href={t.action_url} class="row-link">
              Complete the payment
            </a>
          </>
        ) : failed && purchase && retry ? (
          <>
            {" "}
            <a href="#buy-credits" class="row-link">
              Retry: buy credits now
            </a>
          </>
        ) : null}
        {t.invoice_url ? (
          <>
            {" "}
            <a href={t.invoice_url} class="row-link">
              Invoice
            </a>
          </>
        ) : null}
      </td>
    </tr>
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
const Activating: FC<{ activation: Activation }> = ({ activation }) => {
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
const PaymentWaiting: FC<{ model: BillingModel }> = ({ model }) => {
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
const BuyCreditsSection: FC<{ model: BillingModel }> = ({ model }) => {
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
const SpendLimitSection: FC<{ model: BillingModel; token: string | null }> = ({ model, token }) => {
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

/** A setting edited in one text field (empty clears it), posted with its CSRF token. */
const OneFieldForm: FC<{
  action: string;
  token: string;
  id: string;
  name: string;
  label: string;
  inputmode: "decimal" | "numeric";
  value: string;
  submit: string;
  help: string;
}> = (f) => (
  <>
    <form method="post" action={f.action} class="inline-form">
      <Csrf token={f.token} />
      <div>
        <label class="field" for={f.id}>
          {f.label}
        </label>
        <input
          type="text"
          inputmode={f.inputmode}
          id={f.id}
          name={f.name}
          value={f.value}
          aria-describedby={`${f.id}-help`}
          autocomplete="off"
        />
      </div>
      <button type="submit">{f.submit}</button>
    </form>
    <p class="hint" id={`${f.id}-help`}>
      {f.help}
    </p>
  </>
);

/** The low-balance email: the level, and a form to change or clear it. */
const AlertsSection: FC<{ model: BillingModel; token: string | null }> = ({ model, token }) => {
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
