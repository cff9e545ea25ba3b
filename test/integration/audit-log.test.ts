/**
 * The audit log (money rule 12, issue 20): every change a person, a key, an operator or the
 * system makes to an account is an entry naming who made it, read through
 * `GET /v1/account/audit-log` (and every operator action through `GET /admin/audit-log`).
 * Each change here is made through its real route; a refused change and a proxied request
 * leave no entry.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { stripeFor } from "../../src/stripe/client";
import {
  admin,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { billingHtml, follow, page, signIn, tokenFor } from "../helpers/page";
import { attachCard, deliverSigned, eventsFor, eventually } from "../helpers/stripe";

interface Entry {
  id: string;
  at: string;
  actor: { type: string; id: string; label: string };
  action: string;
  details: Record<string, unknown>;
  account_id?: string | null;
}

interface Page {
  data: Entry[];
  next_cursor: string | null;
}

afterEach(() => vi.restoreAllMocks());

async function logPage(key: string, query = ""): Promise<Page> {
  const res = await gateway(`/v1/account/audit-log${query}`, { key });
  expect(res.status).toBe(200);
  return json<Page>(res);
}

/** Every entry of the account, newest first. */
async function entries(account: TestAccount): Promise<Entry[]> {
  return (await logPage(account.api_key, "?limit=100")).data;
}

async function actions(account: TestAccount): Promise<string[]> {
  return (await entries(account)).map((e) => e.action);
}

/** The account's first key (its `full` key): id and the label the log names it by. */
async function firstKey(account: TestAccount) {
  const res = await gateway("/v1/account/keys", { key: account.api_key });
  const { data } = await json<{ data: Array<{ id: string; prefix: string; last4: string }> }>(res);
  const key = data[data.length - 1];
  if (!key) throw new Error("no key");
  return { id: key.id, label: `${key.prefix}…${key.last4}` };
}

async function call(account: TestAccount, path: string, method: string, body?: unknown) {
  const res = await gateway(path, {
    method,
    key: account.api_key,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res;
}

async function expectOk(res: Response, status = 200) {
  if (res.status !== status) expect(res.status, await res.text()).toBe(status);
  await res.arrayBuffer();
}

async function auditRowCount(): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM audit_log").first<{ n: number }>();
  return row?.n ?? 0;
}

describe("what keys change is logged with the key as actor", () => {
  it("a key created and revoked through the API", async () => {
    const account = await createAccount();
    const me = await firstKey(account);
    const created = await call(account, "/v1/account/keys", "POST", { name: "ci" });
    expect(created.status).toBe(201);
    const key = await json<{ id: string; prefix: string; last4: string }>(created);
    await expectOk(await call(account, `/v1/account/keys/${key.id}`, "DELETE"));

    const [revoked, made] = await entries(account);
    const actor = { type: "api_key", id: me.id, label: me.label };
    expect(made).toMatchObject({
      action: "key.created",
      actor,
      details: { key_id: key.id, name: "ci", scope: "classify", last4: key.last4 },
    });
    expect(revoked).toMatchObject({
      action: "key.revoked",
      actor,
      details: { key_id: key.id, scope: "classify" },
    });
    expect(Date.parse(revoked?.at ?? "")).toBeGreaterThanOrEqual(Date.parse(made?.at ?? ""));
  });

  it("settings, limits, alerts, purchases and Stripe sessions started through the API", async () => {
    const account = await createAccount();
    await attachCard(account);
    const me = await firstKey(account);
    await expectOk(
      await call(account, "/v1/account/auto-recharge", "PUT", {
        enabled: true,
        package: "credits_3000",
      }),
    );
    await expectOk(
      await call(account, "/v1/account/limits", "PUT", { monthly_spend_limit_cents: 5_000 }),
    );
    await expectOk(await call(account, "/v1/account/alerts", "PUT", { low_balance_credits: 250 }));
    const topUp = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      headers: { "Idempotency-Key": "audit-top-up" },
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(topUp.status).toBe(202);
    const purchase = await json<{ id: string }>(topUp);
    // A replay of the same top-up is the same purchase: no second entry.
    const replay = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      headers: { "Idempotency-Key": "audit-top-up" },
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(replay.status).toBe(202);
    await replay.arrayBuffer();
    // Twice with one Idempotency-Key: one Stripe session, one entry.
    for (let i = 0; i < 2; i++) {
      await expectOk(
        await gateway("/v1/account/checkout", {
          method: "POST",
          key: account.api_key,
          headers: { "Idempotency-Key": "audit-checkout" },
          body: JSON.stringify({ plan: "starter" }),
        }),
      );
    }
    await expectOk(await call(account, "/v1/account/payment-method/setup", "POST", {}));
    await expectOk(await call(account, "/v1/account/billing-portal", "POST", {}));

    const log = await entries(account);
    const byKey = log.filter((e) => e.actor.type === "api_key");
    expect(byKey.map((e) => e.action)).toEqual([
      "billing_portal.started",
      "card_setup.started",
      "checkout.started",
      "top_up.started",
      "alerts.updated",
      "limits.updated",
      "auto_recharge.updated",
    ]);
    for (const e of byKey) expect(e.actor).toEqual({ type: "api_key", id: me.id, label: me.label });
    const get = (action: string) => byKey.find((e) => e.action === action)?.details;
    expect(get("auto_recharge.updated")).toEqual({ enabled: true, package: "credits_3000" });
    expect(get("limits.updated")).toEqual({ monthly_spend_limit_cents: 5_000 });
    expect(get("alerts.updated")).toEqual({ low_balance_credits: 250 });
    expect(get("top_up.started")).toEqual({
      purchase_id: purchase.id,
      package: "credits_1000",
      credits: 1_000,
      amount_cents: 700,
    });
    expect(get("checkout.started")).toEqual({ plan: "starter" });
  });

  it("a classify key reads the log (it is a GET) but changes nothing, so adds nothing", async () => {
    const account = await createAccount();
    const res = await call(account, "/v1/account/keys", "POST", { name: "reader" });
    const reader = await json<{ key: string }>(res);
    const before = await actions(account);
    await expectError(
      await gateway("/v1/account/limits", {
        method: "PUT",
        key: reader.key,
        body: JSON.stringify({ monthly_spend_limit_cents: 1 }),
      }),
      403,
      "insufficient_scope",
    );
    const read = await logPage(reader.key);
    expect(read.data.map((e) => e.action)).toEqual(before);
  });
});

describe("what a person changes on the Billing page is logged with the session's actor", () => {
  it("auto-recharge, spending limit, alert and keys from the page's forms", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const post = async (action: string, fields: Record<string, string>) => {
      const html = await billingHtml(cookie);
      const res = await page(action, {
        cookie,
        form: { ...fields, csrf: tokenFor(html, action) },
      });
      await follow(res, cookie);
    };
    await post("/account/billing/auto-recharge", { package: "credits_9000" });
    await post("/account/billing/limits", { limit: "75" });
    await post("/account/billing/alerts", { low_balance_credits: "" });
    await post("/account/billing/keys", { name: "from the page", scope: "classify" });

    const log = (await entries(account)).filter((e) => e.actor.type !== "operator");
    expect(log.map((e) => [e.action, e.details])).toEqual([
      ["key.created", expect.objectContaining({ name: "from the page", scope: "classify" })],
      ["alerts.updated", { low_balance_credits: null }],
      ["limits.updated", { monthly_spend_limit_cents: 7_500 }],
      ["auto_recharge.updated", { enabled: false, package: "credits_9000" }],
      ["person.signed_in", {}],
    ]);
    // The session names the person signed in (the account's email is its first owner).
    for (const e of log) {
      expect(e.actor).toEqual({
        type: "person",
        id: expect.stringMatching(/^mem_/),
        label: account.email,
      });
    }
  });

  it("the page's Activity section lists the entries and pages through them", async () => {
    const account = await createAccount();
    for (let level = 1; level <= 10; level++) {
      await expectOk(
        await call(account, "/v1/account/alerts", "PUT", { low_balance_credits: level * 100 }),
      );
    }
    const cookie = await signIn(account);
    const html = await billingHtml(cookie);
    expect(html).toContain('<h2 id="activity-h">Activity</h2>');
    const rows = (h: string) => [...h.matchAll(/<tr data-action="([a-z_.]+)">/g)].map((m) => m[1]);
    // The newest ten: the sign-in and nine of ten alert changes; the first alert change and the
    // operator's account creation on the next page.
    expect(rows(html)).toEqual(["person.signed_in", ...Array(9).fill("alerts.updated")]);
    expect(html).toContain("at 1,000 credits or below");
    const older = /href="(\/account\/billing\?activity=[^"#]+)#activity"/.exec(html)?.[1];
    expect(older, "an Older changes link").toBeDefined();
    const next = await page((older as string).replaceAll("&amp;", "&"), { cookie });
    expect(next.status).toBe(200);
    const nextHtml = await next.text();
    expect(rows(nextHtml)).toEqual(["alerts.updated", "account.created"]);
    expect(nextHtml).toContain("at 100 credits or below");
    expect(nextHtml).toContain("operator admin token");
    expect(nextHtml).toContain('href="/account/billing#activity"');
    expect(nextHtml).not.toContain("?activity=");
  });
});

describe("operators", () => {
  it("account creation, credit adjustments with their reason, overrides and a card attached", async () => {
    const account = await createAccount();
    const adjust = () =>
      admin(`/accounts/${account.id}/credits`, {
        method: "POST",
        headers: { "Idempotency-Key": "goodwill-1" },
        body: JSON.stringify({ monthly: -10, purchased: 25, reason: "goodwill for the outage" }),
      });
    await expectOk(await adjust());
    // The same adjustment replayed: applied once, logged once.
    await expectOk(await adjust());
    await expectOk(
      await admin(`/accounts/${account.id}`, {
        method: "PATCH",
        body: JSON.stringify({ rate_limit_per_minute: 42 }),
      }),
    );
    await attachCard(account);

    const operator = { type: "operator", id: "admin_token", label: "admin token" };
    const log = await entries(account);
    expect(log.map((e) => e.action)).toEqual([
      "payment_method.attached",
      "limits.updated",
      "credits.adjusted",
      "account.created",
    ]);
    for (const e of log) expect(e.actor).toEqual(operator);
    expect(log[1]?.details).toEqual({ rate_limit_per_minute: 42 });
    expect(log[2]?.details).toMatchObject({
      monthly: -10,
      purchased: 25,
      reason: "goodwill for the outage",
    });
    expect(log[3]?.details).toMatchObject({ plan: "free", complimentary: false });
  });

  it("GET /admin/audit-log lists every operator action, newest first, with its account", async () => {
    const a = await createAccount();
    const b = await createAccount();
    await setBalance(b, { monthly: 5, purchased: 0 });
    await expectOk(await admin("/reconcile", { method: "POST" }));
    // A customer's own change is not an operator action.
    await expectOk(await call(a, "/v1/account/alerts", "PUT", { low_balance_credits: 1 }));

    const res = await admin("/audit-log?limit=3");
    expect(res.status).toBe(200);
    const body = await json<Page>(res);
    expect(body.data.map((e) => [e.action, e.account_id])).toEqual([
      ["reconcile.ran", null],
      ["credits.adjusted", b.id],
      ["account.created", b.id],
    ]);
    expect(body.data.every((e) => e.actor.type === "operator")).toBe(true);
    expect(body.next_cursor).not.toBeNull();
    const more = await json<Page>(
      await admin(`/audit-log?limit=1&cursor=${body.next_cursor as string}`),
    );
    expect(more.data.map((e) => [e.action, e.account_id])).toEqual([["account.created", a.id]]);
    await expectError(await gateway("/admin/audit-log"), 401, "invalid_api_key");
  });
});

/** Delivers, signed and oldest first, every event the local Stripe server emitted for them. */
async function deliverAll(customer: string) {
  for (const e of await eventsFor(customer)) {
    const res = await deliverSigned(e);
    expect(res.status, e.type).toBe(200);
    await res.arrayBuffer();
  }
}

describe("the system's changes", () => {
  it("plan changes from Stripe's events name Stripe, once each however they are delivered", async () => {
    const account = await createAccount();
    const customer = account.stripe_customer_id as string;
    await attachCard(account);
    const stripe = stripeFor(env);
    const sub = await stripe.subscriptions.create({
      customer,
      items: [{ price: env.STRIPE_PRICE_STARTER as string }],
    });
    await deliverAll(customer);
    await stripe.subscriptions.update(sub.id, {
      items: [{ id: sub.items.data[0]?.id as string, price: env.STRIPE_PRICE_PRO as string }],
      proration_behavior: "always_invoice",
    });
    // Every event again, the old ones included (a redelivery is answered as a duplicate, and
    // an older event than the plan shown changes nothing).
    await deliverAll(customer);
    const changes = (await entries(account)).filter((e) => e.action === "plan.changed");
    expect(changes.map((e) => [e.details.from, e.details.to])).toEqual([
      ["starter", "pro"],
      ["free", "starter"],
    ]);
    for (const e of changes) {
      expect(e.actor).toEqual({ type: "system", id: "stripe", label: "Stripe" });
      expect(String(e.details.event)).toMatch(/^evt_/);
    }
  });

  it("auto-recharge turned off by a declined payment names the system", async () => {
    const account = await createAccount();
    await attachCard(account, "pm_card_chargeCustomerFail");
    await setBalance(account, { monthly: 400, purchased: 0 });
    await expectOk(
      await call(account, "/v1/account/auto-recharge", "PUT", {
        enabled: true,
        package: "credits_1000",
      }),
    );
    await setBalance(account, { monthly: 0, purchased: 3 });
    const entry = await eventually(async () => {
      const found = (await entries(account)).find((e) => e.action === "auto_recharge.disabled");
      expect(found).toBeDefined();
      return found as Entry;
    });
    expect(entry.actor).toEqual({ type: "system", id: "system", label: "Tollgate" });
    expect(entry.details).toMatchObject({ kind: "auto_recharge", reason: "card_declined" });
  });
});

describe("refused changes and the proxied path write nothing", () => {
  it("a 409 (the last full key, a card missing, an adjustment below zero) adds no entry", async () => {
    const account = await createAccount();
    const me = await firstKey(account);
    const before = await entries(account);
    await expectError(await call(account, `/v1/account/keys/${me.id}`, "DELETE"), 409, "conflict");
    await expectError(
      await call(account, "/v1/account/auto-recharge", "PUT", { enabled: true }),
      409,
      "payment_method_required",
    );
    await expectError(
      await admin(`/accounts/${account.id}/credits`, {
        method: "POST",
        body: JSON.stringify({ monthly: -1_000_000, reason: "too much" }),
      }),
      409,
      "insufficient_credits",
    );
    await expectError(
      await call(account, "/v1/account/top-ups", "POST", { package: "credits_1000" }),
      409,
      "payment_method_required",
    );
    expect(await entries(account)).toEqual(before);
  });

  it("a proxied request writes no audit row", async () => {
    const account = await createAccount();
    const before = await auditRowCount();
    for (let i = 0; i < 3; i++) expect((await classify(account)).status).toBe(200);
    expect(await auditRowCount()).toBe(before);
  });
});

describe("reading the log", () => {
  it("pages newest first with the opaque cursor, every entry once", async () => {
    const account = await createAccount();
    for (let level = 1; level <= 4; level++) {
      await expectOk(
        await call(account, "/v1/account/alerts", "PUT", { low_balance_credits: level }),
      );
    }
    const seen: Entry[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const got = await logPage(account.api_key, query);
      expect(got.data.length).toBeLessThanOrEqual(2);
      seen.push(...got.data);
      cursor = got.next_cursor;
    } while (cursor);
    expect(seen.map((e) => e.details.low_balance_credits ?? e.action)).toEqual([
      4,
      3,
      2,
      1,
      "account.created",
    ]);
    expect(new Set(seen.map((e) => e.id)).size).toBe(5);
    const bad = await expectError(
      await gateway("/v1/account/audit-log?cursor=nope", { key: account.api_key }),
      400,
      "invalid_request",
    );
    expect(bad.error.fields?.[0]?.field).toBe("cursor");
  });

  it("an account sees only its own entries, whatever cursor it sends", async () => {
    const a = await createAccount();
    const b = await createAccount();
    await expectOk(await call(a, "/v1/account/alerts", "PUT", { low_balance_credits: 7 }));
    await expectOk(await call(a, "/v1/account/limits", "PUT", { monthly_spend_limit_cents: 700 }));
    const mine = await logPage(a.api_key, "?limit=1");
    expect(mine.next_cursor).not.toBeNull();
    const aIds = new Set((await entries(a)).map((e) => e.id));
    const theirs = await entries(b);
    expect(theirs.map((e) => e.action)).toEqual(["account.created"]);
    const withACursor = await logPage(b.api_key, `?cursor=${mine.next_cursor as string}`);
    for (const e of [...theirs, ...withACursor.data]) expect(aIds.has(e.id)).toBe(false);
    expect(withACursor.data.every((e) => e.details.email !== undefined)).toBe(true);
  });
});
