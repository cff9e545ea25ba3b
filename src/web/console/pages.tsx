/**
 * The operator console's pages, server-rendered with the Billing page's kit (layout, styles,
 * formats). No script: every action is a form with a required reason and its form token.
 */
import type { Child, FC } from "hono/jsx";
import type { AccountView } from "../../accounts/account-view";
import type { AuditJson } from "../../accounts/audit";
import type { Overview } from "../../accounts/overview";
import type { ListedKey } from "../../db/api-keys";
import type { ListedMember } from "../../db/members";
import type { LedgerAccount } from "../../ledger/domain/types";
import type { Actor } from "../../platform/actor";
import { formatCents } from "../../platform/money";
import { activityAction, activityActor, activityDetail } from "../billing/activity";
import { formatCredits, formatTime } from "../kit/format";
import { Document, type Notice, NoticeBox } from "../kit/layout";
import { CONSOLE_PATH, type ConsolePurpose } from "./auth";

export const SEARCH_PATH = `${CONSOLE_PATH}/console/accounts`;
export const accountPath = (id: string) => `${SEARCH_PATH}/${encodeURIComponent(id)}`;
export const SIGN_IN_PATH = `${CONSOLE_PATH}/console/sign-in`;
export const SIGN_OUT_PATH = `${CONSOLE_PATH}/console/sign-out`;

/** The form tokens a page's forms carry (absent: no secret configured, forms not offered). */
export type ConsoleTokens = Partial<Record<ConsolePurpose, string>>;

const Csrf: FC<{ token: string | undefined }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token ?? ""} />
);

/**
 * A table that scrolls sideways on a phone: focusable, so a keyboard can scroll it too (axe:
 * scrollable-region-focusable), and named, as a focusable region must be.
 */
const ScrollBox: FC<{ label: string; children?: Child }> = ({ label, children }) => (
  <section class="table-scroll" aria-label={`${label} (scrolls sideways)`} tabindex={0}>
    {children}
  </section>
);

/** Every console page: the header with who is signed in, the two places, the content. */
export const ConsolePage: FC<{
  title: string;
  operator: Actor;
  /** Local mode only: Access signs out at the edge, not here. */
  signOut?: string;
  children?: Child;
}> = ({ title, operator, signOut, children }) => (
  <Document title={`${title} · Operator console`}>
    <header class="top">
      <div class="wrap">
        <div class="brand">
          Operator console <span>· Tollgate</span>
        </div>
        <nav aria-label="Console">
          <a href={CONSOLE_PATH}>Overview</a> · <a href={SEARCH_PATH}>Accounts</a>
        </nav>
        <div class="who">
          <span>Signed in as {operator.label}</span>
          {signOut ? (
            <form method="post" action={SIGN_OUT_PATH}>
              <Csrf token={signOut} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
          ) : null}
        </div>
      </div>
    </header>
    <main id="main" class="wrap">
      {children}
    </main>
  </Document>
);

const Fact: FC<{ label: string; children?: Child }> = ({ label, children }) => (
  <div class="stat">
    <dt>{label}</dt>
    <dd>{children}</dd>
  </div>
);

export const OverviewBody: FC<{ o: Overview }> = ({ o }) => (
  <>
    <h1>Overview</h1>
    <section class="card" aria-labelledby="accounts-h">
      <h2 id="accounts-h">Accounts</h2>
      <dl class="stats">
        <Fact label="Total">{formatCredits(o.accounts.total)}</Fact>
        <Fact label="Paying">{formatCredits(o.accounts.paying)}</Fact>
        <Fact label="Suspended">{formatCredits(o.accounts.suspended)}</Fact>
      </dl>
    </section>
    <section class="card" aria-labelledby="credits-h">
      <h2 id="credits-h">Credits outstanding</h2>
      <dl class="stats">
        <Fact label="Monthly">{formatCredits(o.outstanding_credits.monthly)}</Fact>
        <Fact label="Purchased">{formatCredits(o.outstanding_credits.purchased)}</Fact>
        <Fact label="Purchased credits' value">
          {formatCents(o.outstanding_credits.purchased_value_cents)}
        </Fact>
      </dl>
      <p class="hint">
        As each ledger last projected it: at every purchase, grant, adjustment and refund, and at
        its hourly checkpoint for spent credits.
      </p>
    </section>
    <section class="card" aria-labelledby="revenue-h">
      <h2 id="revenue-h">Revenue this month</h2>
      <dl class="stats">
        <Fact label="Total">{formatCents(o.revenue_cents.this_month)}</Fact>
        <Fact label="Credit purchases">{formatCents(o.revenue_cents.purchases)}</Fact>
        <Fact label="Subscriptions">{formatCents(o.revenue_cents.subscriptions)}</Fact>
      </dl>
    </section>
    <section class="card" aria-labelledby="attention-h">
      <h2 id="attention-h">Needs watching</h2>
      <dl class="stats">
        <Fact label="Purchases pending">{o.recharges.pending}</Fact>
        <Fact label="Waiting for the customer's bank">{o.recharges.requires_action}</Fact>
        <Fact label="Purchases failed this month">{o.recharges.failed_this_month}</Fact>
        <Fact label="Dead-lettered, still open">{o.recharges.needs_attention}</Fact>
        <Fact label="Dead letters (all)">{o.dead_letters}</Fact>
        <Fact label="Refunds owed">{o.pending_refunds}</Fact>
      </dl>
      <p>
        Last reconcile:{" "}
        {o.last_reconcile
          ? `${formatTime(o.last_reconcile.finished_at)}, ${o.last_reconcile.checked} checked, ${o.last_reconcile.attention} left for an operator`
          : "never"}
      </p>
    </section>
  </>
);

export interface SearchRow {
  id: string;
  email: string;
  plan: string;
  stripe_customer_id: string | null;
  suspension: { suspended_at: string; reason: string | null } | null;
}

export const SearchBody: FC<{ query: string; rows: SearchRow[]; next: string | null }> = ({
  query,
  rows,
  next,
}) => (
  <>
    <h1>Accounts</h1>
    <section class="card" aria-labelledby="search-h">
      <h2 id="search-h">Find an account</h2>
      <form method="get" action={SEARCH_PATH} class="inline-form">
        <label class="field" for="query">
          Email (or its beginning), account id or Stripe customer id
        </label>
        <input type="search" id="query" name="query" value={query} maxlength={254} />
        <button type="submit">Search</button>
      </form>
    </section>
    <section class="card" aria-labelledby="results-h">
      <h2 id="results-h">{rows.length === 0 ? "No accounts found" : "Accounts"}</h2>
      {rows.length > 0 ? (
        <ScrollBox label="Accounts found">
          <table>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Plan</th>
                <th scope="col">Account id</th>
                <th scope="col">Stripe customer</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr>
                  <td>
                    <a href={accountPath(r.id)}>{r.email}</a>
                  </td>
                  <td>{r.plan}</td>
                  <td>
                    <code>{r.id}</code>
                  </td>
                  <td>{r.stripe_customer_id ? <code>{r.stripe_customer_id}</code> : "none"}</td>
                  <td>{r.suspension ? <span class="pill failed">suspended</span> : "active"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      ) : null}
      {next ? (
        <p>
          <a
            href={`${SEARCH_PATH}?query=${encodeURIComponent(query)}&cursor=${encodeURIComponent(next)}`}
          >
            Next page
          </a>
        </p>
      ) : null}
    </section>
  </>
);

export interface HistoryRow {
  id: string;
  type: string;
  status: string;
  credits: number;
  amount_cents: number;
  description: string | null;
  created_at: string;
}

export interface EmailListRow {
  kind: string;
  to: string;
  subject: string;
  status: string;
  created_at: string;
}

export interface AccountPageData {
  view: AccountView;
  stripeCustomerId: string | null;
  ledger: LedgerAccount | null;
  history: HistoryRow[];
  keys: ListedKey[];
  emails: EmailListRow[];
  /** The account's people, oldest first (so its first owner is the first active owner). */
  members: ListedMember[];
  /** The account's audit log, newest first (the latest 20; `GET /admin/audit-log` has all). */
  audit: AuditJson[];
  /** A random key per rendering: submitting the same adjustment form twice applies it once. */
  adjustKey: string;
}

const ReasonField: FC<{ id: string; label?: string }> = ({ id, label = "Reason" }) => (
  <>
    <label class="field" for={id}>
      {label}
    </label>
    <input type="text" id={id} name="reason" required maxlength={500} />
  </>
);

/**
 * The account's members, and the way back in for one who wrote to support: an emailed sign-in
 * link (the one the sign-in page sends), to the first owner unless another member is chosen.
 */
const PeopleSection: FC<{ members: ListedMember[]; action: string; token: string | undefined }> = ({
  members,
  action,
  token,
}) => {
  const active = members.filter((m) => m.status === "active");
  const firstOwner = active.find((m) => m.role === "owner");
  return (
    <section class="card" aria-labelledby="people-h">
      <h2 id="people-h">People</h2>
      <ScrollBox label="People">
        <table>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
              <th scope="col">Last sign-in</th>
            </tr>
          </thead>
          <tbody>
            {members.map((m) => (
              <tr>
                <td>{m.email}</td>
                <td>{m.role}</td>
                <td>{m.status}</td>
                <td>{m.last_sign_in_at ? formatTime(m.last_sign_in_at) : "never"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollBox>
      {token !== undefined && active.length > 0 ? (
        <form method="post" action={action}>
          <Csrf token={token} />
          <fieldset>
            <legend>Email a sign-in link</legend>
            <p class="hint">
              The link the sign-in page sends: it works once, for 30 minutes, and only for the
              member it is sent to.
            </p>
            <label class="field" for="link-email">
              Member
            </label>
            <select id="link-email" name="email" required>
              {active.map((m) => (
                <option value={m.email} selected={m.id === firstOwner?.id}>
                  {m.email} ({m.role})
                </option>
              ))}
            </select>
            <ReasonField id="link-reason" label="Reason (for the audit log)" />
            <div class="actions">
              <button type="submit">Email a sign-in link</button>
            </div>
          </fieldset>
        </form>
      ) : null}
    </section>
  );
};

/** What the entry changed, in the Billing page's words, and the operator's reason if not in them. */
function auditLine(e: AuditJson): string {
  const detail = activityDetail(e);
  const reason = typeof e.details.reason === "string" ? e.details.reason : "";
  if (!reason || detail.includes(reason)) return detail;
  return detail ? `${detail}; reason: ${reason}` : `reason: ${reason}`;
}

/** Who changed what on the account, operators included: the customer's Activity, with reasons. */
const AuditSection: FC<{ entries: AuditJson[] }> = ({ entries }) => (
  <section class="card" aria-labelledby="audit-h">
    <h2 id="audit-h">Audit log</h2>
    {entries.length === 0 ? <p>Nothing recorded.</p> : null}
    {entries.length > 0 ? (
      <ScrollBox label="Audit log">
        <table id="audit-log">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Change</th>
              <th scope="col">Detail</th>
              <th scope="col">By</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr data-action={e.action}>
                <td>{formatTime(e.at)}</td>
                <td>{activityAction(e.action)}</td>
                <td>{auditLine(e)}</td>
                <td>{activityActor(e.actor)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollBox>
    ) : null}
  </section>
);

export const AccountBody: FC<{
  d: AccountPageData;
  tokens: ConsoleTokens;
  notice: Notice | null;
}> = ({ d, tokens, notice }) => {
  const v = d.view;
  const b = d.ledger?.balance;
  const base = accountPath(v.id);
  const forms = tokens["operator-credits"] !== undefined;
  return (
    <>
      <h1>{v.email}</h1>
      <NoticeBox notice={notice} />
      {v.suspension ? (
        <NoticeBox
          notice={{
            tone: "bad",
            text: `Suspended since ${formatTime(v.suspension.suspended_at)}.`,
            detail: `Reason: ${v.suspension.reason ?? ""}`,
          }}
        />
      ) : null}
      {forms ? null : (
        <NoticeBox
          notice={{
            tone: "warn",
            text: "Actions are off: this server has no SESSION_SECRET (or ADMIN_TOKEN) to sign their forms.",
          }}
        />
      )}
      <section class="card" aria-labelledby="balance-h">
        <h2 id="balance-h">Balance</h2>
        <dl class="stats">
          <Fact label="Monthly">{b ? formatCredits(b.monthly) : "no ledger"}</Fact>
          <Fact label="Purchased">{b ? formatCredits(b.purchased) : "no ledger"}</Fact>
          <Fact label="Total">{b ? formatCredits(b.total) : "no ledger"}</Fact>
        </dl>
        {forms ? (
          <form method="post" action={`${base}/credits`}>
            <Csrf token={tokens["operator-credits"]} />
            <input type="hidden" name="idempotency_key" value={d.adjustKey} />
            <fieldset>
              <legend>Adjust credits (negative removes)</legend>
              <label class="field" for="adj-monthly">
                Monthly credits
              </label>
              <input type="number" id="adj-monthly" name="monthly" value="0" step="1" />
              <label class="field" for="adj-purchased">
                Purchased credits
              </label>
              <input type="number" id="adj-purchased" name="purchased" value="0" step="1" />
              <ReasonField id="adj-reason" label="Reason (the customer sees it in their history)" />
              <div class="actions">
                <button type="submit">Adjust</button>
              </div>
            </fieldset>
          </form>
        ) : null}
      </section>
      <section class="card" aria-labelledby="plan-h">
        <h2 id="plan-h">Plan, subscription and card</h2>
        <dl class="facts">
          <dt>Account id</dt>
          <dd>
            <code>{v.id}</code>
          </dd>
          <dt>Plan</dt>
          <dd>
            {v.plan}
            {v.complimentary ? " (complimentary)" : ""}
          </dd>
          <dt>Subscription</dt>
          <dd>
            {v.subscription
              ? `${v.subscription.status}, period ends ${v.subscription.current_period_end ?? "?"}${v.subscription.cancel_at_period_end ? ", cancels then" : ""}`
              : "none"}
          </dd>
          <dt>Stripe customer</dt>
          <dd>{d.stripeCustomerId ? <code>{d.stripeCustomerId}</code> : "none"}</dd>
          <dt>Card</dt>
          <dd>
            {v.payment_method
              ? `${v.payment_method.brand} ending ${v.payment_method.last4}, expires ${v.payment_method.exp_month}/${v.payment_method.exp_year}`
              : "none on file"}
          </dd>
          <dt>Auto-recharge</dt>
          <dd>
            {d.ledger?.autoRecharge.enabled
              ? `on (${d.ledger.autoRecharge.package ?? "default package"})`
              : "off"}
          </dd>
          <dt>Created</dt>
          <dd>{formatTime(v.created_at)}</dd>
        </dl>
      </section>
      <PeopleSection
        members={d.members}
        action={`${base}/sign-in-link`}
        token={forms ? tokens["operator-sign-in-link"] : undefined}
      />
      <section class="card" aria-labelledby="suspension-h">
        <h2 id="suspension-h">{v.suspension ? "Lift the suspension" : "Suspend"}</h2>
        <p class="hint">
          A suspended account's API requests are refused (403 account_suspended, free, nothing
          forwarded) and nothing can be bought; its people see the reason.
        </p>
        {forms ? (
          v.suspension ? (
            <form method="post" action={`${base}/unsuspend`}>
              <Csrf token={tokens["operator-unsuspend"]} />
              <ReasonField id="unsuspend-reason" />
              <div class="actions">
                <button type="submit">Lift the suspension</button>
              </div>
            </form>
          ) : (
            <form method="post" action={`${base}/suspend`}>
              <Csrf token={tokens["operator-suspend"]} />
              <ReasonField id="suspend-reason" label="Reason (shown to the account's people)" />
              <div class="actions">
                <button type="submit" class="danger">
                  Suspend
                </button>
              </div>
            </form>
          )
        ) : null}
      </section>
      <section class="card" aria-labelledby="keys-h">
        <h2 id="keys-h">API keys</h2>
        <ScrollBox label="API keys">
          <table>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Name</th>
                <th scope="col">Scope</th>
                <th scope="col">Created</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {d.keys.map((k) => (
                <tr>
                  <td>
                    <code>
                      {k.prefix}…{k.last4}
                    </code>
                  </td>
                  <td>{k.name ?? ""}</td>
                  <td>{k.scope}</td>
                  <td>{formatTime(k.created_at)}</td>
                  <td>
                    {k.revoked_at ? (
                      <span class="pill revoked">revoked</span>
                    ) : forms ? (
                      <form
                        method="post"
                        action={`${base}/keys/${encodeURIComponent(k.id)}/revoke`}
                        class="inline-form"
                      >
                        <Csrf token={tokens["operator-revoke-key"]} />
                        <ReasonField
                          id={`revoke-${k.id}`}
                          label={`Reason to revoke ${k.prefix}…${k.last4}`}
                        />
                        <button type="submit" class="danger">
                          Revoke
                        </button>
                      </form>
                    ) : (
                      "active"
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      </section>
      <section class="card" aria-labelledby="history-h">
        <h2 id="history-h">Ledger history and purchases</h2>
        <ScrollBox label="Ledger history">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">What</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">
                  Credits
                </th>
                <th scope="col" class="num">
                  Amount
                </th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {d.history.map((t) => (
                <tr>
                  <td>{formatTime(t.created_at)}</td>
                  <td>{t.type}</td>
                  <td>
                    <span class={`pill ${t.status}`}>{t.status}</span>
                  </td>
                  <td class="num">{formatCredits(t.credits)}</td>
                  <td class="num">{formatCents(t.amount_cents)}</td>
                  <td>{t.description ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      </section>
      <AuditSection entries={d.audit} />
      <section class="card" aria-labelledby="emails-h">
        <h2 id="emails-h">Emails</h2>
        {d.emails.length === 0 ? <p>None sent.</p> : null}
        <ul>
          {d.emails.map((e) => (
            <li>
              {formatTime(e.created_at)}: {e.subject} to {e.to} ({e.status})
            </li>
          ))}
        </ul>
      </section>
    </>
  );
};

export const OperatorSignIn: FC<{ csrf: string; notice?: Notice | null }> = ({ csrf, notice }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="op-signin-h">
        <h1 id="op-signin-h">Operator console</h1>
        <p class="lead">
          Local mode: sign in with the server's ADMIN_TOKEN. In production, Cloudflare Access signs
          operators in.
        </p>
        <NoticeBox notice={notice} />
        <form method="post" action={SIGN_IN_PATH}>
          <input type="hidden" name="csrf" value={csrf} />
          <label class="field" for="admin-token">
            Admin token
          </label>
          <input
            type="password"
            id="admin-token"
            name="admin_token"
            required
            autocomplete="off"
            spellcheck={false}
          />
          <div class="actions">
            <button type="submit">Sign in</button>
          </div>
        </form>
      </section>
    </div>
  </main>
);

export const ConsoleMessage: FC<{ title: string; text: string }> = ({ title, text }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="msg-h">
        <h1 id="msg-h">{title}</h1>
        <p>{text}</p>
        <p>
          <a href={CONSOLE_PATH}>Back to the console</a>
        </p>
      </section>
    </div>
  </main>
);
