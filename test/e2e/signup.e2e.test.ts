/**
 * Self-service sign-up in a real browser against the real local stack: the form (from the
 * keyboard), the emailed link read from the operator listing and followed from another site as
 * from a mail client, the confirm button, the Billing page signed in with the first key shown
 * once, a first proxied request with that key, and a reload that shows the spend and no key.
 * axe-core runs in every page on the way. Leaves screenshots in test-results/ (signup-1280.png,
 * signup-390.png, signup-welcome-1280.png; the copies in docs/ are from such a run).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  axeProblems,
  api as callApi,
  reloadUntil,
  type Stack,
  startStackAndBrowser,
  until,
} from "./harness";

const SHOTS = path.resolve("test-results");
/** Stands in for a webmail page: another site, so following the link is a cross-site click. */
const MAIL_ORIGIN = "http://mail.example";

let stack: Stack;
let browser: Browser;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ stack, browser, stop } = await startStackAndBrowser());
});

afterAll(async () => {
  await stop?.();
});

/** Console errors (a CSP violation shows up here) and page errors, except failed loads. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push(m.text());
    }
  });
  page.on("pageerror", (e) => problems.push(e.message));
  return problems;
}

/** The link in the newest sign-up email to `email`, from the operator listing. */
async function emailedLink(email: string): Promise<string> {
  return until(async () => {
    const res = await callApi(stack, `/admin/signup-emails?email=${encodeURIComponent(email)}`, {
      token: stack.adminToken,
    });
    const [latest] = (res.body.data ?? []) as Array<{ kind: string; text: string }>;
    if (latest?.kind !== "signup_link") return null;
    return /https?:\/\/\S+\/account\/sign-up\/confirm\?token=[0-9A-Za-z]{32}/.exec(
      latest.text,
    )?.[0];
  }, 20_000);
}

/** Follows `link` from a page on another site, the way a click in a webmail does. */
async function followFromMail(context: BrowserContext, page: Page, link: string) {
  await context.route(`${MAIL_ORIGIN}/**`, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><html lang="en"><title>Inbox</title><a href="${link}">Create my account</a></html>`,
    }),
  );
  await page.goto(`${MAIL_ORIGIN}/inbox`);
  await page.getByRole("link", { name: "Create my account" }).click();
}

describe("Sign-up in Chromium", () => {
  it("signs up from the keyboard, follows the emailed link, lands signed in with the first key once, and spends with it", async () => {
    const email = `e2e-signup-${crypto.randomUUID()}@example.com`;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: stack.gatewayUrl,
    });
    const page = await context.newPage();
    const problems = watch(page);
    await mkdir(SHOTS, { recursive: true });

    // The form: labelled, axe-clean, and usable from the keyboard alone.
    await page.goto(`${stack.gatewayUrl}/account/sign-up`);
    await page.getByRole("heading", { name: "Create a free account" }).waitFor();
    expect(await axeProblems(page)).toEqual([]);
    await page.screenshot({ path: path.join(SHOTS, "signup-1280.png"), fullPage: true });
    const field = page.getByLabel("Email address");
    expect(await field.getAttribute("type")).toBe("email");
    expect(await field.getAttribute("autocomplete")).toBe("email");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.id")).toBe("email");
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe(
      "Email me a sign-up link",
    );
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Sign in");
    // Back to the field, and Enter submits the form from there.
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Shift+Tab");
    expect(await page.evaluate("document.activeElement?.id")).toBe("email");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    expect(await page.getByRole("status").textContent()).toContain(email);
    expect(await axeProblems(page)).toEqual([]);

    // The link, read as an operator would locally, followed from "the mail client".
    const link = await emailedLink(email);
    expect(new URL(link).origin).toBe(stack.gatewayUrl);
    await followFromMail(context, page, link);
    await page.getByRole("heading", { name: "Create your account" }).waitFor();
    expect(page.url()).toBe(link);
    expect(await page.locator("main").textContent()).toContain(email);
    expect(await axeProblems(page)).toEqual([]);
    // Opening the link used nothing (mail scanners open links too): opened again, it still works.
    await page.reload();
    await page.getByRole("heading", { name: "Create your account" }).waitFor();

    // The button: post, then a redirect to the Billing page, signed in, the key on show.
    const confirmButton = page.getByRole("button", { name: "Create my account" });
    await confirmButton.focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(page.url()).toBe(`${stack.gatewayUrl}/account/billing`);
    await page.getByText("Your free account is ready, and you are signed in.").waitFor();
    await page.getByText("New API key “default”.").waitFor();
    const keyField = page.getByLabel("Your new key");
    const key = await keyField.inputValue();
    expect(key).toMatch(/^tg_test_[0-9A-Za-z]{32}$/);
    // Whole: nothing of the key is scrolled away.
    expect(
      await keyField.evaluate(
        (el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight,
      ),
    ).toBe(true);
    const cookies = await context.cookies(stack.gatewayUrl);
    expect(cookies.find((c) => c.name === "tg_session")).toMatchObject({
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
    });
    // The page that showed the key cleared the flash, and the form's nonce is gone too.
    expect(cookies.find((c) => c.name === "tg_flash")).toBeUndefined();
    expect(cookies.find((c) => c.name === "tg_signup")).toBeUndefined();
    expect(await page.locator(".stat.total dd").textContent()).toBe("500");
    expect(await axeProblems(page)).toEqual([]);
    // The first screenful: the welcome, the key and the balance (the rest is the Billing page's).
    await page.screenshot({ path: path.join(SHOTS, "signup-welcome-1280.png") });

    // The page's copy button puts it on the clipboard.
    await page.getByRole("button", { name: "Copy key" }).click();
    await page.getByText("Copied to the clipboard.").waitFor();
    const copied = (await page.evaluate("navigator.clipboard.readText()")) as string;
    expect(copied).toBe(key);

    // A first request to the proxied API with it.
    const res = await fetch(`${stack.gatewayUrl}/v1/classify`, {
      method: "POST",
      headers: { Authorization: `Bearer ${copied}`, "Content-Type": "application/json" },
      body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Credits-Charged")).toBe("1");
    expect(res.headers.get("X-Credits-Remaining")).toBe("499");
    expect(await res.json()).toHaveProperty("category");

    // A reload: still signed in, the spend shows, the key and the welcome do not.
    await page.reload();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(await page.locator(".stat.total dd").textContent()).toBe("499");
    expect(await page.content()).not.toContain(key);
    expect(await page.getByLabel("Your new key").count()).toBe(0);
    expect(await page.getByText("Your free account is ready").count()).toBe(0);
    // Usage reaches the chart once the ledger flushed it to D1 (about every 30 s).
    await reloadUntil(page, async () =>
      ((await page.locator("#usage-chart-desc").textContent()) ?? "").startsWith("1 credits used"),
    );
    expect(await page.content()).not.toContain(key);

    // The link worked once: following it again says so plainly.
    await page.goto(link);
    await page.getByRole("heading", { name: "This sign-up link cannot be used" }).waitFor();
    expect(await page.getByRole("link", { name: "Start again" }).getAttribute("href")).toBe(
      "/account/sign-up",
    );
    expect(await axeProblems(page)).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("lays the sign-up page out for a 390 px phone, and takes its screenshot", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${stack.gatewayUrl}/account/sign-up`);
    await page.getByRole("heading", { name: "Create a free account" }).waitFor();
    // Nothing wider than the screen: no sideways scrolling, the field and button on screen.
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    const field = await page.getByLabel("Email address").boundingBox();
    expect((field?.x ?? 0) + (field?.width ?? 999)).toBeLessThanOrEqual(390);
    const button = await page
      .getByRole("button", { name: "Email me a sign-up link" })
      .boundingBox();
    expect((button?.x ?? 0) + (button?.width ?? 999)).toBeLessThanOrEqual(390);
    expect(await axeProblems(page)).toEqual([]);
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "signup-390.png"), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
