/**
 * The operator console's pages, server-rendered with the Billing page's kit (layout, styles,
 * formats). No script: every action is a form with a required reason and its form token.
 */
import type { Child, FC } from "hono/jsx";
import type { Overview } from "../../accounts/overview";
import type { Actor } from "../../platform/actor";
import { formatCents } from "../../platform/money";
import { formatCredits, formatTime } from "../kit/format";
import { Document, type Notice, NoticeBox } from "../kit/layout";
import { CONSOLE_PATH, type ConsolePurpose } from "./auth";

export const SEARCH_PATH = `${CONSOLE_PATH}/console/accounts`;

export const accountPath = (id: string) => `${SEARCH_PATH}/${encodeURIComponent(id)}`;

export const SIGN_IN_PATH = `${CONSOLE_PATH}/console/sign-in`;

export const SIGN_OUT_PATH = `${CONSOLE_PATH}/console/sign-out`;

/** The form tokens a page's forms carry (absent: no secret configured, forms not offered). */
export type ConsoleTokens = Partial<Record<ConsolePurpose, string>>;

export const Csrf: FC<{ token: string | undefined }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token ?? ""} />
);

/**
 * A table that scrolls sideways on a phone: focusable, so a keyboard can scroll it too (axe:
 * scrollable-region-focusable), and named, as a focusable region must be.
 */
export const ScrollBox: FC<{ label: string; children?: Child }> = ({ label, children }) => (
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

export const Fact: FC<{ label: string; children?: Child }> = ({ label, children }) => (
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
