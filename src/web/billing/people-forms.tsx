/** The Billing page's people and access forms: API keys, passkeys and members. */
/**
 * Account / Billing, the server-rendered dashboard page, mounted at `/account`. It works
 * without JavaScript. Every form post that acts is answered by a redirect (303, post/redirect/
 * get): what the next page view shows once (a notice, a new key) travels in the encrypted,
 * read-once flash cookie (see `setFlash` in ../session), never in the URL, so reloading the page
 * repeats nothing and shows no notice twice. Posts that are refused outright (bad CSRF token,
 * invalid fields) answer with an error page: repeating them changes nothing either.
 */

import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import { Hono } from "hono";
import { z } from "zod";
import { limitAction } from "../../accounts/action-limits";
import { createKey, revokeKey } from "../../accounts/keys";
import { changeRole, inviteMember, removeMember } from "../../accounts/members";
import { addPasskey, removePasskey } from "../../accounts/passkeys";
import { ROLES, type Role } from "../../accounts/roles";
import { endSession } from "../../accounts/sessions";
import { publicOrigin } from "../../accounts/signup-config";
import type { AppEnv } from "../../http/context";
import { formSession, parseFields, readFields } from "../kit/forms";
import { relyingParty } from "../kit/passkey-form";

/** Every Billing page's title ends with the page's name and the business's. */

import { NOTICES, redirectWith, refused } from "./form-replies";

const RoleField = z.enum(ROLES as [Role, ...Role[]], { error: "choose one of the roles" });
const InviteForm = z.object({ email: z.email().max(254), role: RoleField });
const RoleForm = z.object({ role: RoleField });

const CreateKeyForm = z.object({
  name: z.string().trim().max(100).optional(),
  scope: z.enum(["classify", "full"]).default("classify"),
});

/** The passkey form's `response` field: the credential's JSON, or null. */
function parsePasskeyResponse(value: string | undefined) {
  if (!value || value.length > 16_384) return null;
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as RegistrationResponseJSON) : null;
  } catch {
    return null;
  }
}

/** Mounted by ./routes at `/account`; the same functions as the API's keys and members routes. */
export const peopleFormRoutes = new Hono<AppEnv>()
  .post("/billing/keys", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "keys", fields);
    const form = parseFields(fields, CreateKeyForm);
    const name = form.name ? form.name : null;
    const created = await createKey(
      c.env,
      c.get("db"),
      session.accountId,
      {
        name,
        scope: form.scope,
        role: session.role,
      },
      c.get("actor"),
    );
    if (!created.ok) {
      return created.reason === "action_rate_limited"
        ? refused(c, secret, session, created.reason, created.retryAfterSeconds)
        : refused(c, secret, session, created.reason);
    }
    // The key goes to the next page view in the encrypted, read-once flash (never in a URL):
    // reloading that page repeats a GET, so it neither shows the key again nor makes another.
    return redirectWith(c, secret, session, { newKey: { key: created.key.key, name } });
  })
  .post("/billing/keys/:id/revoke", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "keys", fields);
    const keyId = c.req.param("id");
    const result = await revokeKey(
      c.env,
      c.get("db"),
      session.accountId,
      keyId,
      c.get("actor"),
      session.role,
    );
    if (!result.ok) return refused(c, secret, session, result.reason);
    return redirectWith(c, secret, session, { notice: NOTICES.keyRevoked });
  })
  .post("/billing/passkeys", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "passkeys", fields);
    const response = parsePasskeyResponse(fields.response);
    const result = response
      ? await addPasskey(c.get("db"), relyingParty(c), session, response)
      : { ok: false as const, reason: "not_verified" as const };
    if (!result.ok) {
      return redirectWith(c, secret, session, {
        notice: {
          tone: "bad",
          text:
            result.reason === "already_added"
              ? "That passkey is already added."
              : "No passkey was added: your device's answer could not be verified, or the page was out of date. Reload the page and try again.",
        },
      });
    }
    return redirectWith(c, secret, session, { notice: NOTICES.passkeyAdded });
  })
  .post("/billing/passkeys/:id/remove", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "passkeys", fields);
    const removed = await removePasskey(c.get("db"), session, c.req.param("id"));
    return redirectWith(c, secret, session, {
      notice: removed ? NOTICES.passkeyRemoved : NOTICES.passkeyGone,
    });
  })
  .post("/billing/members", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "members", fields, "members");
    const form = parseFields(fields, InviteForm);
    await limitAction(c.get("db"), session.accountId, "invite");
    // The same function as POST /v1/account/members.
    const result = await inviteMember(
      c.env,
      c.get("db"),
      {
        accountId: session.accountId,
        email: form.email,
        role: form.role,
        invitedBy: session.email,
        origin: publicOrigin(c.env, c.req.url),
      },
      c.get("actor"),
    );
    if (!result.ok) return refused(c, secret, session, result.reason);
    return redirectWith(c, secret, session, {
      notice: {
        tone: "ok",
        text: `Invitation sent to ${result.member.email} (${result.member.role}).`,
        detail: "The link works once, for 7 days.",
      },
    });
  })
  .post("/billing/members/:id/role", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "members", fields, "members");
    const form = parseFields(fields, RoleForm);
    const result = await changeRole(
      c.get("db"),
      session.accountId,
      c.req.param("id"),
      form.role,
      c.get("actor"),
    );
    if (!result.ok) return refused(c, secret, session, result.reason);
    return redirectWith(c, secret, session, {
      notice: { tone: "ok", text: `${result.member.email} is now ${result.member.role}.` },
    });
  })
  .post("/billing/members/:id/remove", async (c) => {
    const fields = await readFields(c);
    const { session, secret } = await formSession(c, "members", fields, "members");
    const memberId = c.req.param("id");
    const result = await removeMember(c.get("db"), session.accountId, memberId, c.get("actor"));
    if (!result.ok) return refused(c, secret, session, result.reason);
    if (memberId === session.memberId) {
      endSession(c);
      return redirectWith(c, secret, null, { notice: NOTICES.removedYourself });
    }
    return redirectWith(c, secret, session, { notice: NOTICES.memberRemoved });
  });
