import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import {
  readSession,
  SESSION_IDLE_SECONDS,
  SESSION_MAX_SECONDS,
} from "../../src/accounts/sessions";
import { dbFor } from "../../src/db/client";
import { accounts } from "../../src/db/schema";
import type { AppEnv } from "../../src/http/context";
import { ledgerFor } from "../../src/ledger/client";
import { processRecharge } from "../../src/purchases/consumer";
import { loadBilling } from "../../src/web/billing/data";
import { HistoryRow } from "../../src/web/billing/history-sections";
import { COPY_SCRIPT, PASSKEY_SCRIPT } from "../../src/web/kit/security";
import { STYLES } from "../../src/web/kit/styles";
import { failHistoryWrites } from "../helpers/d1-faults";
import {
  admin,
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
import { expectLogs } from "../helpers/logs";
import {
  confirmSignIn,
  expectQuickstart,
  freshIp,
  SIGN_IN_LINK,
  signIn,
  withMailbox,
} from "../helpers/page";
import { loseQueueSends } from "../helpers/recharge";
import {
  attachCard,
  deliverSigned,
  eventsFor,
  eventually,
  invoicesOf,
  submitPage,
} from "../helpers/stripe";

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

/** The `name=value` pair a response sets for `name`, or "" when it sets none. */
function setCookiePair(res: Response, name: string): string {
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(";")[0] ?? "";
    if (pair.startsWith(`${name}=`)) return pair;
  }
  return "";
}

/** The sign-in form's token and the nonce cookie it goes with, as a signed-out browser has. */
async function signInForm(
  fetcher: (r: Request) => Promise<Response> = send,
): Promise<{ csrf: string; cookie: string }> {
  const res = await fetcher(new Request(`${BASE}/account/billing`));
  const html = await res.text();
  const csrf =
    /action="\/account\/sign-in"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"/.exec(
      html,
    )?.[1];
  expect(csrf, "the sign-in form's token").toBeTruthy();
  const cookie = setCookiePair(res, "tg_signin");
  expect(cookie).toMatch(/^tg_signin=[0-9A-Za-z]{24}$/);
  return { csrf: csrf ?? "", cookie };
}

/** Posts the sign-in form the way the browser does: with its token and nonce cookie. */
async function postSignIn(email: string, headers?: HeadersInit): Promise<Response> {
  const form = await signInForm();
  return page("/account/sign-in", {
    form: { email, csrf: form.csrf },
    cookie: form.cookie,
    headers: { "CF-Connecting-IP": freshIp(), ...Object.fromEntries(new Headers(headers)) },
  });
}

/**
 * Follows a form post's 303 back to the page, with the flash cookie it set (as a browser
 * does), and returns the page and the flash pair it was shown with.
 */
async function follow(res: Response, cookie: string): Promise<{ html: string; flash: string }> {
  expect(res.status).toBe(303);
  expect(res.headers.get("Location")).toBe("/account/billing");
  await res.arrayBuffer();
  const flash = setCookiePair(res, "tg_flash");
  const shown = await page("/account/billing", {
    cookie: [cookie, flash].filter(Boolean).join("; "),
  });
  expect(shown.status).toBe(200);
  // Read once: the page view clears it.
  if (flash) expect(setCookiePair(shown, "tg_flash")).toBe("tg_flash=");
  return { html: await shown.text(), flash };
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
  const cookie = await signIn(account);
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

/** At 50 credits, turns auto-recharge on with the page's form: a recharge starts at once. */
async function rechargeFromPage(account: TestAccount, cookie: string) {
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
  // Two scripts, each allowed by its hash: the "Copy key" button and the passkey forms.
  expect(directives["script-src"]).toHaveLength(2);
  for (const source of directives["script-src"] ?? []) {
    expect(source).toMatch(/^'sha256-[A-Za-z0-9+/]+=*'$/);
  }
  expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
  expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
  expect(res.headers.get("X-Frame-Options")).toBe("DENY");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
}

describe("signing in", () => {
  it("offers no API-key sign-in: the form asks for an email, and a key posted to it opens nothing", async () => {
    const account = await createAccount();
    const form = await signInForm();
    const res = await page("/account/sign-in", {
      form: { api_key: account.api_key, csrf: form.csrf },
      cookie: form.cookie,
    });
    expect(res.status).toBe(400);
    expect(setCookiePair(res, "tg_session")).toBe("");
    expect(await res.text()).toContain("Enter a valid email address");
    // Nor does the key as the email field, nor a key sent to the page as a bearer token.
    const asEmail = await postSignIn(account.api_key);
    expect(asEmail.status).toBe(400);
    await asEmail.arrayBuffer();
    const bearer = await page("/account/billing", {
      headers: { Authorization: `Bearer ${account.api_key}` },
    });
    expect(await bearer.text()).not.toContain("Credit Balance");
  });

  it("shows the sign-in form, as HTML with the security headers, when signed out", async () => {
    const res = await page("/account/billing");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expectSecurityHeaders(res);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html><html lang="en">/);
    expect(html).toContain('<label class="field" for="email">Email address</label>');
    expect(html).not.toContain("api_key");
    expect(html).toContain('action="/account/sign-in"');
    expect(html).not.toContain("Credit Balance");
  });

  it("answers the form the same for any address (202, no cookie), and emails a member a link", async () => {
    const account = await createAccount("starter");
    const mailbox = withMailbox();
    const form = await signInForm();
    const res = await send(
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: { ...SAME_ORIGIN, Cookie: form.cookie, "CF-Connecting-IP": freshIp() },
        body: new URLSearchParams({ email: account.email, csrf: form.csrf }),
        redirect: "manual",
      }),
      { env: mailbox.env },
    );
    expect(res.status).toBe(202);
    expect(setCookiePair(res, "tg_session")).toBe("");
    expect(await res.text()).toContain("Check your email");
    const token = SIGN_IN_LINK.exec(mailbox.sent.at(-1)?.text ?? "")?.[1];
    expect(token).toBeTruthy();
    const unknown = await postSignIn(`${crypto.randomUUID()}@example.com`);
    expect(unknown.status).toBe(202);
    expect(setCookiePair(unknown, "tg_session")).toBe("");
    await unknown.arrayBuffer();

    // The link's button signs in: an HttpOnly, Secure, SameSite=Strict cookie, an hour long.
    const signedIn = await confirmSignIn(token ?? "");
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get("Location")).toBe("/account/billing");
    expectSecurityHeaders(signedIn);
    await signedIn.arrayBuffer();
    const cookie = signedIn.headers.getSetCookie().find((c) => c.startsWith("tg_session=")) ?? "";
    const attributes = cookie.split(";").map((a) => a.trim());
    expect(attributes[0]).toMatch(/^tg_session=.+/);
    expect(attributes.slice(1).sort()).toEqual(
      ["HttpOnly", `Max-Age=${SESSION_IDLE_SECONDS}`, "Path=/", "SameSite=Strict", "Secure"].sort(),
    );
    // The cookie holds no key and no email, only ids and a signature.
    expect(decodeURIComponent(attributes[0] ?? "")).not.toContain(account.api_key);
    expect(decodeURIComponent(attributes[0] ?? "")).not.toContain(account.email);

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

  it("asks again for an address that is not one, with 400 and no cookie", async () => {
    for (const email of ["nope", "", "a@"]) {
      const res = await postSignIn(email);
      expect(res.status).toBe(400);
      expect(setCookiePair(res, "tg_session")).toBe("");
      expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
      expect(await res.text()).toContain("Enter a valid email address");
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
      const res = await postSignIn(account.email, headers);
      expect(res.status).toBe(403);
      expect(setCookiePair(res, "tg_session")).toBe("");
      await res.arrayBuffer();
    }
    // What Chromium sends for a same-origin form post under Referrer-Policy: no-referrer.
    const own = await postSignIn(account.email, {
      Origin: "null",
      "Sec-Fetch-Site": "same-origin",
    });
    expect(own.status).toBe(202);
    await own.arrayBuffer();
    // Without Sec-Fetch-Site (older browsers), a foreign Origin still decides.
    const form = await signInForm();
    const old = await send(
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: { Origin: "https://evil.example", Cookie: form.cookie },
        body: new URLSearchParams({ email: account.email, csrf: form.csrf }),
        redirect: "manual",
      }),
    );
    expect(old.status).toBe(403);
    await old.arrayBuffer();
  });

  it("carries a CSRF token on the sign-in form and refuses a sign-in without the right one", async () => {
    const account = await createAccount();
    const form = await signInForm();
    const other = await signInForm();
    expect(other.cookie).not.toBe(form.cookie);
    const attempts: Array<{ csrf?: string; cookie?: string }> = [
      {},
      { cookie: form.cookie },
      { csrf: form.csrf },
      { csrf: "x".repeat(43), cookie: form.cookie },
      // A token with another browser's nonce: what a forging site could at best obtain.
      { csrf: other.csrf, cookie: form.cookie },
    ];
    for (const attempt of attempts) {
      const res = await page("/account/sign-in", {
        form:
          attempt.csrf === undefined
            ? { email: account.email }
            : { email: account.email, csrf: attempt.csrf },
        cookie: attempt.cookie,
      });
      expect(res.status).toBe(403);
      expect(setCookiePair(res, "tg_session")).toBe("");
      expect(await res.text()).toContain("This form could not be accepted");
    }
    const ok = await page("/account/sign-in", {
      form: { email: account.email, csrf: form.csrf },
      cookie: form.cookie,
      headers: { "CF-Connecting-IP": freshIp() },
    });
    expect(ok.status).toBe(202);
    expect(setCookiePair(ok, "tg_session")).toBe("");
    await ok.arrayBuffer();
  });

  it("ends after an hour idle, is renewed while used, and ends 12 hours after sign-in whatever", async () => {
    const { account, cookie } = await signedIn();
    // readSession at a chosen "now", on a real request carrying the cookie; the answer's
    // renewed cookie, if any, is what the browser sends next.
    const probe = new Hono<AppEnv>().get("/", async (c) => {
      const at = Number(c.req.query("at"));
      return c.json({ session: await readSession(c, at) });
    });
    const at = async (ms: number, sent = cookie) => {
      const res = await probe.request(`/?at=${ms}`, { headers: { Cookie: sent } }, env);
      const { session } = await json<{ session: { accountId: string; role: string } | null }>(res);
      return { session, renewed: setCookiePair(res, "tg_session") };
    };
    const now = Date.now();
    const idle = SESSION_IDLE_SECONDS * 1000;
    expect((await at(now)).session).toMatchObject({ accountId: account.id, role: "owner" });
    expect((await at(now + idle - 60_000)).session?.accountId).toBe(account.id);
    expect((await at(now + idle + 1000)).session).toBeNull();
    // Used after 50 minutes: renewed, so it lives on past the first hour, hour by hour...
    let current = cookie;
    for (let t = now + 50 * 60_000; t < now + SESSION_MAX_SECONDS * 1000; t += 50 * 60_000) {
      const seen = await at(t, current);
      expect(seen.session?.accountId, `at +${(t - now) / 60_000} min`).toBe(account.id);
      if (seen.renewed) current = seen.renewed;
    }
    // ...but not past 12 hours after sign-in.
    expect((await at(now + SESSION_MAX_SECONDS * 1000 + 1000, current)).session).toBeNull();
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
    const mailbox = withMailbox({ SESSION_SECRET: undefined });
    const call = (request: Request) => send(request, { env: mailbox.env });
    const asked = await gateway("/v1/sign-in", {
      method: "POST",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email: account.email }),
      env: mailbox.env,
    });
    expect(asked.status).toBe(202);
    const token = SIGN_IN_LINK.exec(mailbox.sent.at(-1)?.text ?? "")?.[1] ?? "";
    const opened = await call(new Request(`${BASE}/account/sign-in/confirm?token=${token}`));
    const openedHtml = await opened.text();
    const derived = await call(
      new Request(`${BASE}/account/sign-in/confirm`, {
        method: "POST",
        headers: { ...SAME_ORIGIN, Cookie: setCookiePair(opened, "tg_signin") },
        body: new URLSearchParams({
          token,
          account_id: account.id,
          csrf: /name="csrf" value="([^"]+)"/.exec(openedHtml)?.[1] ?? "",
        }),
        redirect: "manual",
      }),
    );
    expect(derived.status).toBe(303);
    const cookie = setCookiePair(derived, "tg_session");
    const withDerived = await call(
      new Request(`${BASE}/account/billing`, { headers: { Cookie: cookie } }),
    );
    expect(await withDerived.text()).toContain("Credit Balance");
    // Signed with another key, so the configured SESSION_SECRET does not accept it.
    expect(await billingHtmlOrSignIn(cookie)).not.toContain("Credit Balance");

    const none = { ...env, SESSION_SECRET: undefined, ADMIN_TOKEN: undefined };
    const refused = await send(
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: SAME_ORIGIN,
        body: new URLSearchParams({ email: account.email, csrf: "x" }),
        redirect: "manual",
      }),
      { env: none },
    );
    expect(refused.status).toBe(503);
    expect(refused.headers.get("Set-Cookie")).toBeNull();
    expect(await refused.text()).toContain("Sign-in is not available");
    const shown = await send(new Request(`${BASE}/account/billing`), { env: none });
    expect(await shown.text()).toContain("Sign-in is not available");
  });
});

/** The flash cookie's bytes as text, to check that nothing in it is readable. */
function atobSafe(pair: string): string {
  const value = pair.split("=")[1] ?? "";
  try {
    return atob(value.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return "";
  }
}

async function billingHtmlOrSignIn(cookie: string): Promise<string> {
  return (await page("/account/billing", { cookie })).text();
}

describe("CSRF and origin checks on form posts", () => {
  it("refuses a missing, wrong, other-purpose or other-session token with 403 and changes nothing", async () => {
    const { account, cookie, html } = await signedIn();
    await attachCard(account);
    const good = tokenFor(html, "/account/billing/auto-recharge");
    const otherPurpose = tokenFor(html, "/account/billing/portal");
    const secondCookie = await signIn(account);
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

  it("refuses a post on which neither Origin nor Sec-Fetch-Site vouches for this origin, even with the right token", async () => {
    // Hono's csrf middleware is the origin check: a browser we support sends at least one of
    // the two headers; a post with neither (or only `Origin: null`) is not taken on trust.
    const { account, cookie, html } = await signedIn();
    await attachCard(account);
    const csrf = tokenFor(html, "/account/billing/auto-recharge");
    const unvouched: Array<Record<string, string>> = [{}, { Origin: "null" }];
    for (const headers of unvouched) {
      const res = await send(
        new Request(`${BASE}/account/billing/auto-recharge`, {
          method: "POST",
          headers: { ...headers, Cookie: cookie },
          body: new URLSearchParams({ enabled: "on", package: "credits_1000", csrf }),
          redirect: "manual",
        }),
      );
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("This form could not be accepted");
    }
    expect((await autoRecharge(account)).enabled).toBe(false);
    // Sign-in and sign-out likewise.
    const form = await signInForm();
    const signInPost = await send(
      new Request(`${BASE}/account/sign-in`, {
        method: "POST",
        headers: { Cookie: form.cookie },
        body: new URLSearchParams({ email: account.email, csrf: form.csrf }),
        redirect: "manual",
      }),
    );
    expect(signInPost.status).toBe(403);
    expect(setCookiePair(signInPost, "tg_session")).toBe("");
    await signInPost.arrayBuffer();
    const signOut = await send(
      new Request(`${BASE}/account/sign-out`, {
        method: "POST",
        headers: { Cookie: cookie },
        body: new URLSearchParams({ csrf: tokenFor(html, "/account/sign-out") }),
        redirect: "manual",
      }),
    );
    expect(signOut.status).toBe(403);
    expect(setCookiePair(signOut, "tg_session")).toBe("");
    await signOut.arrayBuffer();
    expect(await billingHtml(cookie)).toContain('action="/account/sign-out"');
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
    const cleared = res.headers.getSetCookie().find((c) => c.startsWith("tg_session=")) ?? "";
    expect(cleared).toMatch(/^tg_session=;/);
    expect(cleared).toContain("Max-Age=0");
    const after = await follow(res, "");
    expect(after.html).toContain("You are signed out.");
    // One-time: the same page again (a reload, with or without the old flash) says nothing.
    expect(await (await page("/account/billing")).text()).not.toContain("You are signed out.");
    const replayed = await page("/account/billing", { cookie: after.flash });
    expect(await replayed.text()).toContain("You are signed out.");
    // (A browser no longer has that cookie: the page view above cleared it. A notice is no
    // query parameter either: the old `?notice=` shows nothing.)
    expect(await (await page("/account/billing?notice=signed-out")).text()).not.toContain(
      "You are signed out.",
    );
  });

  it("a cross-site post to sign-out leaves the session valid, with or without the cookie", async () => {
    const { cookie } = await signedIn();
    const crossSite = { Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" };
    // A browser does not send the SameSite=Strict cookie with another site's post, but it does
    // apply the Set-Cookie of the answer (a top-level navigation): that must not clear it.
    for (const sent of [undefined, cookie]) {
      const res = await page("/account/sign-out", { cookie: sent, form: {}, headers: crossSite });
      expect(res.status).toBe(403);
      await res.arrayBuffer();
      expect(setCookiePair(res, "tg_session")).toBe("");
    }
    expect(await billingHtml(cookie)).toContain('action="/account/sign-out"');
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
    const { html: body } = await follow(res, cookie);
    expect(body).toContain('role="alert"');
    expect(body).toContain("Add a payment method first");
    expect(await autoRecharge(account)).toMatchObject({ enabled: false });
    // The notice was for that post only.
    expect(await billingHtml(cookie)).not.toContain("Add a payment method first");
  });

  it("with a card: enabling and changing the package show up in the API and on the page", async () => {
    const { account, cookie, html } = await signedIn();
    await attachCard(account);
    const csrf = tokenFor(html, "/account/billing/auto-recharge");
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: { enabled: "on", package: "credits_3000", csrf },
    });
    const { html: shown } = await follow(res, cookie);
    expect(await autoRecharge(account)).toMatchObject({ enabled: true, package: "credits_3000" });
    expect(shown).toContain("Auto-recharge settings saved.");
    expect(await billingHtml(cookie)).not.toContain("Auto-recharge settings saved.");
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
    await attachCard(account, "pm_card_chargeCustomerFail");
    await rechargeFromPage(account, cookie);
    await eventually(async () => {
      expect((await autoRecharge(account)).last_failure?.code).toBe("card_declined");
    });
    const shown = await billingHtml(cookie);
    expect(shown).toContain("The last recharge failed on");
    expect(shown).toContain("the card was declined, code <code>card_declined</code>");
    expect(shown).toContain("nothing was added and nothing was charged");
    expect(shown).toContain("Auto-recharge was turned off because of it.");
    // The failed row: no "+1,000", no "$7" as if charged; what happened, why, what to do.
    const row =
      /<tr data-type="auto_recharge" data-status="failed"[^>]*>.*?<\/tr>/.exec(shown)?.[0] ?? "";
    expect(row).not.toBe("");
    expect(row).not.toContain("+1,000");
    expect(row).not.toContain("$7");
    expect(row).toContain("none added");
    expect(row).toContain("not charged");
    expect(row).toContain("the card was declined");
    expect(row).toContain('href="#buy-credits"');

    // Back on with a working card: the failure stays as history, "turned off" goes.
    await attachCard(account);
    await setBalance(account, { monthly: 500, purchased: 0 });
    const again = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_1000",
        csrf: tokenFor(shown, "/account/billing/auto-recharge"),
      },
    });
    const { html: after } = await follow(again, cookie);
    expect((await autoRecharge(account)).enabled).toBe(true);
    expect(after).toContain("The last recharge failed on");
    expect(after).not.toContain("was turned off");
    // Still the newest purchase: its row offers the retry.
    expect(after).toContain("Retry: buy credits now");

    // A later purchase succeeded: that failure was answered, its row offers no retry any more.
    const topUp = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(topUp.status).toBe(202);
    await topUp.arrayBuffer();
    await eventually(async () => {
      const html = await billingHtml(cookie);
      expect(html).toMatch(/<tr data-type="top_up" data-status="succeeded"[^>]*>/);
    });
    const later = await billingHtml(cookie);
    const failedRow =
      /<tr data-type="auto_recharge" data-status="failed"[^>]*>.*?<\/tr>/.exec(later)?.[0] ?? "";
    expect(failedRow).toContain("the card was declined");
    expect(failedRow).not.toContain("Retry");
    expect(later).not.toContain('href="#buy-credits"');
  });

  it("a recharge waiting for authentication is said once, with its link, and nothing else is offered (page and API)", async () => {
    const { account, cookie } = await signedIn();
    await attachCard(account, "pm_card_authenticationRequired");
    await rechargeFromPage(account, cookie);
    await eventually(async () => {
      expect((await autoRecharge(account)).last_failure?.code).toBe("authentication_required");
    });
    const shown = await billingHtml(cookie);
    const notice =
      /<div class="notice warn" id="payment-waiting"[^>]*>.*?<\/div>/s.exec(shown)?.[0] ?? "";
    expect(notice).toContain(
      "Your auto-recharge of 1,000 credits ($7) is waiting for you to confirm the payment with your bank.",
    );
    expect(notice).toContain("Nothing has been charged or added yet.");
    expect(notice).toMatch(/href="[^"]+\/i\/in_[^"]+"[^>]*>Complete the payment<\/a>/);
    expect(notice).not.toContain("failed");
    // One state, said once: not also "being processed", not a second "confirm" box.
    expect(shown.match(/confirm the payment/g)).toHaveLength(1);
    expect(shown).not.toContain("is being processed");
    expect(shown).not.toContain('id="last-failure"');
    // The limit counts the waiting purchase, and the page and the API say the same amount.
    expect(shown).toContain("Credit purchases this month: <strong>$7</strong>");
    expect(
      (
        await json<{ spent_this_month_cents: number }>(
          await gateway("/v1/account/limits", { key: account.api_key }),
        )
      ).spent_this_month_cents,
    ).toBe(700);
    // No second purchase offered: no "Buy credits now" form, and its review step sends back.
    expect(shown).not.toContain('action="/account/billing/top-up"');
    expect(shown).toContain('id="buy-paused"');
    expect(shown).not.toContain("Buy a package now");
    const review = await page("/account/billing/top-up?package=credits_3000", { cookie });
    expect((await follow(review, cookie)).html).toContain(
      "Not bought: a payment is waiting for your confirmation.",
    );
    // The API refuses it too, naming what waits and where to complete it.
    const refused = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_3000" }),
    });
    const body = await expectError(refused, 409, "payment_pending");
    expect(body.error).toMatchObject({
      purchase: { type: "auto_recharge", action_url: expect.stringMatching(/\/i\/in_/) },
    });
    const rows = await json<{ data: Array<{ type: string }> }>(
      await gateway("/v1/account/transactions", { key: account.api_key }),
    );
    expect(rows.data.filter((t) => t.type === "top_up")).toHaveLength(0);
  });

  it("a top-up paid while the auto-recharge still waits: the auto-recharge's state stays on the page", async () => {
    const { account, cookie } = await signedIn();
    await attachCard(account, "pm_card_authenticationRequired");
    // The queue's sends are held (the test runs the consumer), for this test only.
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    const jobs = await loseQueueSends(account);
    await rechargeFromPage(account, cookie);
    // Bought while the auto-recharge was still pending (not yet waiting): allowed.
    const topUp = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_3000" }),
    });
    expect(topUp.status).toBe(202);
    const { id: topUpId } = await json<{ id: string }>(topUp);
    expect(jobs.map((j) => j.kind)).toEqual(["auto_recharge", "top_up"]);
    for (const job of jobs) expect(await processRecharge(job, env)).toBe("requires_action");
    const both = await billingHtml(cookie);
    expect(both).toContain("Two purchases are waiting for you to confirm the payment");
    expect(both).toContain(">Complete the auto-recharge payment ($7)</a>");
    expect(both).toContain(">Complete the top-up payment ($17)</a>");
    // The API refuses another top-up, naming the oldest purchase that waits.
    const third = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    const pending = await expectError(third, 409, "payment_pending");
    expect(pending.error).toMatchObject({
      purchase: { id: jobs[0]?.recharge_id, type: "auto_recharge" },
    });

    // The customer completes the top-up only; Stripe reports it paid.
    const customer = account.stripe_customer_id as string;
    const invoice = (await invoicesOf(customer)).find((i) => i.metadata.recharge_id === topUpId);
    const paid = await submitPage(`${env.STRIPE_API_URL}/i/${invoice?.id}/pay`, {
      authenticate: "true",
    });
    expect(paid.status).toBe(303);
    await paid.arrayBuffer();
    const events = await json<{ data: Array<{ data: { object: { id: string } } }> }>(
      await fetch(`${env.STRIPE_API_URL}/v1/events?type=invoice.paid&limit=100`, {
        headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
      }),
    );
    const event = events.data.find((e) => e.data.object.id === invoice?.id);
    const delivered = await deliverSigned(event);
    expect(delivered.status).toBe(200);
    await delivered.arrayBuffer();
    await eventually(async () => {
      const balance = await json<{ purchased: number }>(
        await gateway("/v1/account/balance", { key: account.api_key }),
      );
      expect(balance.purchased).toBe(3_000);
    });

    // The auto-recharge still waits: said, with its own link; still nothing else to buy.
    const after = await billingHtml(cookie);
    const notice =
      /<div class="notice warn" id="payment-waiting"[^>]*>.*?<\/div>/s.exec(after)?.[0] ?? "";
    expect(notice).toContain("Your auto-recharge of 1,000 credits ($7) is waiting");
    expect(notice).toContain(">Complete the payment</a>");
    expect(after).not.toContain("is being processed");
    expect(after).not.toContain('action="/account/billing/top-up"');
  });

  it("says why an operator changed the balance, in the history and in the API", async () => {
    const { account, cookie } = await signedIn();
    const res = await admin(`/accounts/${account.id}/credits`, {
      method: "POST",
      body: JSON.stringify({ monthly: -290, reason: "Refund of duplicate requests <2026-11>" }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const listed = await json<{
      data: Array<{ type: string; credits: number; description: string | null }>;
    }>(await gateway("/v1/account/transactions", { key: account.api_key }));
    expect(listed.data[0]).toMatchObject({
      type: "adjustment",
      credits: -290,
      description: "Refund of duplicate requests <2026-11>",
    });
    // Rows without a reason say so with null, not a missing field.
    expect(listed.data.find((t) => t.type === "monthly_grant")).toMatchObject({
      description: null,
    });
    const html = await billingHtml(cookie);
    const row =
      /<tr data-type="adjustment" data-status="succeeded"[^>]*>.*?<\/tr>/.exec(html)?.[0] ?? "";
    expect(row).toContain("-290");
    // Escaped: an operator's text is never markup.
    expect(row).toContain(
      '<span class="muted desc">Refund of duplicate requests &lt;2026-11&gt;</span>',
    );
  });

  it("an operator's adjustment whose history write fails is written once by the outbox retry", async () => {
    expectLogs([/history row not written to D1 yet/]);
    const account = await createAccount();
    const adjustments = async () =>
      (
        await json<{ data: Array<{ type: string; credits: number; description: string | null }> }>(
          await gateway("/v1/account/transactions", { key: account.api_key }),
        )
      ).data.filter((t) => t.type === "adjustment");
    const failing = failHistoryWrites();
    const res = await admin(`/accounts/${account.id}/credits`, {
      method: "POST",
      headers: { "Idempotency-Key": "goodwill-1" },
      body: JSON.stringify({ purchased: 250, reason: "Goodwill credit" }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(await adjustments()).toHaveLength(0);
    failing.mockRestore();
    expect(await runDurableObjectAlarm(ledgerFor(env, account.id))).toBe(true);
    expect(await adjustments()).toEqual([
      expect.objectContaining({ credits: 250, description: "Goodwill credit" }),
    ]);
    // A retried request applies nothing twice and writes no second row.
    const again = await admin(`/accounts/${account.id}/credits`, {
      method: "POST",
      headers: { "Idempotency-Key": "goodwill-1" },
      body: JSON.stringify({ purchased: 250, reason: "Goodwill credit" }),
    });
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    await runDurableObjectAlarm(ledgerFor(env, account.id));
    expect(await adjustments()).toHaveLength(1);
  });

  it("renders a row's action and invoice links when the rows carry them", async () => {
    const html = String(
      await HistoryRow({
        t: {
          id: "txn_1",
          type: "top_up",
          status: "pending",
          credits: 1_000,
          amount_cents: 700,
          currency: "usd",
          package: "credits_1000",
          failure_code: null,
          description: null,
          created_at: new Date().toISOString(),
          action_url: "https://invoice.example/pay/1",
          invoice_url: "https://invoice.example/i/1",
        },
      }),
    );
    expect(html).toContain('href="https://invoice.example/pay/1"');
    expect(html).toContain("Complete the payment");
    expect(html).toContain('href="https://invoice.example/i/1"');
    expect(html).toContain("1,000 when paid");
    expect(html).toContain("$7, not yet charged");
  });
});

describe("the rest of the page", () => {
  it("counts a request in this cycle's usage as soon as it is served, and says so", async () => {
    const { account, cookie } = await signedIn("starter");
    for (let i = 0; i < 3; i++) {
      const res = await classify(account);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // No checkpoint ran: the requests are only in the ledger's open minute.
    const html = await billingHtml(cookie);
    expect(html).toMatch(/<desc id="usage-chart-desc">3 credits used from /);
    expect(html).toMatch(
      /Balances and usage are read when this page loads and include every request\s+served/,
    );
    expect(html).not.toContain("every 30 seconds");
  });

  it("shows this cycle's usage, the history and the advice", async () => {
    const { account, cookie } = await signedIn("starter");
    for (let i = 0; i < 2; i++) {
      const res = await classify(account);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    await runDurableObjectAlarm(ledgerFor(env, account.id));
    const html = await billingHtml(cookie);
    expect(html).toContain('<svg class="chart chart-wide"');
    expect(html).toContain('aria-labelledby="usage-chart-title usage-chart-desc"');
    expect(html).toMatch(/<desc id="usage-chart-desc">2 credits used from /);
    // The table fallback has today's numbers: 2 requests, 2 credits.
    expect(html).toMatch(/<td class="num">2<\/td><td class="num">2<\/td><\/tr><\/tbody>/);
    expect(html).toMatch(/data-type="monthly_grant" data-status="succeeded"/);
    // A new account: no runway from one day, no plan advice from the first minutes of a cycle.
    expect(html).toContain(
      "Not enough history for a runway estimate yet: it needs 3 days of usage, and this account has 0 days.",
    );
    expect(html).toContain("Not enough usage yet to compare plans: the advisor needs 7 days");
    expect(html).toContain("with 2 credits used.");
    expect(html).not.toContain("would have cost");
    expect(html).not.toContain("would cost");

    // Ten days older (the account's creation moved back; the page read "ten days later"):
    // the runway says "more than a year", the advice projects over the whole cycle.
    const tenDays = 10 * 86_400_000;
    await db
      .update(accounts)
      .set({ createdAt: new Date(Date.now() - tenDays).toISOString() })
      .where(eq(accounts.id, account.id));
    const later = await loadBilling(env, db, account.id, Date.now() + tenDays);
    expect(later?.historyDays).toBe(20);
    expect(later?.evidence).toMatchObject({
      period: "this_cycle",
      usedCredits: 2,
      days: 10,
      projectedCredits: expect.any(Number),
    });
    // 2 credits in 10 days of a ~30-day cycle: about 6 over the cycle.
    expect(later?.evidence.projectedCredits).toBeGreaterThanOrEqual(6);
    expect(later?.evidence.projectedCredits).toBeLessThanOrEqual(7);
    expect(later?.advice?.sentence).toBe(
      "At this rate Free would cost $19.00 less than your Starter plan over the whole cycle.",
    );
    const now = await billingHtml(cookie);
    // 2,998 credits at 2 credits in 7 days: thousands of days, said as more than a year.
    expect(now).toContain("At your last 7 days&#39; rate, credits reach 100 in more than a year.");
    expect(now).not.toMatch(/in ~[\d,]+ days/);
  });

  it("buys credits now only after a confirmation, once however often the confirmation is posted", async () => {
    const { account, cookie, html } = await signedIn();
    // No card: the section says to add one, and the confirmation refuses.
    expect(html).toContain("Add a card first (under Plan and payment) to buy credits.");
    await attachCard(account);
    await setBalance(account, { monthly: 0, purchased: 0 });
    const zero = await billingHtml(cookie);
    expect(zero).toContain("Your balance is 0 credits and auto-recharge is off");
    expect(zero).toContain('<form method="get" action="/account/billing/top-up"');

    // Step one is a GET: it shows what would be bought and buys nothing.
    const review = await page("/account/billing/top-up?package=credits_3000", { cookie });
    expect(review.status).toBe(200);
    const confirm = await review.text();
    expect(confirm).toContain("Buy 3,000 credits?");
    expect(confirm).toContain("visa ending 4242");
    expect(confirm).toContain("Buy now for $17");
    const request = /name="request" value="([0-9A-Za-z]{24})"/.exec(confirm)?.[1] ?? "";
    expect(request).not.toBe("");
    const topUps = async () =>
      (
        await json<{ data: Array<{ type: string; status: string }> }>(
          await gateway("/v1/account/transactions", { key: account.api_key }),
        )
      ).data.filter((t) => t.type === "top_up");
    expect(await topUps()).toHaveLength(0);
    const bad = await page("/account/billing/top-up?package=credits_5", { cookie });
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();

    const form = {
      csrf: tokenFor(confirm, "/account/billing/top-up"),
      package: "credits_3000",
      request,
    };
    const first = await page("/account/billing/top-up", { cookie, form });
    const { html: after } = await follow(first, cookie);
    expect(after).toContain("Buying 3,000 credits for $17");
    // The same confirmation posted again (double click, resubmitted form): the same top-up.
    const second = await page("/account/billing/top-up", { cookie, form });
    await follow(second, cookie);
    await eventually(async () => {
      const rows = await topUps();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.status).toBe("succeeded");
    });
    // The row says succeeded a moment before the ledger grants.
    await eventually(async () =>
      expect(
        (
          await json<{ purchased: number }>(
            await gateway("/v1/account/balance", { key: account.api_key }),
          )
        ).purchased,
      ).toBe(3_000),
    );

    // Without the top-up token: refused, nothing bought.
    const forged = await page("/account/billing/top-up", {
      cookie,
      form: { ...form, request: "A".repeat(24), csrf: tokenFor(after, "/account/billing/limits") },
    });
    expect(forged.status).toBe(403);
    await forged.arrayBuffer();
    expect(await topUps()).toHaveLength(1);
  });

  it("shows and sets the spending limit, and says why auto-recharge is paused", async () => {
    const { account, cookie, html } = await signedIn();
    expect(html).toMatch(
      /Credit purchases this month: <strong>\$0<\/strong> of your <strong>\$200<\/strong> monthly limit/,
    );
    const csrf = tokenFor(html, "/account/billing/limits");
    const set = await page("/account/billing/limits", { cookie, form: { csrf, limit: "$10" } });
    const { html: shown } = await follow(set, cookie);
    expect(shown).toContain("Spending limit saved: at most $10 of purchases a month.");
    expect(shown).toContain('id="limit-dollars" name="limit" value="10"');
    expect(
      (
        await json<{ monthly_spend_limit_cents: number | null }>(
          await gateway("/v1/account/limits", { key: account.api_key }),
        )
      ).monthly_spend_limit_cents,
    ).toBe(1_000);

    // $7 fits under $10; a second $7 does not: auto-recharge pauses, and the page says why.
    await attachCard(account);
    const on = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_1000",
        csrf: tokenFor(shown, "/account/billing/auto-recharge"),
      },
    });
    await follow(on, cookie);
    await setBalance(account, { monthly: 50, purchased: 0 });
    await eventually(async () => {
      expect(
        (
          await json<{ purchased: number }>(
            await gateway("/v1/account/balance", { key: account.api_key }),
          )
        ).purchased,
      ).toBe(1_000);
    });
    await setBalance(account, { monthly: 0, purchased: 50 });
    await eventually(async () => {
      const settings = await json<{ paused: string | null }>(
        await gateway("/v1/account/auto-recharge", { key: account.api_key }),
      );
      expect(settings.paused).toBe("spending_limit_reached");
    });
    const paused = await billingHtml(cookie);
    expect(paused).toContain("Auto-recharge is paused until");
    expect(paused).toContain("over your spending limit of $10");
    expect(paused).toMatch(
      /Credit purchases this month: <strong>\$7<\/strong> of your <strong>\$10<\/strong> monthly limit/,
    );

    // Invalid amounts are a 400 naming the field; empty removes the limit.
    const bad = await page("/account/billing/limits", { cookie, form: { csrf, limit: "ten" } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("limit: enter an amount in dollars");
    const removed = await page("/account/billing/limits", { cookie, form: { csrf, limit: "" } });
    expect((await follow(removed, cookie)).html).toContain("Spending limit removed");
    expect(
      (
        await json<{ monthly_spend_limit_cents: number | null }>(
          await gateway("/v1/account/limits", { key: account.api_key }),
        )
      ).monthly_spend_limit_cents,
    ).toBeNull();
  });

  it("offers Checkout only for what a plan does not have: both plans on Free, Pro on complimentary Starter, none on Pro", async () => {
    const offered = async (plan: "free" | "starter" | "pro") => {
      const { cookie } = await signedIn(plan);
      const html = await billingHtml(cookie);
      return [...html.matchAll(/<button[^>]*name="plan"[^>]*value="(\w+)"/g)].map((m) => m[1]);
    };
    expect(await offered("free")).toEqual(["starter", "pro"]);
    expect(await offered("starter")).toEqual(["pro"]);
    expect(await offered("pro")).toEqual([]);
  });

  it("shows and sets the low-balance email, and turns it off", async () => {
    const { account, cookie, html } = await signedIn();
    expect(html).toContain("Off: no email when your balance runs low.");
    const csrf = tokenFor(html, "/account/billing/alerts");
    const set = await page("/account/billing/alerts", {
      cookie,
      form: { csrf, low_balance_credits: "1,000" },
    });
    const { html: shown } = await follow(set, cookie);
    expect(shown).toContain(
      "Low-balance email saved: we email you when your balance falls to 1,000 credits or below.",
    );
    expect(shown).toContain('id="alert-credits" name="low_balance_credits" value="1000"');
    // The free plan's 500 credits are already below it: the page says the next email waits.
    expect(shown).toContain("is already at or below this level");
    expect(await json(await gateway("/v1/account/alerts", { key: account.api_key }))).toEqual({
      low_balance_credits: 1_000,
    });

    const bad = await page("/account/billing/alerts", {
      cookie,
      form: { csrf, low_balance_credits: "lots" },
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("low_balance_credits: enter a whole number of credits");
    const off = await page("/account/billing/alerts", {
      cookie,
      form: { csrf, low_balance_credits: "" },
    });
    expect((await follow(off, cookie)).html).toContain("Low-balance email turned off.");
    expect(await json(await gateway("/v1/account/alerts", { key: account.api_key }))).toEqual({
      low_balance_credits: null,
    });
  });

  it("offers no Revoke for the last full key, and says why", async () => {
    const { html } = await signedIn();
    expect(html).not.toMatch(/\/keys\/[^/"]+\/revoke/);
    expect(html).toContain("Kept: the last full key (create another to revoke it)");
  });

  it("creates a key shown once, and keeps the last active key", async () => {
    const { account, cookie, html } = await signedIn();
    const csrf = tokenFor(html, "/account/billing/keys");
    const res = await page("/account/billing/keys", { cookie, form: { csrf, name: "ci" } });
    // Post/redirect/get: the key is not in the redirect, nor in the flash cookie in clear.
    expect(res.status).toBe(303);
    const flashCookie = setCookiePair(res, "tg_flash");
    expect(res.headers.getSetCookie().find((c) => c.startsWith("tg_flash="))).toMatch(/HttpOnly/);
    const { html: created } = await follow(res, cookie);
    const key = /<textarea id="new-key"[^>]*>(tg_test_[0-9A-Za-z]{32})<\/textarea>/.exec(
      created,
    )?.[1];
    expect(key).toBeTruthy();
    expect(res.headers.get("Location")).not.toContain(key);
    expect(decodeURIComponent(flashCookie)).not.toContain(key);
    expect(atobSafe(flashCookie)).not.toContain(key);
    // Shown whole, with the copy button (revealed by the hashed script) and no JS needed.
    expect(created).toContain('data-copy="new-key"');
    expectQuickstart(created, key as string);
    const check = await gateway("/v1/account", { key });
    expect(check.status).toBe(200);
    expect((await json<{ id: string }>(check)).id).toBe(account.id);
    // Never again: the next page view (a reload) lists it by prefix and last four only, and a
    // reload made no second key.
    expect(await billingHtml(cookie)).not.toContain(key);
    const keyCount = async () =>
      (
        await json<{ data: Array<{ name: string | null; revoked_at: string | null }> }>(
          await gateway("/v1/account/keys", { key: account.api_key }),
        )
      ).data.filter((k) => k.name === "ci").length;
    expect(await keyCount()).toBe(1);
    // The flash opens for its own session only, and a tampered one shows nothing.
    const otherSession = await signIn(account);
    const stolen = await page("/account/billing", { cookie: `${otherSession}; ${flashCookie}` });
    expect(await stolen.text()).not.toContain(key);
    const tampered = await page("/account/billing", {
      cookie: `${cookie}; ${flashCookie.slice(0, -4)}AAAA`,
    });
    expect(await tampered.text()).not.toContain("New API key");

    // Revoke the new key, then the last one left is refused.
    const listed = await json<{ data: Array<{ id: string; name: string | null }> }>(
      await gateway("/v1/account/keys", { key: account.api_key }),
    );
    const ci = listed.data.find((k) => k.name === "ci");
    const revoke = await page(`/account/billing/keys/${ci?.id}/revoke`, { cookie, form: { csrf } });
    expect((await follow(revoke, cookie)).html).toContain("The key was revoked.");
    await expectError(await gateway("/v1/account", { key }), 401, "invalid_api_key");
    const original = listed.data.find((k) => k.name === "default");
    const last = await page(`/account/billing/keys/${original?.id}/revoke`, {
      cookie,
      form: { csrf },
    });
    expect((await follow(last, cookie)).html).toContain("last active key");
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

  it("keeps a person's session when keys are revoked: a session names a person, never a key", async () => {
    const { account, cookie, html } = await signedIn();
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
    expect(await billingHtml(cookie)).toContain("Credit Balance");
    // Nothing on the page says a key signed anyone in.
    expect(html).not.toContain("signed in with this key");
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

  it("counts the page's Checkout and card forms with the API's: past 10 an hour, a 429 page with Retry-After", async () => {
    const { account, cookie, html } = await signedIn();
    const csrf = tokenFor(html, "/account/billing/card");
    for (let i = 0; i < 9; i++) {
      const res = await gateway("/v1/account/payment-method/setup", {
        method: "POST",
        key: account.api_key,
        body: "{}",
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const tenth = await page("/account/billing/card", { cookie, form: { csrf } });
    expect(tenth.status).toBe(303);
    await tenth.arrayBuffer();
    const refused = await page("/account/billing/card", { cookie, form: { csrf } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThan(3_500);
    expect(await refused.text()).toContain("Too many of these requests");
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

  it("says once how Checkout ended: the return URL's outcome becomes a one-time notice, also after a cross-site arrival", async () => {
    const { cookie } = await signedIn();
    const back = await page("/account/billing?checkout=subscribed", { cookie });
    const { html } = await follow(back, cookie);
    expect(html).toContain("Back from Checkout: thank you.");
    expect(await billingHtml(cookie)).not.toContain("Back from Checkout");
    // A session id Stripe does not know (or another account's) says nothing at all.
    const unknown = await follow(
      await page("/account/billing?checkout=subscribed&session_id=cs_x", { cookie }),
      cookie,
    );
    expect(unknown.html).not.toContain("Back from Checkout");
    expect(unknown.html).not.toContain("being activated");
    const cancelled = await follow(
      await page("/account/billing?checkout=cancelled", { cookie }),
      cookie,
    );
    expect(cancelled.html).toContain("Checkout was cancelled: nothing was charged or changed.");
    // An unknown outcome is ignored, not echoed.
    const odd = await page("/account/billing?checkout=<b>x</b>", { cookie });
    expect(odd.status).toBe(200);
    expect(await odd.text()).not.toContain("<b>x</b>");
    // Back from Stripe's domain the Strict cookie is not sent yet: the resume keeps the outcome.
    const arrival = { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" };
    const resume = await page("/account/billing?checkout=card_added", { headers: arrival });
    expect(await resume.text()).toContain("url=/account/billing?resumed=1&amp;checkout=card_added");
  });

  it("back from a paid plan Checkout before its webhooks: the plan is being activated, no second Subscribe, and the page refreshes itself until it shows", async () => {
    const { account, cookie, html } = await signedIn();
    const started = await page("/account/billing/checkout", {
      cookie,
      form: { plan: "starter", csrf: tokenFor(html, "/account/billing/checkout") },
    });
    expect(started.status).toBe(303);
    await started.arrayBuffer();
    const paid = await submitPage(started.headers.get("Location") as string, {
      payment_method: "pm_card_visa",
    });
    expect(paid.status).toBe(303);
    await paid.arrayBuffer();
    // Stripe's return URL, with the session id; no webhook has been delivered yet.
    const back = new URL(paid.headers.get("Location") as string);
    expect(back.searchParams.get("checkout")).toBe("subscribed");
    const sessionId = back.searchParams.get("session_id") as string;
    expect(sessionId).toMatch(/^cs_/);
    const returned = `${back.pathname}${back.search}`;

    // A cross-site arrival (no Strict cookie yet) keeps the session id through the resume.
    const arrival = { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" };
    const resume = await (await page(returned, { headers: arrival })).text();
    expect(resume).toContain(`&amp;checkout=subscribed&amp;session_id=${sessionId}`);

    const first = await page(returned, { cookie });
    expect(first.status).toBe(200);
    const activating = await first.text();
    expect(activating).toContain(
      "Payment received: your Starter plan (3,000 credits a month) is being activated.",
    );
    expect(activating).toContain("Starter plan: being activated (payment received).");
    expect(activating).not.toContain("No subscription: the Free plan.");
    expect(activating).not.toMatch(/<button[^>]*name="plan"/);
    // It looks again by itself, counting its looks (no script).
    expect(activating).toContain(
      `<meta http-equiv="refresh" content="3; url=/account/billing?checkout=subscribed&amp;session_id=${sessionId}&amp;wait=1"/>`,
    );
    // After about a minute it stops refreshing, and says so, still without Subscribe.
    const late = await (
      await page(`/account/billing?checkout=subscribed&session_id=${sessionId}&wait=20`, {
        cookie,
      })
    ).text();
    expect(late).not.toContain('http-equiv="refresh"');
    expect(late).toContain("taking longer than usual");
    expect(late).not.toMatch(/<button[^>]*name="plan"/);
    // Another account returning with this session id learns nothing about it.
    const other = await signedIn();
    const foreign = await page(returned, { cookie: other.cookie });
    expect(foreign.status).toBe(303);
    const { html: foreignHtml } = await follow(foreign, other.cookie);
    expect(foreignHtml).not.toContain("being activated");

    // The webhooks arrive: the next look shows the plan itself, once, and stops refreshing.
    const customer = account.stripe_customer_id as string;
    for (const e of await eventsFor(customer)) {
      const res = await deliverSigned(e);
      expect(res.status, e.type).toBe(200);
      await res.arrayBuffer();
    }
    const done = await page(`/account/billing?checkout=subscribed&session_id=${sessionId}&wait=1`, {
      cookie,
    });
    const { html: active } = await follow(done, cookie);
    expect(active).toContain("Your Starter plan is active: 3,000 credits a month.");
    expect(active).toMatch(/id="plan-state">Starter subscription: active, renews /);
    expect(active).not.toContain("being activated");
    expect(active).not.toContain('http-equiv="refresh"');
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

describe("the page's security headers", () => {
  it("are Hono's secureHeaders with the page's own CSP, byte for byte, and no HSTS", async () => {
    const hash = async (text: string) => {
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
      );
      return `'sha256-${btoa(String.fromCharCode(...digest))}'`;
    };
    const expected = [
      "default-src 'none'",
      `script-src ${await hash(COPY_SCRIPT)} ${await hash(PASSKEY_SCRIPT)}`,
      `style-src ${await hash(STYLES)}`,
      "img-src 'self' data:",
      `form-action 'self' ${new URL(env.STRIPE_API_URL).origin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join("; ");
    for (const path of ["/account/billing", "/account/sign-up", "/account/nope"]) {
      const res = await page(path);
      expect(res.headers.get("Content-Security-Policy"), path).toBe(expected);
      expectSecurityHeaders(res);
      // The host's HTTPS policy is the operator's decision at the edge.
      expect(res.headers.get("Strict-Transport-Security")).toBeNull();
      await res.arrayBuffer();
    }
  });
});
