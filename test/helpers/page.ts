/**
 * The Billing page as a browser uses it: same-origin form posts with their CSRF token, the
 * session and flash cookies sent back, post/redirect/get followed.
 */
import { expect } from "vitest";
import { BASE, send } from "./http";

const SAME_ORIGIN = { Origin: BASE, "Sec-Fetch-Site": "same-origin" };

/** A browser-like request to the page: same-origin headers, the session cookie if any. */
export function page(
  path: string,
  init: { cookie?: string; form?: Record<string, string> } = {},
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

/** Signs in with the key and returns the `name=value` pair to send back as `Cookie`. */
export async function signIn(key: string): Promise<string> {
  const form = await send(new Request(`${BASE}/account/billing`));
  const html = await form.text();
  const csrf =
    /action="\/account\/sign-in"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"/.exec(
      html,
    )?.[1];
  const res = await page("/account/sign-in", {
    form: { api_key: key, csrf: csrf ?? "" },
    cookie: setCookiePair(form, "tg_signin"),
  });
  expect(res.status).toBe(303);
  await res.arrayBuffer();
  return setCookiePair(res, "tg_session");
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
