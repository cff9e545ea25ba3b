// @ts-check
/**
 * Contract: auto-recharge settings, top-ups, monthly spending limits; product doc:
 * product/auto-recharge.md (threshold 100, the three trigger scenarios, packages, emails,
 * failed payments).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  admin,
  attachPaymentMethod,
  awayFromTurnOf,
  balanceOf,
  call,
  classify,
  createAccount,
  emailsOf,
  expectError,
  fieldNames,
  isRfc3339Utc,
  setBalance,
  startStack,
  waitFor,
} from "./helpers.mjs";

/** @type {import("./helpers.mjs").Stack} */
let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/**
 * The positive barrier for "nothing was bought": a top-up of 1,000 credits, bought now and
 * waited for until it has succeeded. The contract runs top-ups "through the same pipeline as
 * auto-recharge", and the account records its purchases in the order it starts them, so by the
 * time this later purchase has gone all the way through, a purchase an earlier step wrongly
 * started is in the transactions (and its credits, had it been paid, in the balance) too.
 * Returns the top-up's id; the caller then asserts what must be absent.
 * @param {string} key
 */
async function purchaseBarrier(key) {
  const res = await call(stack, "/v1/account/top-ups", {
    key,
    body: { package: "credits_1000" },
    headers: { "Idempotency-Key": `barrier-${Date.now()}-${Math.random()}` },
  });
  assert.equal(res.status, 202, `the barrier top-up: ${res.text}`);
  await waitFor(
    async () =>
      (await transactionsOf(key)).some((x) => x.id === res.body.id && x.status === "succeeded"),
    "the barrier top-up succeeded",
  );
  return /** @type {string} */ (res.body.id);
}

/** @param {string} key */
const settingsOf = async (key) => {
  const res = await call(stack, "/v1/account/auto-recharge", { key });
  assert.equal(res.status, 200, res.text);
  return res.body;
};

/** @param {string} key @param {Record<string, unknown>} body */
const putSettings = (key, body) =>
  call(stack, "/v1/account/auto-recharge", { method: "PUT", key, body });

/** @param {string} key */
const transactionsOf = async (key) => {
  const res = await call(stack, "/v1/account/transactions?limit=100", { key });
  assert.equal(res.status, 200, res.text);
  return /** @type {any[]} */ (res.body.data);
};

/**
 * Sets the account's monthly spending limit. A key may lower it; raising it (or removing it)
 * needs a person (403 session_required, money rule 11), so a raise is asked of the key first,
 * refused, then made by an operator (`PATCH /admin/accounts/:id`).
 * @param {{ id: string, api_key: string }} account @param {number | null} cents
 */
const putLimit = async (account, cents) => {
  const res = await call(stack, "/v1/account/limits", {
    method: "PUT",
    key: account.api_key,
    body: { monthly_spend_limit_cents: cents },
  });
  if (res.status === 403) {
    expectError(res, 403, "session_required");
    const patched = await admin(stack, `/accounts/${account.id}`, {
      method: "PATCH",
      body: { monthly_spend_limit_cents: cents },
    });
    assert.equal(patched.status, 200, `PATCH limit {${cents}} → ${patched.status} ${patched.text}`);
    return patched.body;
  }
  assert.equal(res.status, 200, `PUT /v1/account/limits {${cents}} → ${res.status} ${res.text}`);
  return res.body;
};

/**
 * A free account with a card, balances set so that one 1-credit request lands exactly on
 * `at`, and auto-recharge enabled (while still above the threshold).
 * @param {{ monthly: number, purchased: number }} at
 */
async function armedAccount(at, pm = "pm_card_visa", pkg = "credits_1000") {
  const account = await createAccount(stack);
  await attachPaymentMethod(stack, account.id, pm);
  await setBalance(stack, account, { monthly: at.monthly + 1, purchased: at.purchased });
  const put = await putSettings(account.api_key, { enabled: true, package: pkg });
  assert.equal(put.status, 200, `PUT auto-recharge → ${put.status} ${put.text}`);
  assert.equal(put.body.enabled, true);
  return account;
}

describe("auto-recharge settings", () => {
  test("GET /v1/account/auto-recharge has the documented fields", async () => {
    const account = await createAccount(stack);
    const s = await settingsOf(account.api_key);
    assert.equal(s.enabled, false);
    assert.ok(
      s.package === null || ["credits_1000", "credits_3000", "credits_9000"].includes(s.package),
      s.package,
    );
    assert.equal(s.threshold, 100);
    assert.equal(s.pending, false);
    assert.equal(s.last_failure, null);
    assert.deepEqual(
      (await balanceOf(stack, account.api_key)).auto_recharge,
      s,
      "the balance embeds the same settings",
    );
  });

  test("auto-recharge settings carry paused: null when not paused", async () => {
    const account = await createAccount(stack);
    const s = await settingsOf(account.api_key);
    assert.ok("paused" in s && s.paused === null, `paused: ${JSON.stringify(s)}`);
  });

  test("enabling with no payment method on file is 409 payment_method_required", async () => {
    const account = await createAccount(stack);
    expectError(
      await putSettings(account.api_key, { enabled: true }),
      409,
      "payment_method_required",
    );
    assert.equal((await settingsOf(account.api_key)).enabled, false);
  });

  test("an unknown package is 400 invalid_request naming package", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    const error = expectError(
      await putSettings(account.api_key, { enabled: true, package: "credits_5" }),
      400,
      "invalid_request",
    );
    assert.ok(fieldNames(error).includes("package"), JSON.stringify(error));
  });

  test("PUT returns the settings; a package can be changed", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    const res = await putSettings(account.api_key, { enabled: true, package: "credits_3000" });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.enabled, true);
    assert.equal(res.body.package, "credits_3000");
    assert.equal(res.body.threshold, 100);
    const off = await putSettings(account.api_key, { enabled: false });
    assert.equal(off.status, 200);
    assert.equal(off.body.enabled, false);
  });
});

describe("when auto-recharge triggers (product doc scenarios)", () => {
  test("scenario 1: monthly 0 + purchased 100 = 100 → recharges 1,000 purchased credits within seconds", async () => {
    const account = await armedAccount({ monthly: 0, purchased: 100 });
    const n0 = (await emailsOf(stack, account.id)).length;
    const res = await classify(stack, account.api_key);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-credits-remaining"), "100");
    const b = await waitFor(async () => {
      const x = await balanceOf(stack, account.api_key);
      return x.purchased === 1100 && x;
    }, "1,000 purchased credits after the balance reached 100");
    assert.equal(b.monthly, 0);
    const t = (await transactionsOf(account.api_key)).find((x) => x.type === "auto_recharge");
    assert.ok(t, "an auto_recharge transaction");
    assert.deepEqual(
      [t.status, t.credits, t.amount_cents, t.currency],
      ["succeeded", 1000, 700, "usd"],
    );
    await waitFor(
      async () => (await emailsOf(stack, account.id)).length > n0,
      "a confirmation email",
    );
    await waitFor(
      async () => (await settingsOf(account.api_key)).pending === false,
      "pending false again",
    );
  });

  test("scenario 2: monthly 50 + purchased 40 = 90 → recharges", async () => {
    const account = await armedAccount({ monthly: 50, purchased: 40 });
    assert.equal((await classify(stack, account.api_key)).status, 200);
    const b = await waitFor(async () => {
      const x = await balanceOf(stack, account.api_key);
      return x.purchased === 1040 && x;
    }, "1,000 purchased credits after the balance reached 90");
    assert.equal(b.monthly, 50);
  });

  test("scenario 3: monthly 500 + purchased 100 = 600 → does not recharge", async () => {
    const account = await armedAccount({ monthly: 500, purchased: 100 });
    assert.equal((await classify(stack, account.api_key)).status, 200);
    assert.equal((await settingsOf(account.api_key)).pending, false);
    await purchaseBarrier(account.api_key);
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual([b.monthly, b.purchased], [500, 1100], "only the barrier's 1,000 bought");
    assert.ok(!(await transactionsOf(account.api_key)).some((t) => t.type === "auto_recharge"));
  });

  test("enabling while the total is already at or below the threshold starts a recharge at once", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    await setBalance(stack, account, { monthly: 30, purchased: 0 });
    const res = await putSettings(account.api_key, { enabled: true, package: "credits_1000" });
    assert.equal(res.status, 200, res.text);
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 1000,
      "a recharge right after enabling",
    );
  });

  test("turned off: reaching the threshold buys nothing", async () => {
    const account = await armedAccount({ monthly: 0, purchased: 100 });
    const off = await putSettings(account.api_key, { enabled: false });
    assert.equal(off.status, 200);
    assert.equal(off.body.enabled, false);
    assert.equal((await classify(stack, account.api_key)).status, 200);
    await purchaseBarrier(account.api_key);
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual(
      [b.monthly, b.purchased],
      [0, 1100],
      "existing purchased credits remain, nothing bought but the barrier's 1,000",
    );
    assert.ok(!(await transactionsOf(account.api_key)).some((t) => t.type === "auto_recharge"));
  });
});

describe("a card the bank declines when it is saved", () => {
  test("attaching it is 400 invalid_request naming payment_method; the card on file stays", async () => {
    const account = await armedAccount({ monthly: 500, purchased: 0 });
    const before = await admin(stack, `/accounts/${account.id}`);
    assert.equal(before.status, 200, before.text);
    for (const pm of [
      "pm_card_chargeDeclined",
      "pm_card_chargeDeclinedInsufficientFunds",
      "pm_card_chargeDeclinedExpiredCard",
    ]) {
      const res = await admin(stack, `/accounts/${account.id}/payment-method`, {
        body: { payment_method: pm },
      });
      const error = expectError(res, 400, "invalid_request", pm);
      assert.ok(fieldNames(error).includes("payment_method"), JSON.stringify(error));
    }
    const after = await admin(stack, `/accounts/${account.id}`);
    assert.equal(after.body.payment_method_id, before.body.payment_method_id);
    assert.deepEqual(after.body.payment_method, before.body.payment_method);
    const s = await settingsOf(account.api_key);
    assert.equal(s.enabled, true);
    assert.equal(s.last_failure, null);
  });
});

describe("a failed automatic payment", () => {
  test("a declined card adds nothing, turns auto-recharge off, records last_failure and emails", async () => {
    const account = await armedAccount(
      { monthly: 0, purchased: 100 },
      "pm_card_chargeCustomerFail",
    );
    const n0 = (await emailsOf(stack, account.id)).length;
    assert.equal((await classify(stack, account.api_key)).status, 200);
    const s = await waitFor(async () => {
      const x = await settingsOf(account.api_key);
      return x.last_failure && x;
    }, "last_failure recorded after the declined payment");
    const f = s.last_failure;
    assert.ok(isRfc3339Utc(f.at), `last_failure.at: ${f.at}`);
    assert.equal(typeof f.code, "string");
    assert.equal(typeof f.message, "string");
    await waitFor(
      async () => (await settingsOf(account.api_key)).enabled === false,
      "auto-recharge turned off",
    );
    assert.equal((await settingsOf(account.api_key)).pending, false);
    await waitFor(async () => (await emailsOf(stack, account.id)).length > n0, "a failure email");
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual([b.monthly, b.purchased], [0, 100], "nothing added");
    const t = (await transactionsOf(account.api_key)).find((x) => x.type === "auto_recharge");
    assert.ok(t, "the failed purchase is in the history");
    assert.equal(t.status, "failed");
    assert.equal(typeof t.failure_code, "string");
  });

  test("last_failure carries action_url (null or a URL)", async () => {
    const account = await armedAccount(
      { monthly: 0, purchased: 100 },
      "pm_card_chargeCustomerFail",
    );
    assert.equal((await classify(stack, account.api_key)).status, 200);
    const f = (
      await waitFor(async () => {
        const x = await settingsOf(account.api_key);
        return x.last_failure && x;
      }, "last_failure recorded after the declined payment")
    ).last_failure;
    assert.ok("action_url" in f, `last_failure.action_url missing: ${JSON.stringify(f)}`);
    assert.ok(
      f.action_url === null || /^https?:\/\//.test(f.action_url),
      `action_url: ${f.action_url}`,
    );
  });
});

describe("top-ups", () => {
  test("POST /v1/account/top-ups → 202 {id, status}; the credits arrive within seconds", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    const before = await balanceOf(stack, account.api_key);
    const res = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(res.status, 202, res.text);
    assert.equal(typeof res.body.id, "string");
    assert.ok(
      ["pending", "requires_action", "succeeded", "failed"].includes(res.body.status),
      res.body.status,
    );
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === before.purchased + 1000,
      "1,000 purchased credits",
    );
    const t = await waitFor(
      async () =>
        (await transactionsOf(account.api_key)).find(
          (x) => x.type === "top_up" && x.status === "succeeded",
        ),
      "a succeeded top_up transaction",
    );
    assert.deepEqual([t.credits, t.amount_cents, t.currency], [1000, 700, "usd"]);
  });

  test("without a payment method: 409 payment_method_required; unknown package: 400", async () => {
    const account = await createAccount(stack);
    expectError(
      await call(stack, "/v1/account/top-ups", {
        key: account.api_key,
        body: { package: "credits_1000" },
      }),
      409,
      "payment_method_required",
    );
    await attachPaymentMethod(stack, account.id);
    const err = expectError(
      await call(stack, "/v1/account/top-ups", {
        key: account.api_key,
        body: { package: "credits_2" },
      }),
      400,
      "invalid_request",
    );
    assert.ok(fieldNames(err).includes("package"));
  });

  test("a replay with the same Idempotency-Key answers the purchase's current status, buys once", async () => {
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    const headers = { "Idempotency-Key": `acc-${Date.now()}-${Math.random()}` };
    const first = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
      headers,
    });
    assert.equal(first.status, 202, first.text);
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 1000,
      "the top-up's credits",
    );
    await waitFor(
      async () =>
        (await transactionsOf(account.api_key)).some(
          (x) => x.type === "top_up" && x.status === "succeeded",
        ),
      "the purchase succeeded",
    );
    const replay = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
      headers,
    });
    assert.equal(replay.status, 202, replay.text);
    assert.equal(replay.body.id, first.body.id, "the same purchase");
    assert.equal(
      replay.body.status,
      "succeeded",
      `the replay answers the current status, got ${replay.body.status}`,
    );
    const barrier = await purchaseBarrier(account.api_key);
    assert.equal(
      (await balanceOf(stack, account.api_key)).purchased,
      2000,
      "bought once (plus the barrier)",
    );
    assert.deepEqual(
      (await transactionsOf(account.api_key))
        .filter((x) => x.type === "top_up")
        .map((x) => x.id)
        .sort(),
      [first.body.id, barrier].sort(),
    );
  });
});

describe("monthly spending limit and purchases", () => {
  test("a top-up that would take the month's purchases over the limit is 409 spending_limit_reached (pending included)", async () => {
    await awayFromTurnOf("month"); // the limit counts one calendar month
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    await putLimit(account, 1000);
    const first = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(first.status, 202, first.text);
    const second = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    expectError(
      second,
      409,
      "spending_limit_reached",
      "700 + 700 cents against a 1,000 cent limit",
    );
    await waitFor(
      async () => (await balanceOf(stack, account.api_key)).purchased === 1000,
      "the first top-up's credits",
    );
    // The barrier needs room under the limit; the refused second top-up was answered already.
    await putLimit(account, null);
    const barrier = await purchaseBarrier(account.api_key);
    assert.equal(
      (await balanceOf(stack, account.api_key)).purchased,
      2000,
      "only the first was bought (plus the barrier)",
    );
    assert.deepEqual(
      (await transactionsOf(account.api_key))
        .filter((x) => x.type === "top_up")
        .map((x) => x.id)
        .sort(),
      [first.body.id, barrier].sort(),
    );
  });

  test("spent_this_month_cents counts purchases; a purchase up to exactly the limit is allowed", async () => {
    await awayFromTurnOf("month"); // the limit counts one calendar month
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    await putLimit(account, 700);
    const res = await call(stack, "/v1/account/top-ups", {
      key: account.api_key,
      body: { package: "credits_1000" },
    });
    assert.equal(res.status, 202, res.text);
    await waitFor(
      async () =>
        (await call(stack, "/v1/account/limits", { key: account.api_key })).body
          ?.spent_this_month_cents === 700,
      "spent_this_month_cents 700",
    );
    expectError(
      await call(stack, "/v1/account/top-ups", {
        key: account.api_key,
        body: { package: "credits_1000" },
      }),
      409,
      "spending_limit_reached",
    );
  });

  test('an auto-recharge over the limit does not start: paused "spending_limit_reached" until the limit is raised', async () => {
    await awayFromTurnOf("month"); // the limit counts one calendar month
    const account = await createAccount(stack);
    await attachPaymentMethod(stack, account.id);
    await putLimit(account, 500);
    await setBalance(stack, account, { monthly: 1, purchased: 100 });
    const put = await putSettings(account.api_key, { enabled: true, package: "credits_1000" });
    assert.equal(put.status, 200, put.text);
    assert.equal((await classify(stack, account.api_key)).status, 200);
    await waitFor(
      async () => (await settingsOf(account.api_key)).paused === "spending_limit_reached",
      'paused: "spending_limit_reached"',
    );
    // No sleep: "paused" is the trigger's other outcome (the contract: the recharge "does not
    // start and the settings show paused"), so once it shows, the trigger has been decided, and
    // a recharge it had started anyway would show as `pending` and in the transactions now. No
    // later purchase can serve as a barrier: the limit refuses them all while paused.
    const b = await balanceOf(stack, account.api_key);
    assert.deepEqual([b.monthly, b.purchased], [0, 100], "no recharge started");
    assert.equal((await settingsOf(account.api_key)).pending, false);
    assert.ok(!(await transactionsOf(account.api_key)).some((t) => t.type === "auto_recharge"));
    await putLimit(account, null);
    await waitFor(
      async () => (await settingsOf(account.api_key)).paused === null,
      "paused clears once the limit is raised",
    );
  });
});
