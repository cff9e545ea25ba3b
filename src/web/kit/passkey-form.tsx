/**
 * The passkey forms of the Billing page and the sign-in page: a plain form whose hidden
 * `response` field PASSKEY_SCRIPT fills with the authenticator's answer before posting it. The
 * button starts hidden (no script or no WebAuthn: nothing to press).
 */
import type { Context } from "hono";
import type { FC } from "hono/jsx";
import type { RelyingParty } from "../../accounts/passkeys";
import { publicOrigin } from "../../accounts/signup-config";
import type { AppEnv } from "../../http/context";
import { brandOf } from "../../platform/brand";
import { PASSKEY_SCRIPT } from "./security";

/** The relying party: the dashboard's origin (DASHBOARD_URL, else the request's). */
export function relyingParty(c: Context<AppEnv>): RelyingParty {
  return { origin: publicOrigin(c.env, c.req.url), name: brandOf(c.env).company };
}

export const PasskeyForm: FC<{
  mode: "register" | "authenticate";
  action: string;
  csrf: string;
  options: unknown;
  label: string;
  id: string;
}> = ({ mode, action, csrf, options, label, id }) => (
  <form method="post" action={action} data-passkey={mode} data-options={JSON.stringify(options)}>
    <input type="hidden" name="csrf" value={csrf} />
    <input type="hidden" name="response" value="" />
    <div class="actions">
      <button type="button" class="secondary" data-passkey-start hidden>
        {label}
      </button>
      <span id={`${id}-status`} role="status" data-passkey-status />
    </div>
    <script dangerouslySetInnerHTML={{ __html: PASSKEY_SCRIPT }} />
  </form>
);
