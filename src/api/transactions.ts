import { Hono } from "hono";
import { z } from "zod";
import { listTransactions } from "../accounts/transactions";
import type { AppEnv } from "../http/context";
import { CursorParam } from "../http/cursor";
import { describe } from "../http/openapi";
import { parseQuery } from "../platform/body";

const Query = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  // Decoded by the schema: a cursor that is not ours is the same 400 as any bad parameter.
  cursor: CursorParam.optional(),
});

const listDoc = describe({
  summary: "The ledger's entries, newest first, by cursor",
  tag: "Account",
  security: ["api_key", "session"],
  query: Query,
});

/** `GET /v1/account/transactions`: newest first, cursor pagination. */
export const transactionRoutes = new Hono<AppEnv>().get("/", listDoc, async (c) => {
  const q = parseQuery(c, Query);
  return c.json(await listTransactions(c.get("db"), c.get("accountId"), q.limit, q.cursor), 200);
});
