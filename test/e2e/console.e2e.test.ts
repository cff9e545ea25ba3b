/**
 * The operator console (issue 21) in a real browser against the real local stack: signing in
 * with the local ADMIN_TOKEN, the money overview, searching for an account and opening it,
 * emailing its owner a sign-in link, suspending it with a reason (the page then shows the
 * suspension, and the account's API key is refused). axe-core runs in every console page at
 * 1280 and 390 px. Leaves screenshots in test-results/ (console-*.png); the 1280 px overview and
 * account page are the ones copied into docs/.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { axeProblems, api as callApi, type Stack, startStackAndBrowser, until } from "./harness";

const SHOTS = path.resolve("test-results");
let stack: Stack;
let browser: Browser;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ stack, browser, stop } = await startStackAndBrowser());
});

afterAll(async () => {
  await stop?.();
});

async function shot(page: Page, name: string) {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

async function expectAccessible(page: Page, where: string) {
  expect(await axeProblems(page), where).toEqual([]);
}

/** Accounts made through the operator API, sharing a prefix so one search finds them. */
async function makeAccounts(prefix: string, count: number) {
  const made: Array<{ id: string; api_key: string; email: string }> = [];
  for (let i = 0; i < count; i++) {
    const created = await callApi(stack, "/admin/accounts", {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ email: `${prefix}${i}@example.com` }),
    });
    expect(created.status).toBe(201);
    made.push({
      ...(created.body as { id: string; api_key: string }),
      email: `${prefix}${i}@example.com`,
    });
  }
  return made;
}

/** The console's local sign-in: the form, the admin token typed once, then the overview. */
async function signIntoConsole(page: Page, width: number) {
  await page.goto(`${stack.gatewayUrl}/admin`);
  await page.getByRole("heading", { name: "Operator console" }).waitFor();
  expect(new URL(page.url()).pathname).toBe("/admin/console/sign-in");
  await expectAccessible(page, `sign-in at ${width}`);
  await page.getByLabel("Admin token").fill("not the token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That is not the admin token.").waitFor();
  await page.getByLabel("Admin token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
  await page.getByText("Signed in as admin token").waitFor();
}

describe("the operator console in Chromium", () => {
  it("signs in with the admin token, shows the overview, finds an account, emails a sign-in link and suspends it", async () => {
    const prefix = `e2e-console-${crypto.randomUUID().slice(0, 8)}-`;
    const [target] = await makeAccounts(prefix, 3);
    if (!target) throw new Error("no account made");
    // A purchased-credit figure for the overview to show.
    const adjusted = await callApi(stack, `/admin/accounts/${target.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ purchased: 1500, reason: "e2e: goodwill" }),
    });
    expect(adjusted.status).toBe(200);
    const reconciled = await callApi(stack, "/admin/reconcile", {
      method: "POST",
      token: stack.adminToken,
    });
    expect(reconciled.status).toBe(200);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signIntoConsole(page, 1280);
    // The projections reach D1 through the ledger's outbox: reload until the figure arrives.
    await until(async () => {
      await page.reload();
      const text = (await page.locator("main").textContent()) ?? "";
      return /Purchased\s*1,500|Purchased\s*[1-9][\d,]*/.test(text);
    });
    await page.getByRole("heading", { name: "Credits outstanding" }).waitFor();
    await page.getByRole("heading", { name: "Revenue this month" }).waitFor();
    await page.getByText(/Last reconcile: \d{4}-/).waitFor();
    await expectAccessible(page, "overview at 1280");
    await shot(page, "console-overview-1280.png");

    // Search by the email's beginning; the three accounts, the target among them.
    await page.getByRole("link", { name: "Accounts" }).click();
    await page.getByRole("heading", { name: "Find an account" }).waitFor();
    await page.getByLabel(/Email \(or its beginning\)/).fill(prefix);
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("link", { name: target.email }).waitFor();
    expect(await page.locator("tbody tr").count()).toBe(3);
    await expectAccessible(page, "search results at 1280");
    await shot(page, "console-search-1280.png");

    // The account's page.
    await page.getByRole("link", { name: target.email }).click();
    await page.getByRole("heading", { name: target.email, level: 1 }).waitFor();
    await page.getByRole("heading", { name: "People" }).waitFor();
    expect(await page.locator("main").textContent()).toContain(target.id);
    await expectAccessible(page, "account at 1280");

    // A way back in for the owner: the emailed sign-in link, with a reason.
    expect(await page.getByLabel("Member").inputValue()).toBe(target.email);
    await page.getByLabel("Reason (for the audit log)").fill("Customer wrote in: lost access");
    await page.getByRole("button", { name: "Email a sign-in link" }).click();
    await page.getByText("Sign-in link emailed.").waitFor();
    const emails = await callApi(stack, `/admin/accounts/${target.id}/emails`, {
      token: stack.adminToken,
    });
    expect((emails.body.data as Array<{ kind: string; to: string }>)[0]).toMatchObject({
      kind: "sign_in_link",
      to: target.email,
    });

    // Suspend with a reason: the page shows the suspension; the key is refused, free.
    const reason = "Card testing reported by the bank";
    await page.getByLabel("Reason (shown to the account's people)").fill(reason);
    await page.getByRole("button", { name: "Suspend" }).click();
    await page.getByText("Account suspended.").waitFor();
    await page.getByText(/^Suspended since /).waitFor();
    await page.getByText(`Reason: ${reason}`).waitFor();
    await page.getByRole("heading", { name: "Lift the suspension" }).waitFor();
    await expectAccessible(page, "suspended account at 1280");
    await shot(page, "console-account-1280.png");
    const refused = await callApi(stack, "/v1/classify", {
      method: "POST",
      token: target.api_key,
      body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
    });
    expect(refused.status).toBe(403);
    expect((refused.body.error as { type: string }).type).toBe("account_suspended");

    // The search lists it as suspended.
    await page.goto(
      `${stack.gatewayUrl}/admin/console/accounts?query=${encodeURIComponent(prefix)}`,
    );
    const row = page.locator("tbody tr", { hasText: target.email });
    expect(await row.textContent()).toContain("suspended");
    await context.close();
  });

  it("every console page is axe-clean and usable at 390 px", async () => {
    const prefix = `e2e-phone-${crypto.randomUUID().slice(0, 8)}-`;
    const [target] = await makeAccounts(prefix, 1);
    if (!target) throw new Error("no account made");
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await signIntoConsole(page, 390);
    await expectAccessible(page, "overview at 390");
    await shot(page, "console-overview-390.png");
    await page.goto(
      `${stack.gatewayUrl}/admin/console/accounts?query=${encodeURIComponent(prefix)}`,
    );
    await page.getByRole("link", { name: target.email }).waitFor();
    await expectAccessible(page, "search results at 390");
    await page.getByRole("link", { name: target.email }).click();
    await page.getByRole("heading", { name: target.email, level: 1 }).waitFor();
    await expectAccessible(page, "account at 390");
    // Nothing wider than the phone but the tables' own scrolling boxes.
    const overflow = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await page.getByLabel("Reason (shown to the account's people)").fill("Phone check");
    await page.getByRole("button", { name: "Suspend" }).click();
    await page.getByText("Reason: Phone check").waitFor();
    await expectAccessible(page, "suspended account at 390");
    await shot(page, "console-account-390.png");
    await context.close();
  });
});
