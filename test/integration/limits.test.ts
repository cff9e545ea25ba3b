import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import {
  admin,
  BASE,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { signIn } from "../helpers/page";
import { attachCard, eventually } from "../helpers/stripe";

const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };
const sessions = new Map<string, string>();

/** The account owner's session (signed in once per account): a person may raise the limit. */
async function ownerSession(account: TestAccount): Promise<string> {
  let cookie = sessions.get(account.id);
  if (!cookie) {
    cookie = await signIn(account);
    sessions.set(account.id, cookie);
  }
  return cookie;
}

interface Limits {
  monthly_spend_limit_cents: number | null;
  spent_this_month_cents: number;
  period_ends_at: string;
}

async function limitsOf(account: TestAccount) {
  const res = await gateway("/v1/account/limits", { key: account.api_key });
  expect(res.status).toBe(200);
  return json<Limits>(res);
}

/** Sets the limit as its owner does, signed in (no API key raises it: money rule 11). */
async function setLimit(account: TestAccount, cents: number | null) {
  const res = await gateway("/v1/account/limits", {
    method: "PUT",
    headers: { ...SAME_ORIGIN, Cookie: await ownerSession(account) },
    body: JSON.stringify({ monthly_spend_limit_cents: cents }),
  });
  expect(res.status).toBe(200);
  return json<Limits>(res);
}

function topUp(account: TestAccount, pkg = "credits_1000", idempotencyKey?: string) {
  return gateway("/v1/account/top-ups", {
    method: "POST",
    key: account.api_key,
    body: JSON.stringify({ package: pkg }),
    headers: idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {},
  });
}

async function autoRecharge(account: TestAccount) {
  return json<{ enabled: boolean; pending: boolean; paused: string | null }>(
    await gateway("/v1/account/auto-recharge", { key: account.api_key }),
  );
}

afterEach(() => vi.restoreAllMocks());

describe("monthly spending limit (money rule 10)", () => {
  it("new accounts start at 20,000 cents, nothing spent, the period ending at the next UTC month", async () => {
    const account = await createAccount();
    const limits = await limitsOf(account);
    const now = new Date();
    const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    expect(limits).toEqual({
      monthly_spend_limit_cents: 20_000,
      spent_this_month_cents: 0,
      period_ends_at: next.toISOString(),
    });
  });

  it("twenty $37 top-ups at once: five fit under $200, fifteen are 409 spending_limit_reached", async () => {
    const account = await createAccount();
    await attachCard(account);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => topUp(account, "credits_9000")),
    );
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 409);
    await Promise.all(accepted.map((r) => r.arrayBuffer()));
    expect(accepted).toHaveLength(5);
    expect(refused).toHaveLength(15);
    await expectError(refused[0] as Response, 409, "spending_limit_reached");
    await Promise.all(refused.slice(1).map((r) => r.arrayBuffer()));
    expect((await limitsOf(account)).spent_this_month_cents).toBe(5 * 3_700);
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(45_000));
  });

  it("pending purchases count: a second top-up while the first is in flight is refused", async () => {
    const account = await createAccount();
    await attachCard(account);
    await setLimit(account, 1_000);
    // The first purchase is never delivered to the consumer: it stays pending.
    // The test's queue binding is the very object the ledger sends through (one isolate).
    vi.spyOn(env.RECHARGE_QUEUE, "send").mockResolvedValue(undefined as never);
    const first = await topUp(account);
    expect(first.status).toBe(202);
    await first.arrayBuffer();
    await expectError(await topUp(account), 409, "spending_limit_reached");
    expect((await limitsOf(account)).spent_this_month_cents).toBe(700);
  });

  it("an API key may lower the limit but never raise or remove it: 403 session_required", async () => {
    const account = await createAccount();
    const byKey = (cents: number | null) =>
      gateway("/v1/account/limits", {
        method: "PUT",
        key: account.api_key,
        body: JSON.stringify({ monthly_spend_limit_cents: cents }),
      });
    const lowered = await byKey(5_000);
    expect(lowered.status).toBe(200);
    expect((await json<Limits>(lowered)).monthly_spend_limit_cents).toBe(5_000);
    const same = await byKey(5_000);
    expect(same.status).toBe(200);
    await same.arrayBuffer();
    for (const cents of [5_001, 20_000, null]) {
      await expectError(await byKey(cents), 403, "session_required");
    }
    expect((await limitsOf(account)).monthly_spend_limit_cents).toBe(5_000);
    // A person (the owner) raises it; then a key still cannot remove it.
    expect((await setLimit(account, 30_000)).monthly_spend_limit_cents).toBe(30_000);
    await expectError(await byKey(null), 403, "session_required");
    // With no limit at all, any limit a key sets lowers it.
    await setLimit(account, null);
    const capped = await byKey(100_000);
    expect(capped.status).toBe(200);
    await capped.arrayBuffer();
  });

  it("a null limit means no limit", async () => {
    const account = await createAccount();
    await attachCard(account);
    expect((await setLimit(account, null)).monthly_spend_limit_cents).toBeNull();
    await setLimit(account, null);
    const res = await topUp(account, "credits_9000");
    expect(res.status).toBe(202);
    await res.arrayBuffer();
  });

  it("a negative or fractional limit is a 400 naming the field", async () => {
    const account = await createAccount();
    for (const value of [-1, 1.5, "100"]) {
      const res = await gateway("/v1/account/limits", {
        method: "PUT",
        key: account.api_key,
        body: JSON.stringify({ monthly_spend_limit_cents: value }),
      });
      const body = await expectError(res, 400, "invalid_request");
      expect(body.error.fields?.map((f) => f.field)).toEqual(["monthly_spend_limit_cents"]);
    }
  });

  it("auto-recharge does not start over the limit, says it is paused, emails once, and resumes when the limit is raised", async () => {
    const account = await createAccount();
    await attachCard(account);
    await setLimit(account, 1_000);
    await setBalance(account, { monthly: 300, purchased: 0 });
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true, package: "credits_1000" }),
    });
    expect(on.status).toBe(200);
    await on.arrayBuffer();
    // First trigger: $7 of $10 — allowed.
    await setBalance(account, { monthly: 100, purchased: 0 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_000));
    // Second trigger: would take the month to $14 — paused instead.
    await setBalance(account, { monthly: 0, purchased: 100 });
    await (await classify(account)).arrayBuffer();
    await (await classify(account)).arrayBuffer();
    expect(await autoRecharge(account)).toMatchObject({
      enabled: true,
      pending: false,
      paused: "spending_limit_reached",
    });
    expect((await limitsOf(account)).spent_this_month_cents).toBe(700);
    await eventually(async () => {
      const kinds = (
        await json<{ data: Array<{ kind: string }> }>(await admin(`/accounts/${account.id}/emails`))
      ).data.map((e) => e.kind);
      expect(kinds.filter((k) => k === "auto_recharge_paused")).toHaveLength(1);
    });
    // Raising the limit resumes it at once: the balance is still at the threshold.
    await setLimit(account, 2_000);
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_098));
    expect((await autoRecharge(account)).paused).toBeNull();
  });

  it("a pause ends by itself when the calendar month turns", async () => {
    const account = await createAccount();
    await attachCard(account);
    await setLimit(account, 700);
    await setBalance(account, { monthly: 300, purchased: 0 });
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true, package: "credits_1000" }),
    });
    await on.arrayBuffer();
    await setBalance(account, { monthly: 100, purchased: 0 });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_000));
    await setBalance(account, { monthly: 0, purchased: 100 });
    expect((await autoRecharge(account)).paused).toBe("spending_limit_reached");
    // Move this month's purchase and the pause into last month, as if the month had turned.
    await runInDurableObject(ledgerFor(env, account.id), (_i, state) => {
      const lastMonth = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() - 1, 15);
      state.storage.sql.exec("UPDATE recharges SET created_at = ?", lastMonth);
      state.storage.sql.exec("UPDATE state SET paused_period = ? WHERE id = 1", lastMonth);
    });
    await (await classify(account)).arrayBuffer();
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_099));
    expect((await autoRecharge(account)).paused).toBeNull();
  });

  it("operators can set the limit with PATCH /admin/accounts/:id", async () => {
    const account = await createAccount();
    const res = await admin(`/accounts/${account.id}`, {
      method: "PATCH",
      body: JSON.stringify({ monthly_spend_limit_cents: 5_000 }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect((await limitsOf(account)).monthly_spend_limit_cents).toBe(5_000);
  });
});

describe("rate limits per account", () => {
  it("all the account's keys share one limit: three keys on a free account serve 60 a minute, not 180", async () => {
    const account = await createAccount();
    const keys = [account.api_key];
    for (let i = 0; i < 2; i++) {
      const res = await gateway("/v1/account/keys", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({}),
      });
      keys.push((await json<{ key: string }>(res)).key);
    }
    // 185 requests at once span at most two one-minute windows: per account that serves at
    // most 120; per key it would serve 180 or more.
    const results = await Promise.all(
      Array.from({ length: 185 }, (_, i) => gateway("/v1/categories", { key: keys[i % 3] })),
    );
    const served = results.filter((r) => r.status === 200).length;
    expect(served).toBeGreaterThanOrEqual(60);
    expect(served).toBeLessThanOrEqual(120);
    expect(results[0]?.headers.get("RateLimit-Policy")).toBe('"per-account";q=60;w=60');
    await Promise.all(results.map((r) => r.arrayBuffer()));
  });

  it("an operator override replaces the plan's limit, and null goes back to it", async () => {
    const account = await createAccount();
    const patch = await admin(`/accounts/${account.id}`, {
      method: "PATCH",
      body: JSON.stringify({ rate_limit_per_minute: 3 }),
    });
    expect(patch.status).toBe(200);
    const body = await json<{ rate_limit_per_minute: number }>(patch);
    expect(body.rate_limit_per_minute).toBe(3);
    // Seven requests span at most two windows: at most six are served, and at least one is not.
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await gateway("/v1/categories", { key: account.api_key });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(3);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(6);
    expect(statuses).toContain(429);
    const reset = await admin(`/accounts/${account.id}`, {
      method: "PATCH",
      body: JSON.stringify({ rate_limit_per_minute: null }),
    });
    expect((await json<{ rate_limit_per_minute: number }>(reset)).rate_limit_per_minute).toBe(60);
    const after = await gateway("/v1/categories", { key: account.api_key });
    expect(after.status).toBe(200);
    await after.arrayBuffer();
  });

  it("GET /admin/accounts/:id shows the limits and the rate limit", async () => {
    const account = await createAccount();
    const res = await admin(`/accounts/${account.id}`);
    const body = await json<Record<string, unknown>>(res);
    expect(body).toMatchObject({
      id: account.id,
      rate_limit_per_minute: 60,
      limits: { monthly_spend_limit_cents: 20_000, spent_this_month_cents: 0 },
    });
  });
});
