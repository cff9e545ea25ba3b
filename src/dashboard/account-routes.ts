import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { accounts } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { ledgerFor } from "../ledger/client";

/** `/v1/account/*`: an account sees and changes only itself (the id comes from the key). */
export const accountRoutes = new Hono<AppEnv>()
  .get("/", async (c) => {
    const row = await c
      .get("db")
      .select({
        id: accounts.id,
        email: accounts.email,
        plan: accounts.plan,
        created_at: accounts.createdAt,
      })
      .from(accounts)
      .where(eq(accounts.id, c.get("accountId")))
      .get();
    if (!row) throw ApiError.notFound("No such account.");
    return c.json(row, 200);
  })
  .get("/balance", async (c) => {
    const snapshot = await ledgerFor(c.env, c.get("accountId")).snapshot();
    if (!snapshot) throw ApiError.notFound("No such account.");
    return c.json(
      {
        monthly: snapshot.monthly,
        purchased: snapshot.purchased,
        total: snapshot.total,
        plan: snapshot.plan,
        monthly_allowance: snapshot.monthly_allowance,
        cycle_ends_at: snapshot.cycle_ends_at,
        auto_recharge: snapshot.auto_recharge,
      },
      200,
    );
  });
