import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { readSession, SESSION_TTL_SECONDS } from "../../src/dashboard/session";
import { dbFor } from "../../src/db/client";
import { accounts } from "../../src/db/schema";
import type { AppEnv } from "../../src/env";
import { ledgerFor } from "../../src/ledger/client";
import {
  BASE,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  send,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { attachCard, eventually } from "../helpers/stripe";

const db = dbFor(env.DB);
const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };

/** A browser-like request to the page: same-origin headers, the session cookie if any. */
function page(
  path: string,
  init: {
    method?: string;
    cookie?: string;
    form?: Record<string, string>;
    headers?: HeadersInit;
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
    }),
  );
}

/** Signs in with the key and returns the `name=value` pair to send back as `Cookie`. */
async function signIn(key: string): Promise<string> {
  const res = await page("/account/sign-in", { form: { api_key: key } });
  expect(res.status).toBe(303);
  expect(res.headers.get("Location")).toBe("/account/billing");
  await res.arrayBuffer();
  const cookie = res.headers.get("Set-Cookie") ?? "";
  const pair = cookie.split(";")[0] ?? "";
  expect(pair).toMatch(/^tg_session=.+/);
  return pair;
}

async function billingHtml(cookie: string): Promise<string> {
  const res = await page("/account/billing", { cookie });
  expect(res.status).toBe(200);
  return res.text();
}

/** The CSRF token of the form posting to `action`. */
function tokenFor(html: string, action: string): string {
  const escaped = action.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(
    `action="${escaped}"[^>]*>\\s*<input type="hidden" name="csrf" value="([^"]+)"`,
  ).exec(html);
  expect(match, `a form posting to ${action}`).not.toBeNull();
  return match?.[1] ?? "";
}

async function signedIn(plan: "free" | "starter" | "pro" = "free") {
  const account = await createAccount(plan);
  const cookie = await signIn(account.api_key);
  const html = await billingHtml(cookie);
  return { account, cookie, html };
}

async function autoRecharge(account: TestAccount) {
  const res = await gateway("/v1/account/auto-recharge", { key: account.api_key });
  expect(res.status).toBe(200);
  return json<{ enabled: boolean; package: string | null; last_failure: null | { code: string } }>(
    res,
  );
}

function expectSecurityHeaders(res: Response) {
  const csp = res.headers.get("Content-Security-Policy") ?? "";
  const directives = Object.fromEntries(
    csp.split(";").map((d) => {
      const [name = "", ...values] = d.trim().split(/\s+/);
      return [name, values];
    }),
  );
  expect(directives["default-src"]).toEqual(["'none'"]);
  expect(directives["style-src"]).toHaveLength(1);
  expect(directives["style-src"]?.[0]).toMatch(/^'sha256-[A-Za-z0-9+/]+=*'$/);
  expect(directives["img-src"]).toEqual(["'self'", "data:"]);
  expect(directives["form-action"]?.[0]).toBe("'self'");
  expect(directives["frame-ancestors"]).toEqual(["'none'"]);
  expect(directives["base-uri"]).toEqual(["'none'"]);
  expect(directives["script-src"]).toBeUndefined();
  expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
  expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
  expect(res.headers.get("X-Frame-Options")).toBe("DENY");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
}

describe("signing in", () => {
  it("shows the sign-in form, as HTML with the security headers, when signed out", async () => {
    const res = await page("/account/billing");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expectSecurityHeaders(res);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html><html lang="en">/);
    expect(html).toContain('<label class="field" for="api-key">API key</label>');
    expect(html).toContain('action="/account/sign-in"');
    expect(html).not.toContain("Credit Balance");
  });

  it("sets an HttpOnly, Secure, SameSite=Strict session cookie and redirects to the page", async () => {
    const account = await createAccount("starter");
    const res = await page("/account/sign-in", { form: { api_key: account.api_key } });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing");
    expectSecurityHeaders(res);
    await res.arrayBuffer();
    const cookie = res.headers.get("Set-Cookie") ?? "";
    const attributes = cookie.split(";").map((a) => a.trim());
    expect(attributes[0]).toMatch(/^tg_session=.+/);
    expect(attributes.slice(1).sort()).toEqual(
      ["HttpOnly", "Max-Age=43200", "Path=/", "SameSite=Strict", "Secure"].sort(),
    );
    // The cookie holds no key, only ids and a signature.
    expect(decodeURIComponent(attributes[0] ?? "")).not.toContain(account.api_key);

    const pageRes = await page("/account/billing", { cookie: attributes[0] });
    expect(pageRes.status).toBe(200);
    expectSecurityHeaders(pageRes);
    const html = await pageRes.text();
    expect(html).toContain("Credit Balance");
    // Starter: 3,000 monthly, nothing purchased.
    expect(html).toMatch(/<dt>Monthly credits<\/dt><dd>3,000 <small>of 3,000<\/small><\/dd>/);
    expect(html).toMatch(/<dt>Purchased credits<\/dt><dd>0<\/dd>/);
    expect(html).toMatch(/<dt>Total credits<\/dt><dd>3,000<\/dd>/);
    expect(html).toContain("<strong>Starter</strong>");
  });

  it("refuses a bad key with 401 and no cookie", async () => {
    for (const key of ["nope", `tg_live_${"a".repeat(32)}`, ""]) {
      const res = await page("/account/sign-in", { form: { api_key: key } });
      expect(res.status).toBe(401);
      expect(res.headers.get("Set-Cookie")).toBeNull();
      expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
      expect(await res.text()).toContain("That API key is not valid, or it was revoked.");
    }
  });

  it("refuses a sign-in posted from another site", async () => {
    const account = await createAccount();
    const foreign: Array<Record<string, string>> = [
      { Origin: "https://evil.example" },
      { "Sec-Fetch-Site": "cross-site" },
      { "Sec-Fetch-Site": "same-site" },
      { Origin: "null", "Sec-Fetch-Site": "cross-site" },
    ];
    for (const headers of foreign) {
      const res = await page("/account/sign-in", { form: { api_key: account.api_key }, headers });
      expect(res.status).toBe(403);
      expect(res.headers.get("Set-Cookie")).toBeNull();
      await res.arrayBuffer();
    }
    // What Chromium sends for a same-origin form post under Referrer-Policy: no-referrer.
    const own = await page("/account/sign-in", {
      form: { api_key: account.api_key },
      headers: { Origin: "null", "Sec-Fetch-Site": "same-origin" },
    });
    expect(own.status).toBe(303);
    await own.arrayBuffer();
    // Without Sec-Fetch-Site (older browsers), a foreign Origin still decides.
    const old = await send(
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: { Origin: "https://evil.example" },
        body: new URLSearchParams({ api_key: account.api_key }),
        redirect: "manual",
      }),
    );
    expect(old.status).toBe(403);
    await old.arrayBuffer();
  });

  it("expires 12 hours after sign-in", async () => {
    const { account, cookie } = await signedIn();
    // readSession at a chosen "now", on a real request carrying the real cookie.
    const probe = new Hono<AppEnv>().get("/", async (c) => {
      const at = Number(c.req.query("at"));
      return c.json({ session: await readSession(c, at) });
    });
    const at = async (ms: number) =>
      (
        await json<{ session: { accountId: string } | null }>(
          await probe.request(`/?at=${ms}`, { headers: { Cookie: cookie } }, env),
        )
      ).session;
    const now = Date.now();
    expect((await at(now))?.accountId).toBe(account.id);
    expect((await at(now + (SESSION_TTL_SECONDS - 60) * 1000))?.accountId).toBe(account.id);
    expect(await at(now + (SESSION_TTL_SECONDS + 1) * 1000)).toBeNull();
  });

  it("ignores a tampered or foreign cookie", async () => {
    const { cookie } = await signedIn();
    const other = await createAccount();
    const [name, value = ""] = cookie.split("=");
    // Swap the account id inside the signed value: the signature no longer matches.
    const decoded = decodeURIComponent(value);
    const forged = decoded.replace(/^[^.]+/, other.id);
    for (const bad of [
      `${name}=${encodeURIComponent(forged)}`,
      `${name}=${encodeURIComponent(`${decoded.slice(0, -3)}AAA`)}`,
      `${name}=garbage`,
    ]) {
      const html = await (await page("/account/billing", { cookie: bad })).text();
      expect(html).toContain('action="/account/sign-in"');
      expect(html).not.toContain("Credit Balance");
    }
  });

  it("without SESSION_SECRET signs with a key derived from ADMIN_TOKEN; with neither, refuses", async () => {
    const account = await createAccount();
    const call = (request: Request, overrides: Record<string, undefined>) =>
      send(request, { env: { ...env, ...overrides } });
    const signInRequest = () =>
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: SAME_ORIGIN,
        body: new URLSearchParams({ api_key: account.api_key }),
        redirect: "manual",
      });

    const derived = await call(signInRequest(), { SESSION_SECRET: undefined });
    expect(derived.status).toBe(303);
    const cookie = (derived.headers.get("Set-Cookie") ?? "").split(";")[0] ?? "";
    const withDerived = await call(
      new Request(`${BASE}/account/billing`, { headers: { Cookie: cookie } }),
      { SESSION_SECRET: undefined },
    );
    expect(await withDerived.text()).toContain("Credit Balance");
    // Signed with another key, so the configured SESSION_SECRET does not accept it.
    expect(await billingHtmlOrSignIn(cookie)).not.toContain("Credit Balance");

    const none = { SESSION_SECRET: undefined, ADMIN_TOKEN: undefined };
    const refused = await call(signInRequest(), none);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("Set-Cookie")).toBeNull();
    expect(await refused.text()).toContain("Sign-in is not available");
    const shown = await call(new Request(`${BASE}/account/billing`), none);
    expect(await shown.text()).toContain("Sign-in is not available");
  });
});

async function billingHtmlOrSignIn(cookie: string): Promise<string> {
  return (await page("/account/billing", { cookie })).text();
}

describe("CSRF and origin checks on form posts", () => {
  it("refuses a missing, wrong, other-purpose or other-session token with 403 and changes nothing", async () => {
    const { account, cookie, html } = await signedIn();
    await attachCard(account);
    const good = tokenFor(html, "/account/billing/auto-recharge");
    const otherPurpose = tokenFor(html, "/account/billing/portal");
    const secondCookie = await signIn(account.api_key);
    const otherSession = tokenFor(
      await billingHtml(secondCookie),
      "/account/billing/auto-recharge",
    );
    expect(otherSession).not.toBe(good);

    const form = { enabled: "on", package: "credits_1000" };
    for (const csrf of [undefined, "", "x".repeat(43), otherPurpose, otherSession]) {
      const res = await page("/account/billing/auto-recharge", {
        cookie,
        form: csrf === undefined ? form : { ...form, csrf },
      });
      expect(res.status).toBe(403);
      expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
      expect(await res.text()).toContain("This form could not be accepted");
    }
    // The right token from the wrong place is refused too.
    const elsewhere: Array<Record<string, string>> = [
      { Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" },
      { Origin: "https://evil.example" },
      { "Sec-Fetch-Site": "same-site" },
    ];
    for (const headers of elsewhere) {
      const res = await page("/account/billing/auto-recharge", {
        cookie,
        form: { ...form, csrf: good },
        headers,
      });
      expect(res.status).toBe(403);
      await res.arrayBuffer();
    }
    expect((await autoRecharge(account)).enabled).toBe(false);

    // And the same post with everything right goes through.
    const ok = await page("/account/billing/auto-recharge", {
      cookie,
      form: { ...form, csrf: good },
    });
    expect(ok.status).toBe(303);
    await ok.arrayBuffer();
    expect((await autoRecharge(account)).enabled).toBe(true);
  });

  it("sends a post without a session to the sign-in form (401)", async () => {
    const res = await page("/account/billing/auto-recharge", {
      form: { enabled: "on", package: "credits_1000", csrf: "x" },
    });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('action="/account/sign-in"');
  });

  it("signs out only with the sign-out token, clearing the cookie", async () => {
    const { cookie, html } = await signedIn();
    const refused = await page("/account/sign-out", { cookie, form: { csrf: "nope" } });
    expect(refused.status).toBe(403);
    await refused.arrayBuffer();

    const res = await page("/account/sign-out", {
      cookie,
      form: { csrf: tokenFor(html, "/account/sign-out") },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing?notice=signed-out");
    await res.arrayBuffer();
    const cleared = res.headers.get("Set-Cookie") ?? "";
    expect(cleared).toMatch(/^tg_session=;/);
    expect(cleared).toContain("Max-Age=0");
    const after = await (await page("/account/billing?notice=signed-out")).text();
    expect(after).toContain("You are signed out.");
  });
});

describe("auto-recharge on the page", () => {
  it("without a payment method: says to add one first (409) and stays off", async () => {
    const { account, cookie, html } = await signedIn();
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_3000",
        csrf: tokenFor(html, "/account/billing/auto-recharge"),
      },
    });
    expect(res.status).toBe(409);
    const body = await res.text();
    expect(body).toContain('role="alert"');
    expect(body).toContain("Add a payment method first");
    expect(await autoRecharge(account)).toMatchObject({ enabled: false });
  });

  it("with a card: enabling and changing the package show up in the API and on the page", async () => {
    const { account, cookie, html } = await signedIn();
    await attachCard(account);
    const csrf = tokenFor(html, "/account/billing/auto-recharge");
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: { enabled: "on", package: "credits_3000", csrf },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing?notice=auto-recharge-saved");
    await res.arrayBuffer();
    expect(await autoRecharge(account)).toMatchObject({ enabled: true, package: "credits_3000" });

    const shown = await (
      await page("/account/billing?notice=auto-recharge-saved", { cookie })
    ).text();
    expect(shown).toContain("Auto-recharge settings saved.");
    expect(shown).toMatch(
      /<input type="checkbox" id="ar-enabled" name="enabled" value="on" checked=""/,
    );
    expect(shown).toContain(
      '<option value="credits_3000" selected="">3,000 credits ($17)</option>',
    );

    // Unchecked box: off, the package kept.
    const off = await page("/account/billing/auto-recharge", {
      cookie,
      form: { package: "credits_9000", csrf },
    });
    expect(off.status).toBe(303);
    await off.arrayBuffer();
    expect(await autoRecharge(account)).toMatchObject({ enabled: false, package: "credits_9000" });
  });

  it("refuses an unknown package with a 400 page", async () => {
    const { cookie, html } = await signedIn();
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_5",
        csrf: tokenFor(html, "/account/billing/auto-recharge"),
      },
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("package: choose one of the credit packages");
  });

  it("shows the last failed recharge plainly", async () => {
    const { account, cookie } = await signedIn();
    await attachCard(account, "pm_card_chargeDeclined");
    await setBalance(account, { monthly: 50, purchased: 0 });
    const html = await billingHtml(cookie);
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_1000",
        csrf: tokenFor(html, "/account/billing/auto-recharge"),
      },
    });
    expect(res.status).toBe(303);
    await res.arrayBuffer();
    await eventually(async () => {
      expect((await autoRecharge(account)).last_failure?.code).toBe("card_declined");
    });
    const shown = await billingHtml(cookie);
    expect(shown).toContain("The last recharge failed on");
    expect(shown).toContain("<code>card_declined</code>");
    expect(shown).toContain("Auto-recharge was turned off.");
    expect(shown).toMatch(/data-type="auto_recharge" data-status="failed"/);
  });
});

describe("the rest of the page", () => {
  it("shows this cycle's usage, the history and the advice", async () => {
    const { account, cookie } = await signedIn("starter");
    for (let i = 0; i < 2; i++) {
      const res = await classify(account);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    await runDurableObjectAlarm(ledgerFor(env, account.id));
    const html = await billingHtml(cookie);
    expect(html).toContain('<svg class="chart"');
    expect(html).toContain('aria-labelledby="usage-chart-title usage-chart-desc"');
    expect(html).toMatch(/<desc id="usage-chart-desc">2 credits used from /);
    // The table fallback has today's numbers: 2 requests, 2 credits.
    expect(html).toMatch(/<td class="num">2<\/td><td class="num">2<\/td><\/tr><\/tbody>/);
    expect(html).toMatch(/data-type="monthly_grant" data-status="succeeded"/);
    expect(html).toContain("At your last 7 days&#39; rate, credits reach 100 in ~");
    expect(html).toContain("Based on 2 credits used so far this cycle");
    // 2 credits this cycle fit every plan: Free with nothing to buy is cheapest.
    expect(html).toContain("Free would have cost $19.00 less than your Starter plan.");
  });

  it("creates a key shown once, and keeps the last active key", async () => {
    const { account, cookie, html } = await signedIn();
    const csrf = tokenFor(html, "/account/billing/keys");
    const res = await page("/account/billing/keys", { cookie, form: { csrf, name: "ci" } });
    expect(res.status).toBe(201);
    const created = await res.text();
    const key = /id="new-key" readonly="" value="(tg_test_[0-9A-Za-z]+)"/.exec(created)?.[1];
    expect(key).toBeTruthy();
    const check = await gateway("/v1/account", { key });
    expect(check.status).toBe(200);
    expect((await json<{ id: string }>(check)).id).toBe(account.id);
    // Never again: the next page view lists it by prefix and last four only.
    expect(await billingHtml(cookie)).not.toContain(key);

    // Revoke the new key, then the last one left is refused.
    const listed = await json<{ data: Array<{ id: string; name: string | null }> }>(
      await gateway("/v1/account/keys", { key: account.api_key }),
    );
    const ci = listed.data.find((k) => k.name === "ci");
    const revoke = await page(`/account/billing/keys/${ci?.id}/revoke`, { cookie, form: { csrf } });
    expect(revoke.status).toBe(303);
    expect(revoke.headers.get("Location")).toBe("/account/billing?notice=key-revoked");
    await revoke.arrayBuffer();
    await expectError(await gateway("/v1/account", { key }), 401, "invalid_api_key");
    const original = listed.data.find((k) => k.name === "default");
    const last = await page(`/account/billing/keys/${original?.id}/revoke`, {
      cookie,
      form: { csrf },
    });
    expect(last.status).toBe(409);
    expect(await last.text()).toContain("last active key");
    // Another account's key id is just not found.
    const other = await createAccount();
    const otherKeys = await json<{ data: Array<{ id: string }> }>(
      await gateway("/v1/account/keys", { key: other.api_key }),
    );
    const foreign = await page(`/account/billing/keys/${otherKeys.data[0]?.id}/revoke`, {
      cookie,
      form: { csrf },
    });
    expect(foreign.status).toBe(404);
    await foreign.arrayBuffer();
  });

  it("ends the session when its key is revoked, through the API or on the page", async () => {
    const { account, cookie } = await signedIn();
    const second = await json<{ id: string; key: string }>(
      await gateway("/v1/account/keys", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ scope: "full" }),
      }),
    );
    const keys = await json<{ data: Array<{ id: string; name: string | null }> }>(
      await gateway("/v1/account/keys", { key: second.key }),
    );
    const first = keys.data.find((k) => k.name === "default");
    const revoked = await gateway(`/v1/account/keys/${first?.id}`, {
      method: "DELETE",
      key: second.key,
    });
    expect(revoked.status).toBe(200);
    await revoked.arrayBuffer();
    const html = await (await page("/account/billing", { cookie })).text();
    expect(html).not.toContain("Credit Balance");
    expect(html).toContain('action="/account/sign-in"');

    // Signed in with the second key, revoking it on the page signs out at once.
    const cookie2 = await signIn(second.key);
    const third = await json<{ key: string }>(
      await gateway("/v1/account/keys", {
        method: "POST",
        key: second.key,
        body: JSON.stringify({ scope: "full" }),
      }),
    );
    expect(third.key).toBeTruthy();
    const page2 = await billingHtml(cookie2);
    const res = await page(`/account/billing/keys/${second.id}/revoke`, {
      cookie: cookie2,
      form: { csrf: tokenFor(page2, `/account/billing/keys/${second.id}/revoke`) },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing?notice=session-key-revoked");
    expect(res.headers.get("Set-Cookie")).toMatch(/^tg_session=;/);
    await res.arrayBuffer();
    expect(await billingHtmlOrSignIn(cookie2)).not.toContain("Credit Balance");
  });

  it("sends “Manage plan and billing” to a Stripe portal session, creating the customer if needed", async () => {
    const { account, cookie, html } = await signedIn();
    const csrf = tokenFor(html, "/account/billing/portal");
    const res = await page("/account/billing/portal", { cookie, form: { csrf } });
    expect(res.status).toBe(303);
    const location = res.headers.get("Location") ?? "";
    expect(location).toMatch(new RegExp(`^${env.STRIPE_API_URL}/p/session/bps_`));
    await res.arrayBuffer();
    // The portal's origin is allowed as a form target, since the post redirects there.
    expect(res.headers.get("Content-Security-Policy")).toContain(
      `form-action 'self' ${new URL(env.STRIPE_API_URL).origin}`,
    );

    await db.update(accounts).set({ stripeCustomerId: null }).where(eq(accounts.id, account.id));
    const none = await page("/account/billing/portal", { cookie, form: { csrf } });
    expect(none.status).toBe(303);
    await none.arrayBuffer();
    const row = await db.select().from(accounts).where(eq(accounts.id, account.id)).get();
    expect(row?.stripeCustomerId).toMatch(/^cus_/);
  });

  it("answers unknown page paths with an HTML 404, while API errors stay JSON", async () => {
    const root = await page("/account");
    expect(root.status).toBe(303);
    expect(root.headers.get("Location")).toBe("/account/billing");
    expectSecurityHeaders(root);
    await root.arrayBuffer();
    const res = await page("/account/nope");
    expect(res.status).toBe(404);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expectSecurityHeaders(res);
    expect(await res.text()).toContain("Page not found");
    const api = await gateway("/v1/account/nope", { headers: { Cookie: "tg_session=x" } });
    await expectError(api, 401, "invalid_api_key");
  });

  it("reloads once on a cross-site arrival, so the SameSite=Strict cookie is sent", async () => {
    const arrival = { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" };
    const res = await page("/account/billing", { headers: arrival });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain(
      '<meta http-equiv="refresh" content="0; url=/account/billing?resumed=1"/>',
    );
    const again = await page("/account/billing?resumed=1", { headers: arrival });
    expect(await again.text()).toContain('action="/account/sign-in"');
  });
});

describe("the account API with the dashboard session", () => {
  it("reads with the cookie alone, and changes only when the browser proves the origin", async () => {
    const { account, cookie } = await signedIn();
    await attachCard(account);
    const balance = await gateway("/v1/account/balance", { headers: { Cookie: cookie } });
    expect(balance.status).toBe(200);
    expect((await json<{ total: number }>(balance)).total).toBe(500);
    const usage = await gateway("/v1/account/usage?granularity=day", {
      headers: { Cookie: cookie },
    });
    expect(usage.status).toBe(200);
    await usage.arrayBuffer();

    const put = (headers: Record<string, string>) =>
      gateway("/v1/account/auto-recharge", {
        method: "PUT",
        headers: { Cookie: cookie, ...headers },
        body: JSON.stringify({ enabled: true }),
      });
    await expectError(await put({}), 401, "invalid_api_key");
    await expectError(
      await put({ Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" }),
      401,
      "invalid_api_key",
    );
    const ok = await put(SAME_ORIGIN);
    expect(ok.status).toBe(200);
    expect((await json<{ enabled: boolean }>(ok)).enabled).toBe(true);

    // Classification traffic never takes the session.
    await expectError(
      await gateway("/v1/classify", { method: "POST", headers: { Cookie: cookie }, body: "{}" }),
      401,
      "invalid_api_key",
    );
  });
});
