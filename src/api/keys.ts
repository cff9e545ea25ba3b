import { Hono } from "hono";
import { z } from "zod";
import { actionRateLimited } from "../accounts/action-limits";
import { listKeys } from "../accounts/key-list";
import { createKey, revokeKey } from "../accounts/keys";
import { MAX_ACTIVE_KEYS } from "../db/api-keys";
import type { AppEnv } from "../http/context";
import { CursorParam } from "../http/cursor";
import { describe } from "../http/openapi";
import { parseJson, parseQuery } from "../platform/body";
import { refusal } from "../platform/refusals";

const CreateKeyBody = z.strictObject({
  name: z.string().trim().min(1).max(100).optional(),
  scope: z.enum(["classify", "full"], { error: "must be classify or full" }).optional(),
});

/** Paged like the transaction history; a page holds every active key by default (at most 20). */
const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(100),
  cursor: CursorParam.optional(),
});

const listDoc = describe({
  summary: "The account's API keys (prefix and last four only)",
  tag: "Keys",
  security: ["api_key", "session"],
  query: ListQuery,
});
const createDoc = describe({
  summary: "Create a key: the whole key is in this response only",
  tag: "Keys",
  security: ["api_key", "session"],
  body: CreateKeyBody,
  ok: { status: 201, description: "The new key, `key` shown once" },
  errors: [403, 409, 429],
});
const revokeDoc = describe({
  summary: "Revoke a key",
  tag: "Keys",
  security: ["api_key", "session"],
  errors: [403, 404, 409],
});

/** `/v1/account/keys`: list (prefix and last four only), create (the full key once), revoke. */
export const keyRoutes = new Hono<AppEnv>()
  .get("/", listDoc, async (c) => {
    const q = parseQuery(c, ListQuery);
    return c.json(await listKeys(c.env, c.get("db"), c.get("accountId"), q.limit, q.cursor), 200);
  })
  .post("/", createDoc, async (c) => {
    const body = await parseJson(c, CreateKeyBody);
    // Keys made through the API can only spend unless asked otherwise (money rule 11).
    const result = await createKey(
      c.env,
      c.get("db"),
      c.get("accountId"),
      {
        name: body.name ?? null,
        scope: body.scope ?? "classify",
        role: c.get("role"),
      },
      c.get("actor"),
    );
    if (!result.ok) {
      if (result.reason === "action_rate_limited") {
        throw actionRateLimited(result.retryAfterSeconds);
      }
      throw refusal(result.reason, { extra: { limit: MAX_ACTIVE_KEYS } });
    }
    return c.json(result.key, 201);
  })
  .delete("/:id", revokeDoc, async (c) => {
    const result = await revokeKey(
      c.env,
      c.get("db"),
      c.get("accountId"),
      c.req.param("id"),
      c.get("actor"),
      c.get("role"),
    );
    if (!result.ok) throw refusal(result.reason);
    return c.json({ ...result.key, revoked: true }, 200);
  });
