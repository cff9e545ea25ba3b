// @ts-check
/**
 * Contract: "Account" routes (account, balance, keys, scopes, transactions, usage, limits,
 * alerts, billing portal), isolation between accounts, and the operator account routes
 * (create with `complimentary`, PATCH, audit, emails).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  admin,
  attachPaymentMethod,
  balanceOf,
  call,
  classify,
  createAccount,
  createKey,
  emailsOf,
  expectError,
  fieldNames,
  isRfc3339Utc,
  listKeys,
  setBalance,
  startStack,
  uniqueEmail,
  waitFor,
} from "./helpers.mjs";

/** A listed key is revoked: a `revoked…` field holds true or a time. @param {any} k */
const isRevoked = (k) =>
  Object.entries(k).some(
    ([name, v]) => /revoked/.test(name) && (v === true || typeof v === "string"),
  );

/** @type {import("./helpers.mjs").Stack} */
let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe("GET /v1/account and /v1/account/balance", () => {
  test("GET /v1/account: id, email, plan, created_at", async () => {
    const account = await createAccount(stack);
    const res = await call(stack, "/v1/account", { key: account.api_key });
    assert.equal(res.status, 200, res.text);
    const a = res.body;
    assert.equal(a.id, account.id);
    assert.equal(a.email, account.email);
    assert.equal(a.plan, "free");
    assert.ok(isRfc3339Utc(a.created_at), `created_at: ${a.created_at}`);
  });

  test("GET /v1/account: subscription and payment_method are null on a new free account", async () => {
    const account = await createAccount(stack);
    const a = (await call(stack, "/v1/account", { key: account.api_key })).body;
    for (const f of ["subscription", "payment_method"])
      assert.ok(f in a && a[f] === null, `GET /v1/account .${f} is null: ${JSON.stringify(a)}`);
  });

  test("GET /v1/account: complimentary is false on a free account", async () => {
    const account = await createAccount(stack);
    const a = (await call(stack, "/v1/account", { key: account.api_key })).body;
    assert.equal(a.complimentary, false, `GET /v1/account .complimentary: ${JSON.stringify(a)}`);
  });

  test("payment_method shows {brand, last4, exp_month, exp_year} once attached", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id, "pm_card_visa");
    const pm = (await call(stack, "/v1/account", { key: account.api_key })).body.payment_method;
    assert.ok(pm, "GET /v1/account .payment_method is set after attaching pm_card_visa");
    assert.equal(pm.brand, "visa");
    assert.equal(pm.last4, "4242");
    assert.ok(Number.isInteger(pm.exp_month) && Number.isInteger(pm.exp_year), JSON.stringify(pm));
  });

  test("GET /v1/account/balance has the documented fields", async () => {
    const account = await createAccount(stack);
    const b = await balanceOf(stack, account.api_key);
    for (const f of [
      "monthly",
      "purchased",
      "total",
      "plan",
      "monthly_allowance",
      "cycle_ends_at",
      "auto_recharge",
    ])
      assert.ok(f in b, `balance.${f}`);
    assert.equal(b.total, b.monthly + b.purchased);
    assert.equal(b.plan, "free");
    assert.ok(Number.isInteger(b.monthly_allowance));
    assert.ok(isRfc3339Utc(b.cycle_ends_at), `cycle_ends_at: ${b.cycle_ends_at}`);
    assert.equal(typeof b.auto_recharge.enabled, "boolean");
  });
});

describe("operator account routes", () => {
  test("a paid plan without a subscription needs complimentary: true (400 naming complimentary)", async () => {
    for (const plan of ["starter", "pro"]) {
      const res = await admin(stack, "/accounts", { body: { email: uniqueEmail(), plan } });
      const error = expectError(
        res,
        400,
        "invalid_request",
        `POST /admin/accounts {plan: ${plan}}`,
      );
      assert.ok(fieldNames(error).includes("complimentary"), JSON.stringify(error));
      const explicitFalse = await admin(stack, "/accounts", {
        body: { email: uniqueEmail(), plan, complimentary: false },
      });
      const e2 = expectError(
        explicitFalse,
        400,
        "invalid_request",
        `{plan: ${plan}, complimentary: false}`,
      );
      assert.ok(fieldNames(e2).includes("complimentary"), JSON.stringify(e2));
    }
  });

  test("complimentary: true creates the paid plan, shown as complimentary, with its monthly credits", async () => {
    const res = await admin(stack, "/accounts", {
      body: { email: uniqueEmail(), plan: "starter", complimentary: true },
    });
    assert.equal(
      res.status,
      201,
      `POST /admin/accounts {starter, complimentary} → ${res.status} ${res.text}`,
    );
    const key = res.body.api_key;
    const a = (await call(stack, "/v1/account", { key })).body;
    assert.equal(a.plan, "starter");
    assert.equal(a.complimentary, true);
    assert.equal(a.subscription, null);
    const b = await balanceOf(stack, key);
    assert.equal(b.monthly, 3000, "the Starter plan's 3,000 monthly credits");
    const adminView = await admin(stack, `/accounts/${res.body.id}`);
    assert.equal(adminView.status, 200);
    assert.equal(adminView.body.complimentary, true, "shown as such everywhere (admin view)");
  });

  test("GET /admin/accounts/:id: the account as GET /v1/account shows it, plus balance", async () => {
    const account = await createAccount(stack);
    const mine = (await call(stack, "/v1/account", { key: account.api_key })).body;
    const res = await admin(stack, `/accounts/${account.id}`);
    assert.equal(res.status, 200, res.text);
    for (const [k, v] of Object.entries(mine)) assert.deepEqual(res.body[k], v, `admin view .${k}`);
    assert.ok("balance" in res.body, "balance");
    const missing = await admin(stack, "/accounts/acct_doesnotexist000000000000");
    expectError(missing, 404, "not_found");
  });

  test("POST /admin/accounts/:id/credits below zero is 409 insufficient_credits and changes nothing", async () => {
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 10, purchased: 3 });
    const res = await admin(stack, `/accounts/${account.id}/credits`, {
      body: { purchased: -4, reason: "too much" },
    });
    expectError(res, 409, "insufficient_credits");
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual([b.monthly, b.purchased], [10, 3]);
  });

  test("GET /admin/accounts/:id/audit: consistent, with storage_bytes", async () => {
    const account = await createAccount(stack);
    await classify(stack, account.api_key);
    await setBalance(stack, account, { monthly: 7, purchased: 2 });
    const res = await admin(stack, `/accounts/${account.id}/audit`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.consistent, true);
    assert.equal(res.body.ledger_total, 9);
    assert.equal(res.body.balance_total, 9);
    assert.ok(
      Number.isInteger(res.body.storage_bytes) && res.body.storage_bytes > 0,
      `storage_bytes: ${JSON.stringify(res.body.storage_bytes)}`,
    );
  });

  test("PATCH /admin/accounts/:id sets monthly_spend_limit_cents", async () => {
    const account = await createAccount(stack);
    const res = await admin(stack, `/accounts/${account.id}`, {
      method: "PATCH",
      body: { monthly_spend_limit_cents: 1234 },
    });
    assert.equal(res.status, 200, `PATCH → ${res.status} ${res.text}`);
    const limits = await call(stack, "/v1/account/limits", { key: account.api_key });
    assert.equal(limits.status, 200, limits.text);
    assert.equal(limits.body.monthly_spend_limit_cents, 1234);
  });
});

describe("API keys", () => {
  test("list, create and revoke have the documented shape", async () => {
    const account = await createAccount(stack);
    const [first] = await listKeys(stack, account.api_key);
    assert.ok(first, "the account's first key is listed");
    const names = Object.keys(first).join(",");
    for (const re of [/prefix/, /last_?4/, /(^|,)name(,|$)/, /created/, /revoked/])
      assert.match(names, re, `key fields: ${names}`);
    assert.ok(!JSON.stringify(first).includes(account.api_key), "the full key is never listed");

    const created = await createKey(stack, account.api_key, { name: "ci" });
    assert.match(created.key, /^tg_(live|test)_[A-Za-z0-9]{32,}$/);
    const listed = (await listKeys(stack, account.api_key)).find((k) => k.id === created.id);
    assert.ok(listed, "the new key is listed");
    assert.equal(listed.name, "ci");
    assert.ok(!JSON.stringify(listed).includes(created.key), "shown once only");

    const del = await call(stack, `/v1/account/keys/${created.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    assert.ok([200, 204].includes(del.status), `DELETE → ${del.status} ${del.text}`);
    const afterList = (await listKeys(stack, account.api_key)).find((k) => k.id === created.id);
    assert.ok(afterList && isRevoked(afterList), `listed as revoked: ${JSON.stringify(afterList)}`);
  });

  test("a revoked key gets 401 invalid_api_key within seconds", async () => {
    const account = await createAccount(stack);
    const created = await createKey(stack, account.api_key, { name: "short-lived" });
    assert.equal((await classify(stack, created.key)).status, 200);
    const del = await call(stack, `/v1/account/keys/${created.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    assert.ok([200, 204].includes(del.status), `DELETE → ${del.status} ${del.text}`);
    await waitFor(
      async () => (await classify(stack, created.key)).status === 401,
      "the revoked key stops working",
    );
    const res = await call(stack, "/v1/account", { key: created.key });
    expectError(res, 401, "invalid_api_key");
    assert.equal(res.headers.get("www-authenticate"), "Bearer");
  });

  test("the first key is full; POST /v1/account/keys makes classify keys unless asked otherwise", async () => {
    const account = await createAccount(stack);
    const [first] = await listKeys(stack, account.api_key);
    assert.equal(first.scope, "full", "the account's first key");
    const dflt = await createKey(stack, account.api_key, { name: "default" });
    const full = await createKey(stack, account.api_key, { name: "admin-ish", scope: "full" });
    const cls = await createKey(stack, account.api_key, { name: "explicit", scope: "classify" });
    const list = await listKeys(stack, account.api_key);
    const scope = (/** @type {string} */ id) => list.find((k) => k.id === id)?.scope;
    assert.deepEqual(
      [scope(dflt.id), scope(full.id), scope(cls.id)],
      ["classify", "full", "classify"],
    );
    const bad = await call(stack, "/v1/account/keys", {
      key: account.api_key,
      body: { scope: "root" },
    });
    const error = expectError(bad, 400, "invalid_request");
    assert.ok(fieldNames(error).includes("scope"));
  });

  test("a classify key: proxied traffic and GET routes yes, anything else 403 insufficient_scope", async () => {
    const account = await createAccount(stack);
    const other = await createKey(stack, account.api_key, { name: "other" });
    const cls = await createKey(stack, account.api_key, { name: "worker", scope: "classify" });
    assert.equal((await classify(stack, cls.key)).status, 200, "proxied traffic");
    for (const path of [
      "/v1/account",
      "/v1/account/balance",
      "/v1/account/keys",
      "/v1/account/auto-recharge",
      "/v1/account/transactions",
      "/v1/account/limits",
    ]) {
      const res = await call(stack, path, { key: cls.key });
      assert.equal(res.status, 200, `GET ${path} with a classify key → ${res.status} ${res.text}`);
    }
    /** @type {Array<[string, string, unknown]>} */
    const writes = [
      ["PUT", "/v1/account/auto-recharge", { enabled: false }],
      ["POST", "/v1/account/top-ups", { package: "credits_1000" }],
      ["POST", "/v1/account/keys", { name: "escalate", scope: "full" }],
      ["DELETE", `/v1/account/keys/${other.id}`, undefined],
      ["PUT", "/v1/account/limits", { monthly_spend_limit_cents: null }],
      ["PUT", "/v1/account/alerts", { low_balance_credits: 10 }],
      ["POST", "/v1/account/billing-portal", {}],
    ];
    for (const [method, path, body] of writes) {
      const res = await call(stack, path, { method, key: cls.key, body });
      expectError(res, 403, "insufficient_scope", `${method} ${path} with a classify key`);
    }
    const still = (await listKeys(stack, account.api_key)).find((k) => k.id === other.id);
    assert.ok(still && !isRevoked(still), "the refused DELETE changed nothing");
  });

  test("at most 20 active keys: the 21st is 409 limit_reached; revoking one frees a slot", async () => {
    const account = await createAccount(stack);
    const ids = [];
    for (let i = 0; i < 19; i++)
      ids.push((await createKey(stack, account.api_key, { name: `k${i}` })).id);
    const over = await call(stack, "/v1/account/keys", {
      key: account.api_key,
      body: { name: "k20" },
    });
    expectError(over, 409, "limit_reached", "the 21st active key");
    const del = await call(stack, `/v1/account/keys/${ids[0]}`, {
      method: "DELETE",
      key: account.api_key,
    });
    assert.ok([200, 204].includes(del.status), `DELETE → ${del.status}`);
    await createKey(stack, account.api_key, { name: "after-revoke" });
  });

  test("revoking the account's last active full key is 409 conflict", async () => {
    const account = await createAccount(stack);
    const [first] = await listKeys(stack, account.api_key);
    await createKey(stack, account.api_key, { name: "a classify key", scope: "classify" });
    const res = await call(stack, `/v1/account/keys/${first.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expectError(res, 409, "conflict", "revoking the only full key (a classify key remains)");
    assert.equal((await call(stack, "/v1/account", { key: account.api_key })).status, 200);
  });

  test("last full key: 5 concurrent self-revocations of 5 full keys leave exactly one (4 ok, 1 409 conflict)", async () => {
    const account = await createAccount(stack);
    const keys = [{ id: (await listKeys(stack, account.api_key))[0].id, key: account.api_key }];
    for (let i = 0; i < 4; i++)
      keys.push(await createKey(stack, account.api_key, { name: `full${i}`, scope: "full" }));
    const results = await Promise.all(
      keys.map((k) => call(stack, `/v1/account/keys/${k.id}`, { method: "DELETE", key: k.key })),
    );
    const statuses = results.map((r) => r.status);
    const ok = results.filter((r) => r.status === 200 || r.status === 204).length;
    const conflicts = results.filter(
      (r) => r.status === 409 && r.body?.error?.type === "conflict",
    ).length;
    assert.deepEqual({ ok, conflicts }, { ok: 4, conflicts: 1 }, `statuses: ${statuses.join(",")}`);
    const survivor = keys[results.findIndex((r) => r.status === 409)];
    const list = await listKeys(stack, survivor.key);
    const activeFull = list.filter((k) => k.scope === "full" && !isRevoked(k));
    assert.equal(activeFull.length, 1, JSON.stringify(list));
  });

  test("creating or revoking a key emails the account", async () => {
    const account = await createAccount(stack);
    const n0 = (await emailsOf(stack, account.id)).length;
    const created = await createKey(stack, account.api_key, { name: "mailed" });
    await waitFor(
      async () => (await emailsOf(stack, account.id)).length === n0 + 1,
      "one email after creating a key",
      { timeoutMs: 6000 },
    );
    const del = await call(stack, `/v1/account/keys/${created.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    assert.ok([200, 204].includes(del.status));
    await waitFor(
      async () => (await emailsOf(stack, account.id)).length === n0 + 2,
      "one more email after revoking it",
      { timeoutMs: 6000 },
    );
  });
});

describe("isolation", () => {
  test("another account's key id is 404, and nothing changes", async () => {
    const a = await createAccount(stack);
    const b = await createAccount(stack);
    const aKey = await createKey(stack, a.api_key, { name: "a's" });
    const res = await call(stack, `/v1/account/keys/${aKey.id}`, {
      method: "DELETE",
      key: b.api_key,
    });
    expectError(res, 404, "not_found", "B deleting A's key");
    const unknown = await call(stack, "/v1/account/keys/key_doesnotexist00000000", {
      method: "DELETE",
      key: b.api_key,
    });
    expectError(unknown, 404, "not_found", "an id that does not exist");
    assert.equal((await classify(stack, aKey.key)).status, 200, "A's key still works");
    assert.ok(
      !(await listKeys(stack, b.api_key)).some((k) => k.id === aKey.id),
      "B does not see it",
    );
  });

  test("each key sees its own account only", async () => {
    const a = await createAccount(stack);
    const b = await createAccount(stack);
    await setBalance(stack, a, { monthly: 11, purchased: 0 });
    assert.equal((await call(stack, "/v1/account", { key: b.api_key })).body.id, b.id);
    assert.notEqual((await balanceOf(stack, b.api_key)).total, 11);
  });
});

describe("transactions and usage", () => {
  test("GET /v1/account/transactions: newest first, documented fields, cursor pagination", async () => {
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 400, purchased: 0 });
    await setBalance(stack, account, { monthly: 300, purchased: 0 });
    const all = await call(stack, "/v1/account/transactions", { key: account.api_key });
    assert.equal(all.status, 200, all.text);
    assert.ok(Array.isArray(all.body.data) && "next_cursor" in all.body, all.text);
    assert.ok(all.body.data.length >= 2, `at least the two adjustments: ${all.text}`);
    for (const t of all.body.data) {
      for (const f of [
        "id",
        "type",
        "status",
        "credits",
        "amount_cents",
        "currency",
        "failure_code",
        "created_at",
      ])
        assert.ok(f in t, `transaction.${f}: ${JSON.stringify(t)}`);
      assert.ok(
        ["auto_recharge", "top_up", "monthly_grant", "adjustment"].includes(t.type),
        t.type,
      );
      assert.ok(["pending", "requires_action", "succeeded", "failed"].includes(t.status), t.status);
      assert.ok(isRfc3339Utc(t.created_at));
    }
    const times = all.body.data.map((/** @type {any} */ t) => t.created_at);
    assert.deepEqual(times, [...times].sort().reverse(), "newest first");

    const page1 = await call(stack, "/v1/account/transactions?limit=1", { key: account.api_key });
    assert.equal(page1.status, 200);
    assert.equal(page1.body.data.length, 1);
    assert.equal(typeof page1.body.next_cursor, "string");
    const page2 = await call(
      stack,
      `/v1/account/transactions?limit=1&cursor=${encodeURIComponent(page1.body.next_cursor)}`,
      { key: account.api_key },
    );
    assert.equal(page2.status, 200);
    assert.equal(page2.body.data.length, 1);
    assert.deepEqual(
      [page1.body.data[0].id, page2.body.data[0].id],
      [all.body.data[0].id, all.body.data[1].id],
    );
    const last = await call(stack, `/v1/account/transactions?limit=100`, { key: account.api_key });
    assert.equal(last.body.next_cursor, null, "no cursor after the last page");
    const bad = await call(stack, "/v1/account/transactions?limit=abc", { key: account.api_key });
    const err = expectError(bad, 400, "invalid_request");
    assert.ok(fieldNames(err).includes("limit"));
  });

  test("every transaction has invoice_url and action_url (null or a URL)", async () => {
    const account = await createAccount(stack);
    await setBalance(stack, account, { monthly: 400, purchased: 0 });
    const all = await call(stack, "/v1/account/transactions", { key: account.api_key });
    assert.equal(all.status, 200, all.text);
    assert.ok(all.body.data.length >= 1);
    for (const t of all.body.data) {
      for (const f of ["invoice_url", "action_url"]) {
        assert.ok(f in t, `transaction.${f} missing: ${JSON.stringify(t)}`);
        assert.ok(t[f] === null || /^https?:\/\//.test(t[f]), `transaction.${f}: ${t[f]}`);
      }
    }
  });

  test("GET /v1/account/usage: {granularity, series: [{start, requests, credits}]}", async () => {
    const account = await createAccount(stack);
    await classify(stack, account.api_key);
    await classify(stack, account.api_key);
    for (const g of ["minute", "hour", "day"]) {
      const res = await call(stack, `/v1/account/usage?granularity=${g}`, { key: account.api_key });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.granularity, g);
      assert.ok(Array.isArray(res.body.series));
      for (const p of res.body.series) {
        assert.ok(isRfc3339Utc(p.start), JSON.stringify(p));
        assert.ok(Number.isInteger(p.requests) && Number.isInteger(p.credits), JSON.stringify(p));
      }
    }
    const bad = await call(stack, "/v1/account/usage?granularity=second", { key: account.api_key });
    const err = expectError(bad, 400, "invalid_request");
    assert.ok(fieldNames(err).includes("granularity"));
  });
});

describe("spending limits", () => {
  test("GET /v1/account/limits: new accounts start with 20,000 cents", async () => {
    const account = await createAccount(stack);
    const res = await call(stack, "/v1/account/limits", { key: account.api_key });
    assert.equal(res.status, 200, `GET /v1/account/limits → ${res.status} ${res.text}`);
    assert.equal(res.body.monthly_spend_limit_cents, 20000);
    assert.equal(res.body.spent_this_month_cents, 0);
    assert.ok(isRfc3339Utc(res.body.period_ends_at), `period_ends_at: ${res.body.period_ends_at}`);
  });

  test("PUT /v1/account/limits sets a limit or null; bad values are 400 naming the field", async () => {
    const account = await createAccount(stack);
    const put = await call(stack, "/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: { monthly_spend_limit_cents: 5000 },
    });
    assert.equal(put.status, 200, `PUT /v1/account/limits → ${put.status} ${put.text}`);
    assert.equal(put.body.monthly_spend_limit_cents, 5000);
    // No key raises or removes the limit (money rule 11): a person or an operator does.
    const byKey = await call(stack, "/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: { monthly_spend_limit_cents: null },
    });
    expectError(byKey, 403, "session_required");
    const cleared = await admin(stack, `/accounts/${account.id}`, {
      method: "PATCH",
      body: { monthly_spend_limit_cents: null },
    });
    assert.equal(cleared.status, 200, cleared.text);
    assert.equal(
      (await call(stack, "/v1/account/limits", { key: account.api_key })).body
        .monthly_spend_limit_cents,
      null,
    );
    const bad = await call(stack, "/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: { monthly_spend_limit_cents: "lots" },
    });
    const err = expectError(bad, 400, "invalid_request");
    assert.ok(fieldNames(err).includes("monthly_spend_limit_cents"));
  });
});

describe("alerts and billing portal", () => {
  test("PUT /v1/account/alerts: one email when the total falls to the threshold", async () => {
    const account = await createAccount(stack);
    const put = await call(stack, "/v1/account/alerts", {
      method: "PUT",
      key: account.api_key,
      body: { low_balance_credits: 50 },
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.low_balance_credits, 50);
    assert.equal(
      (await call(stack, "/v1/account/alerts", { key: account.api_key })).body.low_balance_credits,
      50,
    );
    await setBalance(stack, account, { monthly: 52, purchased: 0 });
    const n0 = (await emailsOf(stack, account.id)).length;
    await classify(stack, account.api_key); // 51
    await classify(stack, account.api_key); // 50: at the threshold
    await classify(stack, account.api_key); // 49: still below, no second email
    await waitFor(
      async () => (await emailsOf(stack, account.id)).length === n0 + 1,
      "one low-balance email",
    );
    // The barrier: back above the threshold, then down to it again, is the one way to get the
    // next low-balance email. The account sends its emails in the order its changes happen, so
    // once that one is there, a second email for the request at 49 would be there too.
    await setBalance(stack, account, { monthly: 51, purchased: 0 });
    await classify(stack, account.api_key); // 50: at the threshold again, after being above it
    await waitFor(
      async () => (await emailsOf(stack, account.id)).length >= n0 + 2,
      "the next low-balance email, after the total went above the threshold and back",
    );
    assert.equal(
      (await emailsOf(stack, account.id)).length,
      n0 + 2,
      "not again until it has been above it",
    );
  });

  test("POST /v1/account/billing-portal → {url}", async () => {
    const account = await createAccount(stack);
    const res = await call(stack, "/v1/account/billing-portal", { key: account.api_key, body: {} });
    assert.ok([200, 201].includes(res.status), `${res.status} ${res.text}`);
    assert.match(res.body.url, /^https?:\/\//);
  });
});
