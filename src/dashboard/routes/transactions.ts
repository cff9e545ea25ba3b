import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../../env";
import { ApiError } from "../../errors";
import { parseQuery } from "../../http/body";
import { listTransactions } from "../transactions";

const Query = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(300).optional(),
});

/** `GET /v1/account/transactions`: newest first, cursor pagination. */
export const transactionRoutes = new Hono<AppEnv>().get("/", async (c) => {
  const q = parseQuery(c, Query);
  const page = await listTransactions(c.get("db"), c.get("accountId"), q.limit, q.cursor);
  if (!page) {
    throw ApiError.invalidRequest("The cursor is not valid.", [
      { field: "cursor", message: "invalid cursor" },
    ]);
  }
  return c.json(page, 200);
});
