import { Hono } from "hono";
import { z } from "zod";
import {
  allTransactionPages,
  listTransactions,
  TRANSACTION_CSV_COLUMNS,
} from "../accounts/transactions";
import type { AppEnv } from "../http/context";
import { csvResponse, wantsCsv } from "../http/csv";
import { CursorParam } from "../http/cursor";
import { describe } from "../http/openapi";
import { parseQuery } from "../platform/body";

const Query = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  // Decoded by the schema: a cursor that is not ours is the same 400 as any bad parameter.
  cursor: CursorParam.optional(),
  format: z.enum(["json", "csv"], { error: "must be json or csv" }).optional(),
});

const listDoc = describe({
  summary: "The ledger's entries, newest first, by cursor; CSV with format=csv",
  tag: "Account",
  security: ["api_key", "session"],
  query: Query,
  ok: { contentType: "text/csv" },
});

/**
 * `GET /v1/account/transactions`: newest first, cursor pagination; with `format=csv` (or
 * `Accept: text/csv`) every transaction from the cursor on, newest first, streamed page by page.
 */
export const transactionRoutes = new Hono<AppEnv>().get("/", listDoc, async (c) => {
  const q = parseQuery(c, Query);
  const db = c.get("db");
  const accountId = c.get("accountId");
  if (wantsCsv(c, q.format)) {
    const rows = async function* () {
      for await (const page of allTransactionPages(db, accountId, q.cursor))
        yield page.map((t) => TRANSACTION_CSV_COLUMNS.map((col) => t[col]));
    };
    return csvResponse("transactions.csv", TRANSACTION_CSV_COLUMNS, rows());
  }
  return c.json(await listTransactions(db, accountId, q.limit, q.cursor), 200);
});
