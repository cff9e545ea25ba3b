import { Hono } from "hono";
import { z } from "zod";
import { auditJson, listAudit } from "../accounts/audit";
import type { AppEnv } from "../http/context";
import { CursorParam } from "../http/cursor";
import { describe } from "../http/openapi";
import { parseQuery } from "../platform/body";

export const AuditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: CursorParam.optional(),
});

const listDoc = describe({
  summary: "Who changed what on the account, newest first",
  tag: "Account",
  security: ["api_key", "session"],
  query: AuditQuery,
});

/** `GET /v1/account/audit-log`: who changed what on this account, newest first. */
export const auditLogRoutes = new Hono<AppEnv>().get("/", listDoc, async (c) => {
  const q = parseQuery(c, AuditQuery);
  const page = await listAudit(c.get("db"), { accountId: c.get("accountId") }, q.limit, q.cursor);
  return c.json({ data: page.rows.map(auditJson), next_cursor: page.next_cursor }, 200);
});
