// @ts-check
/**
 * Contract, Authentication: "With no ADMIN_TOKEN configured, `/admin/*` answers 404 for
 * everything." Starts its own stack with ADMIN_TOKEN empty (skipped with ACCEPTANCE_BASE_URL:
 * a running stack has one token or the other).
 */
import { after, before, describe, test } from "node:test";
import { call, EXTERNAL, expectError, startStack } from "./helpers.mjs";

/** @type {import("./helpers.mjs").Stack} */
let stack;

describe("no ADMIN_TOKEN configured", {
  skip: EXTERNAL && "needs its own stack without ADMIN_TOKEN",
}, () => {
  before(async () => {
    stack = await startStack({ env: { ADMIN_TOKEN: "" }, echo: false });
  });
  after(async () => {
    await stack?.stop();
  });

  test("/admin/* answers 404 not_found for everything, whatever the token", async () => {
    /** @type {Array<[string, string, unknown]>} */
    const routes = [
      ["POST", "/admin/accounts", { email: "x@example.com" }],
      ["GET", "/admin/accounts/acct_x", undefined],
      ["PATCH", "/admin/accounts/acct_x", { rate_limit_per_minute: 1 }],
      ["POST", "/admin/accounts/acct_x/credits", { monthly: 1, reason: "x" }],
      ["GET", "/admin/accounts/acct_x/audit", undefined],
      ["POST", "/admin/reconcile", {}],
      ["GET", "/admin/nope", undefined],
    ];
    for (const token of [null, "dev-admin-token", ""]) {
      for (const [method, path, body] of routes) {
        const res = await call(stack, path, {
          method,
          body,
          headers: token === null ? {} : { Authorization: `Bearer ${token}` },
        });
        expectError(res, 404, "not_found", `${method} ${path} (token ${JSON.stringify(token)})`);
      }
    }
  });
});
