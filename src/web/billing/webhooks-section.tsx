/**
 * The Billing page's "Webhooks": the account's endpoints, each with its latest deliveries and
 * their status, and (for a role with `developer_tools`) the forms to add one, send it a test
 * event and delete it (./webhook-forms). A new endpoint's signing secret is shown once, on
 * the page view right after it was added.
 */
import type { FC } from "hono/jsx";
import { MAX_WEBHOOK_ENDPOINTS } from "../../db/webhooks";
import { WEBHOOK_EVENT_TYPES } from "../../delivery/webhook-events";
import { formatTime } from "../kit/format";
import { NoticeBox } from "../kit/layout";
import { COPY_SCRIPT } from "../kit/security";
import type { WebhookEndpointView } from "./data";
import { BILLING_PATH } from "./pages";
import { Csrf } from "./parts";

/** A just-added endpoint and its secret: the secret's only appearance. */
export interface NewWebhook {
  id: string;
  url: string;
  secret: string;
}

/** An add that was refused, shown again with what was typed and why. */
export interface WebhookDraft {
  url: string;
  events: string[];
  error: string;
}

/** The form's checkbox for an event: one field per event, as forms post one value a name. */
export const eventField = (type: string) => `event:${type}`;

const ACTION = `${BILLING_PATH}/webhooks`;

const Deliveries: FC<{ endpoint: WebhookEndpointView }> = ({ endpoint }) => (
  <div class="table-scroll">
    <table class="stack" aria-label={`Recent deliveries to ${endpoint.url}`}>
      <thead>
        <tr>
          <th scope="col">Date</th>
          <th scope="col">Event</th>
          <th scope="col">Status</th>
          <th scope="col">Last answer</th>
          <th scope="col">Attempts</th>
        </tr>
      </thead>
      <tbody>
        {endpoint.deliveries.length === 0 ? (
          <tr>
            <td colspan={5}>Nothing sent yet.</td>
          </tr>
        ) : (
          endpoint.deliveries.map((d) => (
            <tr data-delivery={d.id}>
              <td data-label="Date">{formatTime(d.at)}</td>
              <td data-label="Event">{d.type}</td>
              <td data-label="Status">
                <span class={`pill ${d.status}`}>{d.status}</span>
              </td>
              <td data-label="Answer">
                {d.code !== null
                  ? `HTTP ${d.code}`
                  : (d.error ?? <span class="muted">none yet</span>)}
              </td>
              <td data-label="Attempts">{d.attempts}</td>
            </tr>
          ))
        )}
      </tbody>
    </table>
  </div>
);

const Endpoint: FC<{ endpoint: WebhookEndpointView; token: string | null }> = ({
  endpoint: w,
  token,
}) => (
  <div class="webhook" data-endpoint={w.id}>
    <h3>
      <code>{w.url}</code>
    </h3>
    <p class="muted">{w.events === null ? "Every event" : `Events: ${w.events.join(", ")}`}</p>
    {token ? (
      <div class="actions">
        <form method="post" action={`${ACTION}/${w.id}/test`}>
          <Csrf token={token} />
          <button type="submit" class="secondary" aria-label={`Send test to ${w.url}`}>
            Send test
          </button>
        </form>
        <form method="post" action={`${ACTION}/${w.id}/delete`}>
          <Csrf token={token} />
          <button type="submit" class="danger" aria-label={`Delete endpoint ${w.url}`}>
            Delete
          </button>
        </form>
      </div>
    ) : null}
    <Deliveries endpoint={w} />
  </div>
);

const NewSecret: FC<{ created: NewWebhook }> = ({ created }) => (
  <div class="notice ok new-key-box" id="new-webhook-box">
    <p>
      <strong>Endpoint added: {created.url}.</strong> Copy its signing secret now: it is shown only
      this once. Check each request's <code>webhook-signature</code> with it.
    </p>
    <label class="field" for="new-webhook-secret">
      Signing secret
    </label>
    <textarea
      id="new-webhook-secret"
      class="secret"
      readonly
      rows={1}
      spellcheck={false}
      autocomplete="off"
    >
      {created.secret}
    </textarea>
    <div class="actions">
      <button type="button" data-copy="new-webhook-secret" data-status="webhook-copy-status" hidden>
        Copy secret
      </button>
      <span id="webhook-copy-status" role="status" />
    </div>
    <script dangerouslySetInnerHTML={{ __html: COPY_SCRIPT }} />
  </div>
);

const AddForm: FC<{ token: string; draft: WebhookDraft | null }> = ({ token, draft }) => (
  <>
    <h3>Add an endpoint</h3>
    {draft ? (
      <div id="webhook-url-error">
        <NoticeBox notice={{ tone: "bad", text: draft.error }} />
      </div>
    ) : null}
    {/* #webhooks: the answer, and the redirect after it, scroll back here (the secret, or why not). */}
    <form method="post" action={`${ACTION}#webhooks`} class="new-webhook">
      <Csrf token={token} />
      <label class="field" for="webhook-url">
        Endpoint URL
      </label>
      <input
        type="url"
        id="webhook-url"
        name="url"
        required
        maxlength={2048}
        value={draft?.url ?? ""}
        placeholder="https://example.com/tollgate-webhooks"
        aria-describedby={draft ? "webhook-url-error webhook-url-help" : "webhook-url-help"}
        aria-invalid={draft ? "true" : undefined}
        autocomplete="off"
      />
      <p class="hint" id="webhook-url-help">
        An https URL of your own systems; requests to private or internal addresses are refused.
      </p>
      <fieldset>
        <legend>Events (none checked: every event)</legend>
        {WEBHOOK_EVENT_TYPES.map((type) => (
          <p class="check">
            <input
              type="checkbox"
              id={`webhook-event-${type}`}
              name={eventField(type)}
              value="on"
              checked={draft?.events.includes(type) ?? false}
            />
            <label for={`webhook-event-${type}`}>
              <code>{type}</code>
            </label>
          </p>
        ))}
      </fieldset>
      <div class="actions">
        <button type="submit">Add endpoint</button>
      </div>
    </form>
  </>
);

/**
 * "Webhooks". `token` is null for a role without `developer_tools`: the list only. `created`
 * is the endpoint just added (its secret shown once), `draft` an add just refused.
 */
export const WebhooksSection: FC<{
  webhooks: WebhookEndpointView[];
  token: string | null;
  created?: NewWebhook | null;
  draft?: WebhookDraft | null;
}> = ({ webhooks, token, created, draft }) => (
  <section class="card" id="webhooks" aria-labelledby="webhooks-h">
    <h2 id="webhooks-h">Webhooks</h2>
    <p class="hint">
      Your own systems are told of low balances, purchases and plan changes by a signed{" "}
      <code>POST</code> (Standard Webhooks), retried for a day. Also through{" "}
      <code>/v1/account/webhooks</code> (<a href="/docs">API reference</a>).
    </p>
    {created ? <NewSecret created={created} /> : null}
    {webhooks.length === 0 ? <p>No webhook endpoints.</p> : null}
    {webhooks.map((w) => (
      <Endpoint endpoint={w} token={token} />
    ))}
    {token === null ? null : webhooks.length >= MAX_WEBHOOK_ENDPOINTS && !draft ? (
      <p class="muted">At most {MAX_WEBHOOK_ENDPOINTS} endpoints: delete one to add another.</p>
    ) : (
      <AddForm token={token} draft={draft ?? null} />
    )}
  </section>
);
