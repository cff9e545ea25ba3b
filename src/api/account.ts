import { Hono } from "hono";
import { accountView } from "../accounts/account-view";
import { accountSnapshotJson } from "../accounts/ledger-json";
import { getAccount } from "../db/accounts";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { ledgerFor } from "../ledger/client";
import { refusal } from "../platform/refusals";

const getDoc = describe({
  summary: "The account",
  tag: "Account",
  security: ["api_key", "session"],
  errors: [409],
});
const balanceDoc = describe({
  summary: "The balance: monthly and purchased credits",
  tag: "Account",
  security: ["api_key", "session"],
  errors: [409],
});

/** `GET /v1/account` and `GET /v1/account/balance`. */
export const accountRoutes = new Hono<AppEnv>()
  .get("/", getDoc, async (c) => {
    const account = await getAccount(c.get("db"), c.get("accountId"));
    if (!account) throw refusal("not_initialized");
    return c.json(accountView(account), 200);
  })
  .get("/balance", balanceDoc, async (c) => {
    const account = await ledgerFor(c.env, c.get("accountId")).snapshot();
    if (!account) throw refusal("not_initialized");
    const snapshot = accountSnapshotJson(account);
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
