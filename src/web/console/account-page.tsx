/** The operator console's page of one account: its facts, people, purchases, emails, audit log and actions. */
import type { FC } from "hono/jsx";
import type { AccountView } from "../../accounts/account-view";
import type { AuditJson } from "../../accounts/audit";
import type { ListedKey } from "../../db/api-keys";
import type { ListedMember } from "../../db/members";
import type { LedgerAccount } from "../../ledger/domain/types";
import { formatCents } from "../../platform/money";
import { activityAction, activityActor, activityDetail } from "../billing/activity";
import { formatCredits, formatTime } from "../kit/format";
import { type Notice, NoticeBox } from "../kit/layout";
import { accountPath, type ConsoleTokens, Csrf, Fact, ScrollBox } from "./pages";

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
