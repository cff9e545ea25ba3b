import { Hono } from "hono";
import { z } from "zod";
import { listTransactions } from "../accounts/transactions";
import type { AppEnv } from "../http/context";
import { CursorParam } from "../http/cursor";
import { parseQuery } from "../platform/body";

const Query = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  // Decoded by the schema: a cursor that is not ours is the same 400 as any bad parameter.
  cursor: CursorParam.optional(),
});

/** `GET /v1/account/transactions`: newest first, cursor pagination. */
export const transactionRoutes = new Hono<AppEnv>().get("/", async (c) => {
  const q = parseQuery(c, Query);
  return c.json(await listTransactions(c.get("db"), c.get("accountId"), q.limit, q.cursor), 200);
});
