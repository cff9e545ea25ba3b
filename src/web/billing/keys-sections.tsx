/** The Billing page's API keys (and the one-time display of a new key with its quickstart). */
import type { FC } from "hono/jsx";
import { keyPermission, type Permission } from "../../accounts/roles";
import type { ListedKey } from "../../db/api-keys";
import { keyHint, Quickstart } from "../docs/quickstart";
import { formatDate } from "../kit/format";
import { COPY_SCRIPT } from "../kit/security";
import { BILLING_PATH } from "./pages";
import { Csrf } from "./parts";

export const keyLabel = (k: ListedKey) => k.name ?? `${k.prefix}…${k.last4}`;

/** The account's only active `full` key, which cannot be revoked. */
function isLastFull(keys: ListedKey[], key: ListedKey): boolean {
  return (
    key.scope === "full" && keys.filter((k) => k.scope === "full" && !k.revoked_at).length === 1
  );
}

export const KeysSection: FC<{
  keys: ListedKey[];
  token: string;
  can: (p: Permission) => boolean;
}> = ({ keys, token, can }) => (
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

/**
 * A key just created, shown whole (it wraps) in a read-only field: selectable by hand, so the
 * page works without JavaScript; the hashed script only reveals the "Copy key" button.
 */
export const NewKey: FC<{ created: { key: string; name: string | null }; apiBase: string }> = ({
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
