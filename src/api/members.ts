import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { limitAction } from "../accounts/action-limits";
import { changeRole, inviteMember, removeMember } from "../accounts/members";
import { ROLES, type Role } from "../accounts/roles";
import { publicOrigin } from "../accounts/signup-config";
import { listMembers } from "../db/members";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { refusal } from "../platform/refusals";

const RoleField = z.enum(ROLES as [Role, ...Role[]], {
  error: "must be owner, billing, developer or viewer",
});
const InviteBody = z.strictObject({ email: z.email().max(254), role: RoleField });
const RoleBody = z.strictObject({ role: RoleField });

const listDoc = describe({
  summary: "The account's people and their roles",
  tag: "Members",
  security: "session",
});
const inviteDoc = describe({
  summary: "Invite a person by email",
  tag: "Members",
  security: "session",
  body: InviteBody,
  ok: { status: 201 },
  errors: [403, 409, 429],
});
const roleDoc = describe({
  summary: "Change a person's role",
  tag: "Members",
  security: "session",
  body: RoleBody,
  errors: [403, 404, 409],
});
const removeDoc = describe({
  summary: "Remove a person",
  tag: "Members",
  security: "session",
  errors: [403, 404, 409],
});

/**
 * People are managed by people: an API key gets 403 `session_required` here, whatever its
 * scope. Which person may change what is the role table's (the account router's middleware).
 */
const sessionOnly = createMiddleware<AppEnv>(async (c, next) => {
  if (c.get("role") === null) throw refusal("session_required");
  await next();
});

/** `/v1/account/members`: list (every role reads), invite, change a role, remove (owners). */
export const memberRoutes = new Hono<AppEnv>()
  .use(sessionOnly)
  .get("/", listDoc, async (c) =>
    c.json({ data: await listMembers(c.get("db"), c.get("accountId")) }, 200),
  )
  .post("/", inviteDoc, async (c) => {
    const body = await parseJson(c, InviteBody);
    await limitAction(c.get("db"), c.get("accountId"), "invite");
    const result = await inviteMember(
      c.env,
      c.get("db"),
      {
        accountId: c.get("accountId"),
        email: body.email,
        role: body.role,
        invitedBy: c.get("actor").label,
        origin: publicOrigin(c.env, c.req.url),
      },
      c.get("actor"),
    );
    if (!result.ok) throw refusal(result.reason);
    return c.json(result.member, 201);
  })
  .patch("/:id", roleDoc, async (c) => {
    const body = await parseJson(c, RoleBody);
    const result = await changeRole(
      c.get("db"),
      c.get("accountId"),
      c.req.param("id"),
      body.role,
      c.get("actor"),
    );
    if (!result.ok) throw refusal(result.reason);
    return c.json(result.member, 200);
  })
  .delete("/:id", removeDoc, async (c) => {
    const result = await removeMember(
      c.get("db"),
      c.get("accountId"),
      c.req.param("id"),
      c.get("actor"),
    );
    if (!result.ok) throw refusal(result.reason);
    return c.json({ ...result.member, deleted: true }, 200);
  });
