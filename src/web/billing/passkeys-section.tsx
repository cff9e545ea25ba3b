/**
 * The Billing page's Passkeys section: the signed-in person's passkeys (theirs across every
 * account they belong to) and "Add a passkey". Every role may add one: it opens only what the
 * person's memberships already open.
 */
import type { FC } from "hono/jsx";
import type { PasskeyRow } from "../../db/passkeys";
import { formatDate } from "../kit/format";
import { PasskeyForm } from "../kit/passkey-form";
import { BILLING_PATH } from "./pages";

export interface PasskeysModel {
  list: Pick<PasskeyRow, "id" | "createdAt" | "lastUsedAt">[];
  /** "Add a passkey"'s options, with a fresh challenge. */
  options: unknown;
}

export const PasskeysSection: FC<{ passkeys: PasskeysModel; token: string }> = ({
  passkeys,
  token,
}) => (
  <section class="card" aria-labelledby="passkeys-h">
    <h2 id="passkeys-h">Passkeys</h2>
    <p>
      Sign in with your device's screen lock or a security key instead of an emailed link. A passkey
      is yours, not the account's: it signs you in to every account you belong to.
    </p>
    {passkeys.list.length > 0 ? (
      <div class="table-scroll">
        <table id="passkeys" class="stack">
          <thead>
            <tr>
              <th scope="col">Passkey</th>
              <th scope="col">Added</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="muted">Action</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {passkeys.list.map((p) => (
              <tr>
                <td data-label="Passkey">
                  <code>…{p.id.slice(-8)}</code>
                </td>
                <td data-label="Added">{formatDate(p.createdAt)}</td>
                <td data-label="Last used">
                  {p.lastUsedAt ? formatDate(p.lastUsedAt) : <span class="muted">never</span>}
                </td>
                <td data-label="Action" class="action">
                  <form
                    method="post"
                    action={`${BILLING_PATH}/passkeys/${encodeURIComponent(p.id)}/remove`}
                  >
                    <input type="hidden" name="csrf" value={token} />
                    <button
                      type="submit"
                      class="danger"
                      aria-label={`Remove the passkey ending ${p.id.slice(-8)}`}
                    >
                      Remove
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    ) : (
      <p class="muted">You have no passkey yet.</p>
    )}
    <PasskeyForm
      mode="register"
      action={`${BILLING_PATH}/passkeys`}
      csrf={token}
      options={passkeys.options}
      label="Add a passkey"
      id="passkey-add"
    />
  </section>
);
