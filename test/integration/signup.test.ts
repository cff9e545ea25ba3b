import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { emailsToRetry } from "../../src/db/emails";
import { accounts, emails, signupTokens } from "../../src/db/schema";
import worker from "../../src/index";
import { sha256Hex } from "../../src/platform/crypto";
import { mailboxKey } from "../../src/platform/email-address";
import type { Bindings } from "../../src/platform/env";
import { reconcile } from "../../src/purchases/reconciler";
import {
  ADMIN_TOKEN,
  admin,
  BASE,
  createAccount,
  type ErrorBody,
  expectError,
  gateway,
  json,
  send,
} from "../helpers/http";
import { expectLogs } from "../helpers/logs";
import { expectQuickstart } from "../helpers/page";

const db = dbFor(env.DB);
const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };
const TOKEN_IN_LINK = /\/account\/sign-up\/confirm\?token=([0-9A-Za-z]+)/;

let ipCounter = 0;
/** A client address no other test uses, so the per-address limit is each test's own. */
function freshIp(): string {
  ipCounter++;
  const r = crypto.getRandomValues(new Uint8Array(2));
  return `10.${r[0]}.${r[1]}.${ipCounter % 250}`;
}
const freshEmail = () => `${crypto.randomUUID()}@example.com`;

function apiSignup(email: unknown, ip = freshIp(), extra: Record<string, unknown> = {}) {
  return gateway("/v1/signup", {
    method: "POST",
    headers: { "CF-Connecting-IP": ip },
    body: JSON.stringify({ email, ...extra }),
  });
}

/** A browser-like request to the pages: same-origin headers for posts, the cookies given. */
function page(
  path: string,
  init: {
    cookie?: string;
    form?: Record<string, string>;
    headers?: HeadersInit;
    method?: string;
    /** What Cloudflare says about the caller (`request.cf`). */
    cf?: Record<string, string>;
  } = {},
): Promise<Response> {
  const headers = new Headers(init.form ? SAME_ORIGIN : {});
  for (const [k, v] of new Headers(init.headers)) headers.set(k, v);
  if (init.cookie) headers.set("Cookie", init.cookie);
  return send(
    new Request(`${BASE}${path}`, {
      method: init.method ?? (init.form ? "POST" : "GET"),
      headers,
      body: init.form ? new URLSearchParams(init.form) : undefined,
      redirect: "manual",
      cf: init.cf as RequestInit["cf"],
    }),
  );
}

function cookiePair(res: Response, name: string): string {
  const pair = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0] ?? "")
    .find((p) => p.startsWith(`${name}=`));
  expect(pair, `a ${name} cookie`).toBeDefined();
  return pair ?? "";
}

/**
 * The cookies a browser would send next: `jar` updated by the response's Set-Cookie headers
 * (a `Max-Age=0` deletes), as a `Cookie` header value.
 */
function nextCookies(jar: Map<string, string>, res: Response): string {
  for (const header of res.headers.getSetCookie()) {
    const [pair = "", ...attributes] = header.split(";").map((p) => p.trim());
    const name = pair.slice(0, pair.indexOf("="));
    if (attributes.some((a) => /^max-age=0$/i.test(a))) jar.delete(name);
    else jar.set(name, pair);
  }
  return [...jar.values()].join("; ");
}

const KEY_IN_PAGE = /<textarea id="new-key"[^>]*>(tg_(?:test|live)_[0-9A-Za-z]{32})<\/textarea>/;

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]+)"`).exec(html);
  expect(match, `a hidden ${name} field`).not.toBeNull();
  return match?.[1] ?? "";
}

/** The emails the operator route lists for the address, newest first. */
async function signupEmails(email: string) {
  const res = await admin(`/signup-emails?email=${encodeURIComponent(email)}`);
  expect(res.status).toBe(200);
  return (await json<{ data: { kind: string; to: string; subject: string; text: string }[] }>(res))
    .data;
}

type SentEmail = { to: string; subject: string; text: string };

/**
 * The test environment with a mail server of the test's own, recording what the worker gives
 * `env.EMAIL.send` (or failing with `fail`), and the messages it got.
 */
function withMailbox(fail?: (message: SentEmail) => Error, overrides: Partial<Bindings> = {}) {
  const sent: SentEmail[] = [];
  const EMAIL = {
    async send(message: unknown) {
      sent.push(message as SentEmail);
      if (fail) throw fail(message as SentEmail);
      return { messageId: "m" };
    },
  } as unknown as SendEmail;
  return { env: { ...env, ...overrides, EMAIL } as Bindings, sent };
}

/** Asks for a link through the API and reads it from the email as sent (not from D1). */
async function requestLink(email = freshEmail(), ip = freshIp()): Promise<string> {
  const mailbox = withMailbox();
  const res = await gateway("/v1/signup", {
    method: "POST",
    headers: { "CF-Connecting-IP": ip },
    body: JSON.stringify({ email }),
    env: mailbox.env,
  });
  expect(res.status).toBe(202);
  await res.arrayBuffer();
  const message = mailbox.sent.findLast((m) => m.to === email);
  const token = TOKEN_IN_LINK.exec(message?.text ?? "")?.[1];
  expect(token, "a sign-up link in the email sent").toBeDefined();
  return token ?? "";
}

/** Every row of every table in D1, as one string: what a dump of the database would hold. */
async function everyD1Row(): Promise<string> {
  const all = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all<{
    name: string;
  }>();
  const tables = all.results.filter((t) => !/^(_cf_|sqlite_)/.test(t.name));
  expect(tables.map((t) => t.name)).toEqual(
    expect.arrayContaining(["emails", "signup_tokens", "accounts"]),
  );
  const dump: unknown[] = [];
  for (const { name } of tables) {
    dump.push(name, (await env.DB.prepare(`SELECT * FROM "${name}"`).all()).results);
  }
  return JSON.stringify(dump);
}

/** Opens the link as a browser would: the confirm page, its cookie and its form token. */
async function openLink(token: string) {
  const res = await page(`/account/sign-up/confirm?token=${token}`, {
    headers: { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" },
  });
  const html = await res.text();
  return { res, html };
}

async function confirm(token: string) {
  const opened = await openLink(token);
  expect(opened.res.status).toBe(200);
  const cookie = cookiePair(opened.res, "tg_signup");
  const csrf = hidden(opened.html, "csrf");
  return page("/account/sign-up/confirm", { cookie, form: { token, csrf } });
}

function accountsWithEmail(email: string) {
  return db.select().from(accounts).where(eq(accounts.email, email)).all();
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("asking for a sign-up link", () => {
  it("answers the same for an address with an account and one without", async () => {
    const send = vi.spyOn(env.EMAIL, "send").mockResolvedValue({ messageId: "m" } as never);
    const existing = freshEmail();
    await createAccount("free", existing);
    const fresh = freshEmail();

    const a = await apiSignup(existing);
    const b = await apiSignup(fresh);
    const c = await apiSignup(existing.toUpperCase());
    const bodies = await Promise.all([a.text(), b.text(), c.text()]);
    expect([a.status, b.status, c.status]).toEqual([202, 202, 202]);
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0] ?? "")).toMatchObject({ status: "sent" });
    for (const res of [a, b, c]) {
      expect(res.headers.get("Content-Type")).toBe("application/json; charset=utf-8");
      expect(res.headers.get("Set-Cookie")).toBeNull();
    }

    // The same work: one email each, one counted row each. Only the email's content differs.
    expect(send).toHaveBeenCalledTimes(3);
    const sentTo = send.mock.calls.map(([m]) => (m as { to: string }).to);
    expect(sentTo).toEqual([existing, fresh, existing]);
    // An address that already has an account gets a sign-in link instead (issue 20), never a
    // sign-up link: no second account, and no "find your API key".
    const existingMail = await signupEmails(existing);
    expect(existingMail).toHaveLength(2);
    for (const mail of existingMail) {
      expect(mail.kind).toBe("sign_in_link");
      expect(mail.text).not.toMatch(TOKEN_IN_LINK);
      expect(mail.text).toContain("/account/sign-in/confirm?token=[redacted]");
      expect(mail.text).toContain("already belongs to an account");
      expect(mail.text).not.toContain("API key");
    }
    const [freshMail] = await signupEmails(fresh);
    expect(freshMail?.kind).toBe("signup_link");
    // The link goes out; the stored copy has its token redacted.
    const sentLink = send.mock.calls.map(([m]) => m as unknown as SentEmail)[1];
    expect(sentLink?.text).toMatch(TOKEN_IN_LINK);
    expect(freshMail?.text).not.toMatch(TOKEN_IN_LINK);
    expect(freshMail?.text).toContain("/account/sign-up/confirm?token=[redacted]\n");
    expect(freshMail?.text).toBe(
      sentLink?.text.replace(TOKEN_IN_LINK, "/account/sign-up/confirm?token=[redacted]"),
    );
    expect(freshMail?.text).toContain("30 minutes");
    expect(freshMail?.text).toContain("If you did not ask for this, ignore this email");
    const rows = await db
      .select({ n: sql<number>`count(*)` })
      .from(signupTokens)
      .where(sql`${signupTokens.email} in (${existing}, ${fresh})`)
      .get();
    expect(rows?.n).toBe(3);
  });

  it("answers the form the same way for both, and a failing mail server changes nothing", async () => {
    vi.spyOn(env.EMAIL, "send").mockRejectedValue(new Error("mail server down"));
    // The failures are logged (an operator's signal), one per address, and nothing else.
    const logs = expectLogs([/^email send failed signup:[0-9a-f]{64} Error: mail server down/]);
    const existing = freshEmail();
    await createAccount("free", existing);
    const fresh = freshEmail();
    const answers: string[] = [];
    for (const email of [existing, fresh]) {
      const form = await page("/account/sign-up");
      const cookie = cookiePair(form, "tg_signup");
      const csrf = hidden(await form.text(), "csrf");
      const res = await page("/account/sign-up", {
        cookie,
        form: { email, csrf },
        headers: { "CF-Connecting-IP": freshIp() },
      });
      expect(res.status).toBe(202);
      const html = await res.text();
      expect(html).toContain("Check your email");
      answers.push(html.replaceAll(email, "EMAIL"));
    }
    expect(answers[0]).toBe(answers[1]);
    const res = await apiSignup(fresh);
    expect(res.status).toBe(202);
    expect(logs.lines).toHaveLength(3);
  });

  it("validates the body with the contract's envelope", async () => {
    const missing = await expectError(
      await gateway("/v1/signup", { method: "POST", body: "{}" }),
      400,
      "invalid_request",
    );
    expect(missing.error.fields?.map((f) => f.field)).toEqual(["email"]);
    const bad = await expectError(await apiSignup("not-an-email"), 400, "invalid_request");
    expect(bad.error.fields?.map((f) => f.field)).toEqual(["email"]);
    const long = await expectError(
      await apiSignup(`${"a".repeat(250)}@example.com`),
      400,
      "invalid_request",
    );
    expect(long.error.fields?.map((f) => f.field)).toEqual(["email"]);
    const unknown = await expectError(
      await apiSignup(freshEmail(), freshIp(), { plan: "pro" }),
      400,
      "invalid_request",
    );
    expect(unknown.error.fields).toEqual([{ field: "plan", message: "unknown field" }]);
    const malformed = await expectError(
      await gateway("/v1/signup", { method: "POST", body: "{" }),
      400,
      "invalid_request",
    );
    expect(malformed.error.fields?.[0]?.field).toBe("body");
    const get = await expectError(await gateway("/v1/signup"), 405, "method_not_allowed");
    expect(get.error.type).toBe("method_not_allowed");
  });

  it("needs no API key, and ignores one", async () => {
    const res = await gateway("/v1/signup", {
      method: "POST",
      key: "tg_test_notarealkeyatall0000000000000",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email: freshEmail() }),
    });
    expect(res.status).toBe(202);
    // With a trailing slash it is the same route: never proxied (nor charged).
    const slash = await gateway("/v1/signup/", {
      method: "POST",
      key: "tg_test_notarealkeyatall0000000000000",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email: freshEmail() }),
    });
    expect(slash.status).toBe(202);
    expect(slash.headers.get("X-Credits-Charged")).toBeNull();
  });
});

describe("rate limits", () => {
  it("allows 5 requests an hour per client address, then 429 with Retry-After", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) {
      const res = await apiSignup(freshEmail(), ip);
      expect(res.status).toBe(202);
      await res.arrayBuffer();
    }
    const limited = await apiSignup(freshEmail(), ip);
    const retryAfter = Number(limited.headers.get("Retry-After"));
    const body = await expectError(limited, 429, "rate_limited");
    expect(Object.keys(body.error).sort()).toEqual(["message", "retry_after_seconds", "type"]);
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    // Another address is not affected; an IPv6 client is counted by its /64.
    expect((await apiSignup(freshEmail(), freshIp())).status).toBe(202);
    for (let i = 0; i < 5; i++) {
      const res = await apiSignup(freshEmail(), `2001:db8:77:1::${i + 1}`);
      expect(res.status).toBe(202);
      await res.arrayBuffer();
    }
    await expectError(await apiSignup(freshEmail(), "2001:db8:77:1:ffff::9"), 429, "rate_limited");

    // The page answers a friendly 429 page with Retry-After.
    const form = await page("/account/sign-up");
    const cookie = cookiePair(form, "tg_signup");
    const csrf = hidden(await form.text(), "csrf");
    const res = await page("/account/sign-up", {
      cookie,
      form: { email: freshEmail(), csrf },
      headers: { "CF-Connecting-IP": ip },
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
    expect(await res.text()).toContain("Too many sign-up requests");
  });

  it("allows 3 requests an hour per email, the same whether or not it has an account", async () => {
    const existing = freshEmail();
    await createAccount("free", existing);
    const outcomes: Record<string, number[]> = {};
    const envelopes: ErrorBody[] = [];
    for (const email of [existing, freshEmail()]) {
      outcomes[email] = [];
      for (let i = 0; i < 4; i++) {
        const res = await apiSignup(i % 2 === 0 ? email : email.toUpperCase(), freshIp());
        outcomes[email]?.push(res.status);
        if (res.status === 429) {
          expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
          envelopes.push(await json<ErrorBody>(res));
        } else {
          await res.arrayBuffer();
        }
      }
    }
    expect(Object.values(outcomes)).toEqual([
      [202, 202, 202, 429],
      [202, 202, 202, 429],
    ]);
    expect(envelopes[0]?.error.type).toBe("rate_limited");
    expect(envelopes[0]?.error.message).toBe(envelopes[1]?.error.message);
  });
});

/** A random IPv6 /48 of the documentation range, as `2001:db8:xxxx`. */
function fresh48(): string {
  const r = crypto.getRandomValues(new Uint16Array(1))[0] ?? 0;
  return `2001:db8:${r.toString(16)}`;
}

describe("sign-up farming (issue 18 item 8)", () => {
  it("counts the mailbox: case, +tags and Gmail's dots are one address (3 an hour)", async () => {
    const id = crypto.randomUUID().replaceAll("-", "");
    const statuses = [];
    for (const spelling of [
      `${id}+a@example.com`,
      `${id.toUpperCase()}+b@Example.com`,
      `${id}@example.com`,
      `${id}+farm4@example.com`,
    ]) {
      const res = await apiSignup(spelling, freshIp());
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([202, 202, 202, 429]);
    const gmail = [`${id.slice(0, 8)}.${id.slice(8)}@gmail.com`, `${id}+x@googlemail.com`];
    const dotted = [...gmail, `${id.slice(0, 4)}.${id.slice(4)}@gmail.com`, `${id}@gmail.com`];
    const gmailStatuses = [];
    for (const spelling of dotted) {
      const res = await apiSignup(spelling, freshIp());
      gmailStatuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(gmailStatuses).toEqual([202, 202, 202, 429]);
  });

  it("a +tag spelling of an address with an account gets no sign-up link: one free account per mailbox", async () => {
    const id = crypto.randomUUID();
    await createAccount("free", `${id}@example.com`);
    const farmed = `${id}+farm@example.com`;
    const res = await apiSignup(farmed);
    expect(res.status).toBe(202);
    await res.arrayBuffer();
    const sent = await signupEmails(farmed);
    // The same person (mailbox): a sign-in link to the account they have.
    expect(sent.map((e) => e.kind)).toEqual(["sign_in_link"]);
    expect(sent[0]?.text).not.toMatch(TOKEN_IN_LINK);
  });

  it("IPv6: a new /64 per request still counts its /48 (10 an hour); each /64 alone 5", async () => {
    const net = fresh48();
    const statuses = [];
    for (let i = 0; i < 11; i++) {
      const res = await apiSignup(freshEmail(), `${net}:${(i + 1).toString(16)}::1`);
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([...Array(10).fill(202), 429]);
    // Another /48 is not affected.
    expect((await apiSignup(freshEmail(), `${fresh48()}:1::1`)).status).toBe(202);
  });

  it("IPv4: the address (5 an hour) and its /24 (10 an hour); IPv4-mapped IPv6 is the same client", async () => {
    const r = crypto.getRandomValues(new Uint8Array(2));
    const net = `172.${16 + ((r[0] ?? 0) % 16)}.${r[1]}`;
    const statuses = [];
    // Five from .1, the sixth spelled as an IPv4-mapped IPv6 address: the same client.
    for (const ip of [1, 1, 1, 1, 1].map((h) => `${net}.${h}`).concat(`::ffff:${net}.1`)) {
      const res = await apiSignup(freshEmail(), ip);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([202, 202, 202, 202, 202, 429]);
    // Five more hosts of the /24 make ten; the eleventh host is refused.
    const more = [];
    for (let h = 2; h <= 7; h++) {
      const res = await apiSignup(freshEmail(), `${net}.${h}`);
      more.push(res.status);
      await res.arrayBuffer();
    }
    expect(more).toEqual([202, 202, 202, 202, 202, 429]);
  });

  it("finds an existing account through the email_key index, not a scan of accounts", async () => {
    // The statement accountExistsForEmail runs (src/db/accounts.ts), as drizzle writes it.
    const query = db
      .select({ id: accounts.id })
      .from(accounts)
      .where(eq(accounts.emailKey, mailboxKey("ann+x@example.com")))
      .limit(1)
      .toSQL();
    const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`)
      .bind(...query.params)
      .all<{ detail: string }>();
    const details = plan.results.map((r) => r.detail).join("; ");
    expect(details).toMatch(/USING (COVERING )?INDEX accounts_email_key_idx/);
    expect(details).not.toMatch(/^SCAN accounts/);
  });

  it("the backfill migration gives older accounts the same mailbox key as the code", async () => {
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.endsWith("backfill_email_keys.sql"));
    const backfill = migration?.queries.find((q) => q.includes("UPDATE `accounts`"));
    expect(backfill, "the accounts backfill statement").toBeDefined();
    const spellings = [
      "  Ann.Lee+Promo@Example.COM ",
      "A.n.N+x@GoogleMail.com",
      "a.n.n@gmail.com.",
      "+tag@example.com",
      "no-at-sign",
      "a@b@example.com",
    ];
    const ids = spellings.map(() => `acct_backfill_${crypto.randomUUID()}`);
    for (const [i, email] of spellings.entries()) {
      await env.DB.prepare("INSERT INTO accounts (id, email) VALUES (?, ?)")
        .bind(ids[i], email)
        .run();
    }
    await env.DB.prepare(backfill ?? "").run();
    for (const [i, email] of spellings.entries()) {
      const row = await db
        .select({ emailKey: accounts.emailKey })
        .from(accounts)
        .where(eq(accounts.id, ids[i] ?? ""))
        .get();
      expect(row?.emailKey, email).toBe(mailboxKey(email));
    }
  });

  it("a global hourly ceiling on sign-up emails: 429 for everyone, an error log and one email to the operator", async () => {
    const logs = expectLogs([/sign-up email ceiling reached/], ["error"]);
    const since = new Date(Date.now() - 60 * 60_000).toISOString();
    const row = await env.DB.prepare("SELECT count(*) AS n FROM signup_tokens WHERE created_at > ?")
      .bind(since)
      .first<{ n: number }>();
    const operator = "ops@tollgate.example";
    const mailbox = withMailbox(undefined, {
      SIGNUP_EMAILS_PER_HOUR: String((row?.n ?? 0) + 2),
      OPERATOR_EMAIL: operator,
    });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await gateway("/v1/signup", {
        method: "POST",
        headers: { "CF-Connecting-IP": `${fresh48()}:1::1` },
        body: JSON.stringify({ email: freshEmail() }),
        env: mailbox.env,
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
        await expectError(res, 429, "rate_limited");
      } else {
        await res.arrayBuffer();
      }
    }
    expect(statuses).toEqual([202, 202, 429, 429]);
    expect(logs.lines).toHaveLength(1);
    const alerts = mailbox.sent.filter((m) => m.to === operator);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.subject).toContain("sign-up email ceiling reached");
    // Only the two that got through were emailed to their addresses.
    expect(mailbox.sent.filter((m) => m.to !== operator)).toHaveLength(2);
  });
});

describe("the emailed link", () => {
  it("creates a free account with 500 monthly credits, signs in and shows the key once", async () => {
    const email = freshEmail();
    const token = await requestLink(email);

    // Opening the link (as a mail scanner would, HEAD or GET) uses nothing.
    const head = await page(`/account/sign-up/confirm?token=${token}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    await head.arrayBuffer();
    for (let i = 0; i < 2; i++) {
      const opened = await openLink(token);
      expect(opened.res.status).toBe(200);
      expect(opened.html).toContain(email);
      expect(opened.html).toContain('action="/account/sign-up/confirm"');
      expect(opened.res.headers.get("Content-Security-Policy")).toContain("default-src 'none'");
      expect(opened.res.headers.get("Referrer-Policy")).toBe("no-referrer");
    }
    expect(await accountsWithEmail(email)).toHaveLength(0);

    // The post uses the link and answers post/redirect/get: a 303 to the Billing page, with
    // the session and the flash (the key, encrypted) in cookies, never in the URL or the body.
    const res = await confirm(token);
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing");
    const redirectBody = await res.text();
    const jar = new Map<string, string>();
    const cookies = nextCookies(jar, res);
    expect([...jar.keys()].sort()).toEqual(["tg_flash", "tg_session"]);
    const signupCookie = res.headers.getSetCookie().find((c) => c.startsWith("tg_signup=")) ?? "";
    expect(signupCookie, "the form cookie is cleared").toContain("Max-Age=0");
    expect(await accountsWithEmail(email)).toHaveLength(1);

    const landed = await page("/account/billing", { cookie: cookies });
    expect(landed.status).toBe(200);
    expect(landed.headers.get("Cache-Control")).toBe("no-store");
    const html = await landed.text();
    const key = KEY_IN_PAGE.exec(html)?.[1] ?? "";
    expect(key, "the first key, whole").not.toBe("");
    expect(html).toContain("shown only this once");
    expect(html).toContain("Your free account is ready");
    expect(html).toContain("500 credits a month");
    expect(html).toContain('data-copy="new-key"');
    expectQuickstart(html, key);
    expect(html).toContain(email);
    expect(res.headers.get("Location")).not.toContain(key);
    expect(redirectBody).not.toContain(key);
    expect(decodeURIComponent(jar.get("tg_flash") ?? "")).not.toContain(key);

    const [account] = await accountsWithEmail(email);
    expect(account?.plan).toBe("free");
    const me = await gateway("/v1/account", { key });
    expect(await json(me)).toMatchObject({ email, plan: "free" });
    const balance = await json<{ monthly: number; monthly_allowance: number; purchased: number }>(
      await gateway("/v1/account/balance", { key }),
    );
    expect(balance).toMatchObject({ monthly: 500, monthly_allowance: 500, purchased: 0 });
    const keys = await json<{ data: { scope: string }[] }>(
      await gateway("/v1/account/keys", { key }),
    );
    expect(keys.data.map((k) => k.scope)).toEqual(["full"]);
    // Its audit log starts with its creation, by the person who proved the address is theirs.
    const log = await json<{ data: Array<{ action: string; actor: Record<string, string> }> }>(
      await gateway("/v1/account/audit-log", { key }),
    );
    expect(log.data).toMatchObject([
      { action: "account.created", actor: { type: "person", id: email, label: email } },
    ]);

    // The key works on the proxied API.
    const classified = await gateway("/v1/classify", {
      method: "POST",
      key,
      body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
    });
    expect(classified.status).toBe(200);
    expect(classified.headers.get("X-Credits-Charged")).toBe("1");
    await classified.arrayBuffer();

    // Exactly once: the page that showed the key cleared the flash, so a reload (the browser
    // sending what it now holds: the session alone) is still signed in but shows no key, and
    // no notice either.
    const reloadCookies = nextCookies(jar, landed);
    expect([...jar.keys()]).toEqual(["tg_session"]);
    for (let i = 0; i < 2; i++) {
      const reload = await page("/account/billing", { cookie: reloadCookies });
      expect(reload.status).toBe(200);
      const again = await reload.text();
      expect(again).toContain(email);
      expect(again).not.toContain(key);
      expect(again).not.toContain('id="new-key"');
      expect(again).not.toContain("Your free account is ready");
    }
    expect(await accountsWithEmail(email)).toHaveLength(1);
  });

  it("never shows the first key to another session, nor to a browser with no session", async () => {
    const token = await requestLink();
    const res = await confirm(token);
    expect(res.status).toBe(303);
    await res.arrayBuffer();
    const jar = new Map<string, string>();
    nextCookies(jar, res);
    const flash = jar.get("tg_flash") ?? "";
    // Someone else's session with this flash cookie: not theirs to open.
    const other = await confirm(await requestLink());
    await other.arrayBuffer();
    const otherSession = cookiePair(other, "tg_session");
    const stolen = await page("/account/billing", { cookie: `${otherSession}; ${flash}` });
    expect(await stolen.text()).not.toMatch(KEY_IN_PAGE);
    // No session at all: the sign-in page, no key.
    const signedOut = await page("/account/billing", { cookie: flash });
    expect(await signedOut.text()).not.toMatch(KEY_IN_PAGE);
  });

  it("works once: a second confirm is refused and the page says to start again", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const opened = await openLink(token);
    const cookie = cookiePair(opened.res, "tg_signup");
    const csrf = hidden(opened.html, "csrf");
    const first = await page("/account/sign-up/confirm", { cookie, form: { token, csrf } });
    expect(first.status).toBe(303);
    await first.arrayBuffer();
    const again = await page("/account/sign-up/confirm", { cookie, form: { token, csrf } });
    expect(again.status).toBe(410);
    const html = await again.text();
    expect(html).toContain("This sign-up link cannot be used");
    expect(html).toContain('href="/account/sign-up"');
    expect(again.headers.get("Set-Cookie")).toBeNull();
    expect((await openLink(token)).res.status).toBe(410);
    expect(await accountsWithEmail(email)).toHaveLength(1);
  });

  it("makes exactly one account under concurrent confirms, of one link or of two", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const opened = await openLink(token);
    const cookie = cookiePair(opened.res, "tg_signup");
    const csrf = hidden(opened.html, "csrf");
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        page("/account/sign-up/confirm", { cookie, form: { token, csrf } }),
      ),
    );
    await Promise.all(results.map((r) => r.arrayBuffer()));
    expect(results.map((r) => r.status).sort()).toEqual([303, 410, 410, 410]);
    expect(await accountsWithEmail(email)).toHaveLength(1);

    const other = freshEmail();
    const t1 = await requestLink(other);
    const t2 = await requestLink(other);
    expect(t1).not.toBe(t2);
    const [o1, o2] = await Promise.all([openLink(t1), openLink(t2)]);
    const posts = await Promise.all(
      [
        [t1, o1],
        [t2, o2],
      ].map(([t, o]) => {
        const opened = o as Awaited<ReturnType<typeof openLink>>;
        return page("/account/sign-up/confirm", {
          cookie: cookiePair(opened.res, "tg_signup"),
          form: { token: t as string, csrf: hidden(opened.html, "csrf") },
        });
      }),
    );
    await Promise.all(posts.map((r) => r.arrayBuffer()));
    expect(posts.map((r) => r.status).sort()).toEqual([303, 410]);
    expect(await accountsWithEmail(other)).toHaveLength(1);
  });

  it("expires: a link past its expiry is refused on the page and on the post", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const opened = await openLink(token);
    const cookie = cookiePair(opened.res, "tg_signup");
    const csrf = hidden(opened.html, "csrf");
    await db
      .update(signupTokens)
      .set({ expiresAt: new Date(Date.now() - 1000).toISOString() })
      .where(eq(signupTokens.email, email));
    const shown = await openLink(token);
    expect(shown.res.status).toBe(410);
    expect(shown.html).toContain("expired");
    expect(shown.html).toContain('href="/account/sign-up"');
    const posted = await page("/account/sign-up/confirm", { cookie, form: { token, csrf } });
    expect(posted.status).toBe(410);
    await posted.arrayBuffer();
    expect(await accountsWithEmail(email)).toHaveLength(0);
  });

  it("is stored only as a hash: the raw token is in no D1 row, yet the link works", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const dump = await everyD1Row();
    expect(dump).toContain(email);
    expect(dump).toContain(await sha256Hex(token));
    expect(dump).not.toContain(token);
    const [stored] = await signupEmails(email);
    expect(stored?.text).toContain("/account/sign-up/confirm?token=[redacted]");
    const res = await confirm(token);
    expect(res.status).toBe(303);
    await res.arrayBuffer();
    expect(await accountsWithEmail(email)).toHaveLength(1);
    expect(await everyD1Row()).not.toContain(token);
  });

  it("keeps only a hash in signup_tokens, and no client address", async () => {
    const email = freshEmail();
    const ip = freshIp();
    const token = await requestLink(email, ip);
    expect(token).toMatch(/^[0-9A-Za-z]{32}$/);
    const row = await db.select().from(signupTokens).where(eq(signupTokens.email, email)).get();
    expect(row?.tokenHash).toBe(await sha256Hex(token));
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row?.clientHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.clientNetHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.usedAt).toBeNull();
    expect(Date.parse(row?.expiresAt ?? "") - Date.parse(row?.createdAt ?? "")).toBe(30 * 60_000);
    const all = await env.DB.prepare("SELECT * FROM signup_tokens").all();
    expect(JSON.stringify(all.results)).not.toContain(token);
    // The client address is not stored either (this one; "10." alone also matches times).
    expect(JSON.stringify(all.results)).not.toContain(ip);
  });

  it("refuses a confirm without the form's cookie token, or from another site", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const opened = await openLink(token);
    const cookie = cookiePair(opened.res, "tg_signup");
    const csrf = hidden(opened.html, "csrf");
    const noCookie = await page("/account/sign-up/confirm", { form: { token, csrf } });
    expect(noCookie.status).toBe(403);
    await noCookie.arrayBuffer();
    const wrongToken = await page("/account/sign-up/confirm", {
      cookie,
      form: { token, csrf: `${csrf.slice(0, -2)}xx` },
    });
    expect(wrongToken.status).toBe(403);
    await wrongToken.arrayBuffer();
    const crossSite = await page("/account/sign-up/confirm", {
      cookie,
      form: { token, csrf },
      headers: { "Sec-Fetch-Site": "cross-site", Origin: "https://evil.example" },
    });
    expect(crossSite.status).toBe(403);
    await crossSite.arrayBuffer();
    // A token for the sign-up form does not work on the confirm form.
    const form = await page("/account/sign-up", { cookie });
    const signupCsrf = hidden(await form.text(), "csrf");
    const wrongPurpose = await page("/account/sign-up/confirm", {
      cookie,
      form: { token, csrf: signupCsrf },
    });
    expect(wrongPurpose.status).toBe(403);
    await wrongPurpose.arrayBuffer();
    expect(await accountsWithEmail(email)).toHaveLength(0);
    expect((await confirm(token)).status).toBe(303);
  });

  it("creates the account's ledger near the person confirming, as the operator route does", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    const opened = await openLink(token);
    const get = vi.spyOn(env.ACCOUNT_LEDGER, "get");
    const res = await page("/account/sign-up/confirm", {
      cookie: cookiePair(opened.res, "tg_signup"),
      form: { token, csrf: hidden(opened.html, "csrf") },
      cf: { continent: "EU", longitude: "21.0" },
    });
    expect(res.status).toBe(303);
    await res.arrayBuffer();
    const [account] = await accountsWithEmail(email);
    const creating = get.mock.calls.find(([objectId]) =>
      objectId.equals(env.ACCOUNT_LEDGER.idFromName(account?.id ?? "")),
    );
    expect(creating?.[1]).toEqual({ locationHint: "eeur" });
  });

  it("creates no second account when the address got one since the link was sent", async () => {
    const email = freshEmail();
    const token = await requestLink(email);
    await createAccount("free", email);
    const res = await confirm(token);
    expect(res.status).toBe(409);
    expect(await res.text()).toContain("You already have an account");
    expect(await accountsWithEmail(email)).toHaveLength(1);
  });
});

describe("the sign-up page", () => {
  it("is a form with a labelled email field, the page's CSP and a form token", async () => {
    const res = await page("/account/sign-up");
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<label class="field" for="email">');
    expect(html).toMatch(/<input type="email" id="email" name="email"[^>]*autocomplete="email"/);
    expect(html).toContain('action="/account/sign-up"');
    expect(html).not.toContain("<script");
    const csp = res.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("X-Frame-Options")).toBe("DENY");
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("tg_signup=")) ?? "";
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/account\/sign-up/);
    hidden(html, "csrf");
  });

  it("refuses a post without its token or from another site, and re-asks for a bad email", async () => {
    const form = await page("/account/sign-up");
    const cookie = cookiePair(form, "tg_signup");
    const csrf = hidden(await form.text(), "csrf");
    const email = freshEmail();
    const noToken = await page("/account/sign-up", { cookie, form: { email } });
    expect(noToken.status).toBe(403);
    await noToken.arrayBuffer();
    const crossSite = await page("/account/sign-up", {
      cookie,
      form: { email, csrf },
      headers: { "Sec-Fetch-Site": "cross-site" },
    });
    expect(crossSite.status).toBe(403);
    await crossSite.arrayBuffer();
    // Neither Origin nor Sec-Fetch-Site vouching for this origin (Hono's csrf): refused too.
    const unvouched = await send(
      new Request(`${BASE}/account/sign-up`, {
        method: "POST",
        headers: { Cookie: cookie },
        body: new URLSearchParams({ email, csrf }),
        redirect: "manual",
      }),
    );
    expect(unvouched.status).toBe(403);
    await unvouched.arrayBuffer();
    expect(await signupEmails(email)).toHaveLength(0);
    const bad = await page("/account/sign-up", { cookie, form: { email: "nope", csrf } });
    expect(bad.status).toBe(400);
    const html = await bad.text();
    expect(html).toContain("Enter a valid email address");
    expect(html).toContain('value="nope"');
  });

  it("is linked from the sign-in page", async () => {
    const res = await page("/account/billing");
    expect(await res.text()).toContain('href="/account/sign-up"');
  });
});

describe("SIGNUP_ENABLED off", () => {
  const off = async (request: Request) => {
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, { ...env, SIGNUP_ENABLED: "false" }, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };

  it("answers 404 on every sign-up route, the pages saying sign-up is off, and the sign-in page has no link", async () => {
    await expectError(
      await off(
        new Request(`${BASE}/v1/signup`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: freshEmail() }),
        }),
      ),
      404,
      "not_found",
    );
    await expectError(await off(new Request(`${BASE}/v1/signup`)), 404, "not_found");
    await expectError(
      await off(
        new Request(`${BASE}/admin/signup-emails`, {
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
        }),
      ),
      404,
      "not_found",
    );
    const token = await requestLink();
    // The pages say so (still 404: there is no such route here), and point to sign-in.
    for (const path of ["/account/sign-up", `/account/sign-up/confirm?token=${token}`]) {
      const res = await off(new Request(`${BASE}${path}`));
      expect(res.status).toBe(404);
      expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
      const html = await res.text();
      expect(html).toContain("Sign-up is not available");
      expect(html).toContain("does not offer self-service sign-up");
      expect(html).toContain('href="/account/sign-in"');
      expect(html).not.toContain("<form");
    }
    const posted = await off(
      new Request(`${BASE}/account/sign-up`, {
        method: "POST",
        headers: { ...SAME_ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ email: freshEmail() }),
      }),
    );
    expect(posted.status).toBe(404);
    await posted.arrayBuffer();
    const signIn = await off(new Request(`${BASE}/account/billing`));
    expect(await signIn.text()).not.toContain('href="/account/sign-up"');
  });
});

describe("the operator listing", () => {
  it("needs the operator token and validates its query", async () => {
    await expectError(await gateway("/admin/signup-emails"), 401, "invalid_api_key");
    const bad = await expectError(await admin("/signup-emails?email=nope"), 400, "invalid_request");
    expect(bad.error.fields?.map((f) => f.field)).toEqual(["email"]);
    const email = freshEmail();
    await requestLink(email);
    const all = await json<{ data: { to: string }[] }>(await admin("/signup-emails"));
    expect(all.data.some((e) => e.to === email)).toBe(true);
    const rows = await db.select().from(emails).where(eq(emails.toAddress, email)).all();
    expect(rows.map((r) => r.accountId)).toEqual(["signup"]);
  });
});

describe("stored sign-up emails", () => {
  it("a failed send stores neither the token nor an error echoing it, and is not retried", async () => {
    const logs = expectLogs([/^email send failed signup:[0-9a-f]{64} Error: refused: /]);
    const mailbox = withMailbox((m) => new Error(`refused: ${m.text}`));
    const email = freshEmail();
    const res = await gateway("/v1/signup", {
      method: "POST",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email }),
      env: mailbox.env,
    });
    expect(res.status).toBe(202);
    await res.arrayBuffer();
    const token = TOKEN_IN_LINK.exec(mailbox.sent[0]?.text ?? "")?.[1] ?? "";
    expect(token, "the link was in the email tried").toMatch(/^[0-9A-Za-z]{32}$/);
    expect(logs.lines.join("\n")).not.toContain(token);
    const [row] = await db.select().from(emails).where(eq(emails.toAddress, email)).all();
    expect(row?.status).toBe("failed");
    expect(row?.error).toContain("token=[redacted]");
    expect(await everyD1Row()).not.toContain(token);
    // Its row cannot send the link again, so the reconciler leaves it (asking again sends one).
    const retry = await emailsToRetry(db, 10_000, Date.now());
    expect(retry.map((r) => r.id)).not.toContain(row?.id);
  });

  it("with SIGNUP_STORE_LINKS on (local development), the listing shows the link", async () => {
    const mailbox = withMailbox(undefined, { SIGNUP_STORE_LINKS: "true" });
    const email = freshEmail();
    const res = await gateway("/v1/signup", {
      method: "POST",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email }),
      env: mailbox.env,
    });
    expect(res.status).toBe(202);
    await res.arrayBuffer();
    const [listed] = await signupEmails(email);
    const token = TOKEN_IN_LINK.exec(listed?.text ?? "")?.[1] ?? "";
    expect(token).toMatch(/^[0-9A-Za-z]{32}$/);
    expect(listed?.text).toBe(mailbox.sent.find((m) => m.to === email)?.text);
    const confirmed = await confirm(token);
    expect(confirmed.status).toBe(303);
    await confirmed.arrayBuffer();
    expect(await accountsWithEmail(email)).toHaveLength(1);
  });

  it("are deleted by the reconciler once their link has expired; other emails stay", async () => {
    const email = freshEmail();
    await requestLink(email);
    const [fresh] = await db.select().from(emails).where(eq(emails.toAddress, email)).all();
    const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
    const old = { kind: "signup_link", toAddress: email, subject: "s", textBody: "t" };
    await db.insert(emails).values([
      {
        ...old,
        id: `em_old_${crypto.randomUUID()}`,
        ref: `signup:old:${email}`,
        accountId: "signup",
        createdAt: at(31 * 60_000),
      },
      {
        ...old,
        id: `em_acct_${crypto.randomUUID()}`,
        ref: `acct:old:${email}`,
        accountId: "acct_kept",
        createdAt: at(31 * 60_000),
      },
    ]);
    const report = await reconcile(env);
    expect(report.signupEmailsPurged).toBeGreaterThanOrEqual(1);
    const left = await db.select().from(emails).where(eq(emails.toAddress, email)).all();
    expect(left.map((r) => r.ref).sort()).toEqual([`acct:old:${email}`, fresh?.ref].sort());
    // Just inside the link's lifetime: kept.
    await db
      .update(emails)
      .set({ createdAt: at(29 * 60_000) })
      .where(eq(emails.ref, fresh?.ref ?? ""));
    await reconcile(env);
    expect(
      await db
        .select()
        .from(emails)
        .where(eq(emails.ref, fresh?.ref ?? ""))
        .all(),
    ).toHaveLength(1);
  });
});
