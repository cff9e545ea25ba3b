/**
 * The Billing page as a browser uses it: signing in by an emailed link, same-origin form posts
 * with their CSRF token, the session and flash cookies sent back, post/redirect/get followed.
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { Bindings } from "../../src/platform/env";
import { BASE, gateway, send } from "./http";

const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };

/** A browser-like request to the page: same-origin headers, the session cookie if any. */
export function page(
  path: string,
  init: { cookie?: string; form?: Record<string, string>; env?: Bindings } = {},
): Promise<Response> {
  const headers = new Headers(init.form ? SAME_ORIGIN : {});
  if (init.cookie) headers.set("Cookie", init.cookie);
  return send(
    new Request(`${BASE}${path}`, {
      method: init.form ? "POST" : "GET",
      headers,
      body: init.form ? new URLSearchParams(init.form) : undefined,
      redirect: "manual",
    }),
    { env: init.env },
  );
}

/** The `name=value` pair a response sets for `name`, or "" when it sets none. */
export function setCookiePair(res: Response, name: string): string {
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(";")[0] ?? "";
    if (pair.startsWith(`${name}=`)) return pair;
  }
  return "";
}

/** A client address no other request uses, so sign-in's per-client limit is each call's own. */
export function freshIp(): string {
  const r = crypto.getRandomValues(new Uint8Array(3));
  return `10.${r[0]}.${r[1]}.${r[2]}`;
}

export type SentEmail = { to: string; subject: string; text: string };

/**
 * The test environment with a mail server of the test's own, recording what the worker gives
 * `env.EMAIL.send`, and the messages it got (links are read from these, never from D1, where
 * their tokens are redacted).
 */
export function withMailbox(overrides: Partial<Bindings> = {}) {
  const sent: SentEmail[] = [];
  const EMAIL = {
    async send(message: unknown) {
      sent.push(message as SentEmail);
      return { messageId: "m" };
    },
  } as unknown as SendEmail;
  return { env: { ...env, ...overrides, EMAIL } as Bindings, sent };
}

export const SIGN_IN_LINK = /\/account\/sign-in\/confirm\?token=([0-9A-Za-z]+)/;
export const INVITE_LINK = /\/account\/invitation\?token=([0-9A-Za-z]+)/;

/** `POST /v1/sign-in` for `email`, and the link's token from the email sent (null: none). */
export async function requestSignInLink(email: string, ip = freshIp()): Promise<string | null> {
  const mailbox = withMailbox();
  const res = await gateway("/v1/sign-in", {
    method: "POST",
    headers: { "CF-Connecting-IP": ip },
    body: JSON.stringify({ email }),
    env: mailbox.env,
  });
  expect(res.status).toBe(202);
  await res.arrayBuffer();
  const message = mailbox.sent.findLast((m) => m.to === email.trim().toLowerCase());
  return SIGN_IN_LINK.exec(message?.text ?? "")?.[1] ?? null;
}

/** Opens an emailed link's page as a browser does: its HTML, nonce cookie and form token. */
export async function openLinkPage(path: string) {
  const res = await send(
    new Request(`${BASE}${path}`, {
      headers: { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" },
    }),
  );
  const html = await res.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? "";
  return { res, html, csrf, cookie: setCookiePair(res, "tg_signin") };
}

/** Uses a sign-in link's confirm step for `accountId` (the only account when not given). */
export async function confirmSignIn(token: string, accountId?: string): Promise<Response> {
  const opened = await openLinkPage(`/account/sign-in/confirm?token=${token}`);
  expect(opened.res.status).toBe(200);
  const account =
    accountId ?? /name="account_id" value="([^"]+)"/.exec(opened.html)?.[1] ?? "missing";
  return page("/account/sign-in/confirm", {
    cookie: opened.cookie,
    form: { token, account_id: account, csrf: opened.csrf },
  });
}

/**
 * Signs in as the person with this email (an account's own email is its first owner), by the
 * emailed link, and returns the `name=value` pair to send back as `Cookie`.
 */
export async function signIn(who: string | { email: string }, accountId?: string): Promise<string> {
  const email = typeof who === "string" ? who : who.email;
  const token = await requestSignInLink(email);
  expect(token, `a sign-in link for ${email}`).toBeTruthy();
  const res = await confirmSignIn(token ?? "", accountId);
  expect(res.status).toBe(303);
  expect(res.headers.get("Location")).toBe("/account/billing");
  await res.arrayBuffer();
  const pair = setCookiePair(res, "tg_session");
  expect(pair).toMatch(/^tg_session=.+/);
  return pair;
}

export async function billingHtml(cookie: string): Promise<string> {
  const res = await page("/account/billing", { cookie });
  expect(res.status).toBe(200);
  return res.text();
}

/** Follows a form post's 303 back to the page, with the flash cookie it set; the page's HTML. */
export async function follow(res: Response, cookie: string): Promise<string> {
  expect(res.status).toBe(303);
  expect(res.headers.get("Location")).toBe("/account/billing");
  await res.arrayBuffer();
  const flash = setCookiePair(res, "tg_flash");
  return billingHtml([cookie, flash].filter(Boolean).join("; "));
}

/** The CSRF token of the form posting to `action`. */
export function tokenFor(html: string, action: string): string {
  const escaped = action.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(
    `action="${escaped}"[^>]*>\\s*<input type="hidden" name="csrf" value="([^"]+)"`,
  ).exec(html);
  expect(match, `a form posting to ${action}`).not.toBeNull();
  return match?.[1] ?? "";
}

/** Text as the page's HTML holds it (hono/jsx escapes these five). */
export function asHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * The quickstart beside a key shown once (issue 22 item 5): the API base URL, a `curl` that
 * names the key by prefix and last four only, a link to `/docs`; the whole key appears on the
 * page once, in its own field.
 */
export function expectQuickstart(html: string, key: string) {
  expect(html).toContain(`API base URL: <code>${BASE}</code>`);
  const curl = /<textarea id="quickstart-curl"[^>]*>([^<]*)<\/textarea>/
    .exec(html)?.[1]
    ?.replaceAll("&quot;", '"');
  const hint = `${/^tg_[a-z]+_/.exec(key)?.[0]}…${key.slice(-4)}`;
  expect(curl).toBe(`curl ${BASE}/v1/account/balance -H "Authorization: Bearer ${hint}"`);
  expect(html).toContain('data-copy="quickstart-curl"');
  expect(html).toContain('href="/docs"');
  expect(html.split(key).length - 1, "the whole key, once").toBe(1);
}
