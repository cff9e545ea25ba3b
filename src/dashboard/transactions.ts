import { and, desc, eq, lt, or, type SQL } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { transactions } from "../db/schema";
import type { AppEnv, Db } from "../env";
import { ApiError } from "../errors";
import { parseQuery } from "../http/body";

const Query = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(300).optional(),
});

/** Opaque cursor: the (created_at, id) of the last row of the page, base64url-encoded. */
export function encodeCursor(createdAt: string, id: string): string {
  return btoa(JSON.stringify([createdAt, id]))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

export function decodeCursor(cursor: string): [string, string] | null {
  try {
    const value = JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
    if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "string")) {
      return value as [string, string];
    }
  } catch {
    // fall through
  }
  return null;
}

export async function listTransactions(db: Db, accountId: string, limit: number, cursor?: string) {
  let after: SQL | undefined;
  if (cursor) {
    const decoded = decodeCursor(cursor);
    if (!decoded)
      throw ApiError.invalidRequest("The cursor is not valid.", [
        { field: "cursor", message: "invalid cursor" },
      ]);
    const [createdAt, id] = decoded;
    after = or(
      lt(transactions.createdAt, createdAt),
      and(eq(transactions.createdAt, createdAt), lt(transactions.id, id)),
    );
  }
  const rows = await db
    .select({
      id: transactions.id,
      type: transactions.type,
      status: transactions.status,
      credits: transactions.credits,
      amount_cents: transactions.amountCents,
      currency: transactions.currency,
      package: transactions.package,
      failure_code: transactions.failureCode,
      created_at: transactions.createdAt,
    })
    .from(transactions)
    .where(and(eq(transactions.accountId, accountId), after))
    .orderBy(desc(transactions.createdAt), desc(transactions.id))
    .limit(limit + 1)
    .all();
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return {
    data,
    next_cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}

/** `GET /v1/account/transactions`: newest first, cursor pagination. */
export const transactionRoutes = new Hono<AppEnv>().get("/", async (c) => {
  const q = parseQuery(c, Query);
  return c.json(await listTransactions(c.get("db"), c.get("accountId"), q.limit, q.cursor), 200);
});
