/**
 * Account / Billing in a real browser against the real local stack (wrangler dev, local
 * Stripe-compatible server, demo upstream): sign in, auto-recharge on, spend down, and the
 * recharge appears in the history; then each fix of the page (post/redirect/get, the new key
 * and its copy button, a declined recharge, buying credits, the spending limit, the low-balance
 * email, phones), with axe-core run in every page. Leaves screenshots in test-results/ (billing-page*.png).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  axeProblems,
  api as callApi,
  reloadUntil,
  type Stack,
  signInByEmail,
  startStackAndBrowser,
} from "./harness";

const SCREENSHOT = path.resolve("test-results", "billing-page.png");
const SHOTS = path.resolve("test-results");
let stack: Stack;
let browser: Browser;
let stop: (() => Promise<void>) | undefined;

const api = (pathname: string, init: RequestInit & { token: string }) =>
  callApi(stack, pathname, init);

beforeAll(async () => {
  ({ stack, browser, stop } = await startStackAndBrowser());
});

afterAll(async () => {
  await stop?.();
});

describe("Account / Billing in Chromium", () => {
  it("signs in, turns auto-recharge on, and shows the recharge after spending down", async () => {
    const demo = stack.demo as { id: string; api_key: string; email: string };
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      // A CSP violation (say, a stylesheet whose hash no longer matches) shows up here.
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
        problems.push(m.text());
      }
    });
    page.on("pageerror", (e) => problems.push(e.message));
    const failures: string[] = [];
    page.on("response", (r) => {
      if (r.status() >= 400) failures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });

    // Some traffic first: the ledger flushes usage to D1 about 30 s later, in time for the end.
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${stack.gatewayUrl}/v1/classify`, {
        method: "POST",
        headers: { Authorization: `Bearer ${demo.api_key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }

    // Signed out: the sign-in form, then the emailed link, then the page.
    await page.goto(`${stack.gatewayUrl}/account/billing`);
    await expect.poll(() => page.title()).toContain("Sign in");
    await signInByEmail(stack, page, demo.email);
    const cookie = (await context.cookies()).find((c) => c.name === "tg_session");
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/" });
    // Starter: 3,000 monthly credits, less the 12 requests.
    await expect.poll(() => page.locator(".stat.total dd").textContent()).toBe("2,988");
    // The hashed inline stylesheet applied (a CSP mismatch would leave the default white).
    expect(await page.evaluate("getComputedStyle(document.body).backgroundColor")).toBe(
      "rgb(244, 246, 248)",
    );

    // Without a card: the plain message, and auto-recharge stays off.
    await page.getByLabel("Auto-recharge credits").check();
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Add a payment method first").waitFor();

    // With a card: on, with the 3,000 package, then changed to 1,000.
    const attached = await api(`/admin/accounts/${demo.id}/payment-method`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ payment_method: "pm_card_visa" }),
    });
    expect(attached.status).toBe(200);
    await page.goto(`${stack.gatewayUrl}/account/billing`);
    await page.getByLabel("Auto-recharge credits").check();
    await page.getByLabel("Credit package").selectOption("credits_3000");
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Auto-recharge settings saved.").waitFor();
    expect((await api("/v1/account/auto-recharge", { token: demo.api_key })).body).toMatchObject({
      enabled: true,
      package: "credits_3000",
    });
    await page.getByLabel("Credit package").selectOption("credits_1000");
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Auto-recharge settings saved.").waitFor();
    expect(await page.getByLabel("Auto-recharge credits").isChecked()).toBe(true);
    expect(await page.getByLabel("Credit package").inputValue()).toBe("credits_1000");
    expect((await api("/v1/account/auto-recharge", { token: demo.api_key })).body).toMatchObject({
      enabled: true,
      package: "credits_1000",
    });

    // Spend down to 88 credits: at or below 100, so the recharge starts.
    const spent = await api(`/admin/accounts/${demo.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: -2_900, reason: "e2e: spend down" }),
    });
    expect(spent.status).toBe(200);
    const recharged = page.locator('#transactions tr[data-type="auto_recharge"]');
    // The history row can say succeeded a moment before the ledger grants: a render reads
    // both, so wait for a render that shows the two.
    await reloadUntil(
      page,
      async () =>
        (await recharged
          .first()
          .getAttribute("data-status")
          .catch(() => null)) === "succeeded" &&
        (await page.locator(".stat.total dd").textContent()) === "1,088",
    );
    expect(await recharged.first().textContent()).toContain("+1,000");
    expect(await recharged.first().textContent()).toContain("$7");

    // The usage chart has this cycle's requests once the ledger flushed them.
    await reloadUntil(page, async () =>
      ((await page.locator("#usage-chart-desc").textContent()) ?? "").startsWith("12 credits"),
    );
    await page.locator("details summary").click();
    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // “Manage plan and billing” lands on a portal session; its return link, followed from
    // another site, still comes back signed in (the page reloads once for the Strict cookie).
    await page.getByRole("button", { name: "Manage plan and billing" }).click();
    await page.getByRole("heading", { name: /Customer portal/ }).waitFor();
    const portal = new URL(page.url());
    portal.hostname = "localhost";
    await page.goto(portal.toString());
    await page.locator("#return").click();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();

    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await page.getByText("You are signed out.").waitFor();
    expect((await context.cookies()).find((c) => c.name === "tg_session")).toBeUndefined();
    expect(problems).toEqual([]);
    // Every form answers with a redirect: no refusal on the way, the one without a card included.
    expect(failures).toEqual([]);
    await context.close();
  });

  /** A fresh account (Free, or as given) made by the operator API, with its first key. */
  async function newAccount(
    plan = "free",
  ): Promise<{ id: string; api_key: string; email: string }> {
    const res = await api("/admin/accounts", {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ email: `e2e-${crypto.randomUUID()}@example.com`, plan }),
    });
    expect(res.status).toBe(201);
    return res.body as { id: string; api_key: string; email: string };
  }

  /** Signs in as the account's first owner (its email), by the emailed link. */
  async function signInAs(page: Page, account: { email: string }) {
    await signInByEmail(stack, page, account.email);
  }

  async function keyCount(key: string): Promise<number> {
    const res = await api("/v1/account/keys", { token: key });
    return (res.body.data as Array<{ revoked_at: string | null }>).filter((k) => !k.revoked_at)
      .length;
  }

  it("passes axe-core on sign-in, sign-up and billing, with a CSRF token on the sign-in form", async () => {
    const account = await newAccount();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${stack.gatewayUrl}/account/billing`);
    expect(await axeProblems(page)).toEqual([]);
    // The sign-in form carries its token, and the nonce cookie it is checked against.
    expect(
      await page.locator('form[action="/account/sign-in"] input[name="csrf"]').inputValue(),
    ).toMatch(/^[\w-]{43}$/);
    expect((await context.cookies()).find((c) => c.name === "tg_signin")).toMatchObject({
      httpOnly: true,
      sameSite: "Strict",
    });
    await page.getByRole("link", { name: "Create a free account" }).click();
    await page.getByRole("heading", { name: "Create a free account" }).waitFor();
    expect(await axeProblems(page)).toEqual([]);
    await signInAs(page, account);
    expect(await axeProblems(page)).toEqual([]);
    // A forged sign-in (the right address, no token) is refused.
    const forged = await page.request.post(`${stack.gatewayUrl}/account/sign-in`, {
      form: { email: account.email },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    await context.close();
  });

  it("creates a key from the keyboard, shows it whole with a working copy button, and a reload neither shows it again nor makes another", async () => {
    const account = await newAccount();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: stack.gatewayUrl,
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    await signInAs(page, account);
    expect(await keyCount(account.api_key)).toBe(1);

    // Keyboard only: the skip link first, then the form's fields and its button.
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
    await page.getByLabel("Name (optional)").focus();
    await page.keyboard.type("laptop");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.id")).toBe("key-scope");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Create key");
    await page.keyboard.press("Enter");
    await page.getByText("New API key “laptop”.").waitFor();
    // Post/redirect/get: the page is a plain GET of /account/billing, nothing in the URL.
    expect(page.url()).toBe(`${stack.gatewayUrl}/account/billing`);
    const field = page.getByLabel("Your new key");
    const key = await field.inputValue();
    expect(key).toMatch(/^tg_test_[0-9A-Za-z]{32}$/);
    // Whole: the field is wide enough, or wraps, so nothing of the key is scrolled away.
    expect(
      await field.evaluate(
        (el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight,
      ),
    ).toBe(true);
    expect(await axeProblems(page)).toEqual([]);

    // The copy button, revealed by the page's hashed script, works from the keyboard.
    const copy = page.getByRole("button", { name: "Copy key" });
    await copy.focus();
    await page.keyboard.press("Enter");
    await page.getByText("Copied to the clipboard.").waitFor();
    expect(await page.evaluate("navigator.clipboard.readText()")).toBe(key);

    await page.reload();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(await page.content()).not.toContain(key);
    expect(await page.getByText("New API key").count()).toBe(0);
    expect(await keyCount(account.api_key)).toBe(2);
    // Notices are one-time too: revoke it, reload, and the notice is gone.
    await page.getByRole("button", { name: "Revoke key laptop" }).click();
    await page.getByText("The key was revoked.").waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(await page.getByText("The key was revoked.").count()).toBe(0);
    expect(await keyCount(account.api_key)).toBe(1);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("works without JavaScript: the new key is shown whole and selectable, the copy button stays hidden", async () => {
    const account = await newAccount();
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      javaScriptEnabled: false,
    });
    const page = await context.newPage();
    await signInAs(page, account);
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByText("New API key.").waitFor();
    const field = page.getByLabel("Your new key");
    expect(await field.inputValue()).toMatch(/^tg_test_[0-9A-Za-z]{32}$/);
    expect(await field.isVisible()).toBe(true);
    // Both copy buttons (the key's and the quickstart command's) need JavaScript: hidden.
    const copyButtons = await page.locator("button[data-copy]").all();
    expect(copyButtons.length).toBe(2);
    for (const button of copyButtons) expect(await button.isHidden()).toBe(true);
    const box = await field.boundingBox();
    expect((box?.x ?? 0) + (box?.width ?? 999)).toBeLessThanOrEqual(390);
    await context.close();
  });

  it("after a decline: shows the failure as history, nothing added, and buys credits after a confirmation", async () => {
    const account = await newAccount();
    const attach = (pm: string) =>
      api(`/admin/accounts/${account.id}/payment-method`, {
        method: "POST",
        token: stack.adminToken,
        body: JSON.stringify({ payment_method: pm }),
      });
    // A card the bank declines when it is saved is refused (400), nothing on file; the card
    // that saves fine and is declined when charged (…0341) is then attached.
    const refused = await attach("pm_card_chargeDeclined");
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      error: { type: "invalid_request", fields: [{ field: "payment_method" }] },
    });
    expect((await attach("pm_card_chargeCustomerFail")).status).toBe(200);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signInAs(page, account);
    await page.getByLabel("Auto-recharge credits").check();
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Auto-recharge settings saved.").waitFor();
    // Down to zero: the recharge starts, and the card is declined.
    const spent = await api(`/admin/accounts/${account.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: -500, reason: "e2e: to zero" }),
    });
    expect(spent.status).toBe(200);
    const failed = page.locator(
      '#transactions tr[data-type="auto_recharge"][data-status="failed"]',
    );
    // The failed row (D1) comes before the ledger's record of the failure: wait for both.
    await reloadUntil(
      page,
      async () => (await failed.count()) > 0 && (await page.locator("#last-failure").count()) > 0,
    );
    const row = (await failed.first().textContent()) ?? "";
    expect(row).toContain("none added");
    expect(row).toContain("not charged");
    expect(row).toContain("the card was declined");
    expect(row).not.toContain("+1,000");
    expect(row).not.toContain("$7");
    const failure = page.locator("#last-failure");
    expect(await failure.textContent()).toContain("nothing was added and nothing was charged");
    expect(await failure.textContent()).toContain("Auto-recharge was turned off because of it.");
    expect(await page.locator("#buy-credits").textContent()).toContain("Your balance is 0 credits");
    expect(await axeProblems(page)).toEqual([]);
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({
      path: path.join(SHOTS, "billing-page-declined-1280.png"),
      fullPage: true,
    });

    // A working card and some credits (so turning it on buys nothing yet), auto-recharge back
    // on: the failure stays as history, "turned off because of it" is gone.
    expect((await attach("pm_card_visa")).status).toBe(200);
    const granted = await api(`/admin/accounts/${account.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: 500, reason: "e2e: some credits back" }),
    });
    expect(granted.status).toBe(200);
    await page.reload();
    await page.getByLabel("Auto-recharge credits").check();
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Auto-recharge settings saved.").waitFor();
    expect(await page.getByLabel("Auto-recharge credits").isChecked()).toBe(true);
    const history = (await page.locator("#last-failure").textContent()) ?? "";
    expect(history).toContain("The last recharge failed on");
    expect(history).toContain("the card was declined");
    expect(history).not.toContain("turned off");

    // Buy credits now: a review page first, then the purchase.
    await page.getByLabel("Package", { exact: true }).selectOption("credits_3000");
    await page.getByRole("button", { name: "Review purchase" }).click();
    await page.getByRole("heading", { name: "Buy 3,000 credits?" }).waitFor();
    expect(await page.locator("main").textContent()).toContain("visa ending 4242");
    expect(await axeProblems(page)).toEqual([]);
    await page.getByRole("button", { name: "Buy now for $17" }).click();
    await page.getByText("Buying 3,000 credits for $17").waitFor();
    const topUp = page.locator('#transactions tr[data-type="top_up"]');
    await reloadUntil(
      page,
      async () =>
        (await topUp
          .first()
          .getAttribute("data-status")
          .catch(() => null)) === "succeeded",
    );
    expect(await topUp.first().textContent()).toContain("+3,000");
    // The notice was for the purchase's own page view: a reload does not show it again.
    await page.reload();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(await page.getByText("Buying 3,000 credits").count()).toBe(0);
    await context.close();
  });

  it("shows and edits the spending limit", async () => {
    const account = await newAccount();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signInAs(page, account);
    expect(await page.locator("#limit-state").textContent()).toContain(
      "Credit purchases this month: $0",
    );
    await page.getByLabel("Monthly limit in US dollars").fill("25.50");
    await page.getByRole("button", { name: "Save limit" }).click();
    await page.getByText("Spending limit saved: at most $25.50 of purchases a month.").waitFor();
    expect(await page.locator("#limit-state").textContent()).toContain(
      "of your $25.50 monthly limit",
    );
    expect((await api("/v1/account/limits", { token: account.api_key })).body).toMatchObject({
      monthly_spend_limit_cents: 2_550,
    });
    await context.close();
  });

  it("shows and edits the low-balance email, and turns it off", async () => {
    const account = await newAccount();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signInAs(page, account);
    expect(await page.locator("#alerts-state").textContent()).toContain("Off: no email");
    await page.getByLabel("Email me at this balance (credits)").fill("200");
    await page.getByRole("button", { name: "Save alert" }).click();
    await page
      .getByText(
        "Low-balance email saved: we email you when your balance falls to 200 credits or below.",
      )
      .waitFor();
    expect(await page.locator("#alerts-state").textContent()).toContain("falls to 200 credits");
    expect(await page.getByLabel("Email me at this balance (credits)").inputValue()).toBe("200");
    expect((await api("/v1/account/alerts", { token: account.api_key })).body).toEqual({
      low_balance_credits: 200,
    });
    expect(await axeProblems(page)).toEqual([]);
    await page.getByLabel("Email me at this balance (credits)").fill("");
    await page.getByRole("button", { name: "Save alert" }).click();
    await page.getByText("Low-balance email turned off.").waitFor();
    expect((await api("/v1/account/alerts", { token: account.api_key })).body).toEqual({
      low_balance_credits: null,
    });
    await context.close();
  });

  it("lays the page out for a 390 px phone, and takes the screenshots at 1280 and 390 px", async () => {
    const demo = stack.demo as { id: string; api_key: string; email: string };
    await mkdir(SHOTS, { recursive: true });
    for (const width of [1280, 390]) {
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      await signInAs(page, demo);
      // A new key on show, so the screenshot has it too.
      await page.getByLabel("Name (optional)").fill(`phone-${width}`);
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByLabel("Your new key").waitFor();
      // Nothing wider than the screen: no sideways scrolling, no table cut off.
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(
        width,
      );
      for (const selector of ["#transactions", "#keys", "#new-key", ".chart:visible"]) {
        const box = await page.locator(selector).first().boundingBox();
        expect(box, selector).not.toBeNull();
        expect((box?.x ?? 0) + (box?.width ?? 0), selector).toBeLessThanOrEqual(width);
      }
      // Every cell of the history and keys tables is on screen (a scrolled table would hide some).
      const offscreen = await page.evaluate(
        `[...document.querySelectorAll("#transactions td, #keys td")].filter((td) => td.getBoundingClientRect().right > ${width} + 0.5).length`,
      );
      expect(offscreen).toBe(0);
      // The chart's labels are readable: at least 10 px tall as drawn.
      const labelHeights = (await page.evaluate(
        `[...document.querySelectorAll("svg.chart")].filter((svg) => getComputedStyle(svg).display !== "none").flatMap((svg) => [...svg.querySelectorAll("text")].map((t) => t.getBoundingClientRect().height))`,
      )) as number[];
      expect(labelHeights.length).toBeGreaterThan(0);
      expect(Math.min(...labelHeights)).toBeGreaterThanOrEqual(10);
      expect(await axeProblems(page)).toEqual([]);
      await page.screenshot({
        path: path.join(SHOTS, `billing-page-${width}.png`),
        fullPage: true,
      });
      await context.close();
    }
  });
});
