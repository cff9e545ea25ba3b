/**
 * Account / Billing in a real browser against the real local stack (wrangler dev, local
 * Stripe-compatible server, demo upstream): sign in, auto-recharge on, spend down, and the
 * recharge appears in the history. Leaves a screenshot in test-results/billing-page.png.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalStack } from "../../scripts/local-stack.mjs";

const CHROMIUM = "/usr/bin/chromium";
// scripts/ensure-chromium.mjs installs it where it can and warns where it cannot.
const hasChromium = existsSync(CHROMIUM);
const SCREENSHOT = path.resolve("test-results", "billing-page.png");

type Stack = Awaited<ReturnType<typeof startLocalStack>>;

/** A port nobody listens on right now, so a developer's `npm start` on 8787 is left alone. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

let stack: Stack;
let browser: Browser;
let persistTo: string;

async function api(pathname: string, init: RequestInit & { token: string }) {
  const res = await fetch(`${stack.gatewayUrl}${pathname}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${init.token}`,
      "Content-Type": "application/json",
      ...init.headers,
    },
  });
  const body = await res.json();
  return { status: res.status, body: body as Record<string, unknown> };
}

/** Reloads until `check` passes: the queue consumer and the usage flush run in the background. */
async function reloadUntil(page: Page, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error("the page never showed what was expected");
    await new Promise((r) => setTimeout(r, 1_000));
    await page.reload();
  }
}

beforeAll(async () => {
  if (!hasChromium) return;
  persistTo = await mkdtemp(path.join(tmpdir(), "tollgate-e2e-"));
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()) };
  // Always the local stand-ins, whatever the developer's shell points at.
  for (const name of ["UPSTREAM_URL", "STRIPE_API_URL", "STRIPE_SECRET_KEY", "ADMIN_TOKEN"]) {
    delete env[name];
  }
  stack = await startLocalStack({ persistTo, env, quiet: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-quic",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  if (persistTo) await rm(persistTo, { recursive: true, force: true });
});

describe.skipIf(!hasChromium)("Account / Billing in Chromium", () => {
  it("signs in, turns auto-recharge on, and shows the recharge after spending down", async () => {
    const demo = stack.demo as { id: string; api_key: string };
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

    // Signed out: the sign-in form, then the page.
    await page.goto(`${stack.gatewayUrl}/account/billing`);
    await expect.poll(() => page.title()).toContain("Sign in");
    await page.getByLabel("API key").fill(demo.api_key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
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
    await reloadUntil(
      page,
      async () =>
        (await recharged
          .first()
          .getAttribute("data-status")
          .catch(() => null)) === "succeeded",
    );
    await expect.poll(() => page.locator(".stat.total dd").textContent()).toBe("1,088");
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

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You are signed out.").waitFor();
    expect((await context.cookies()).find((c) => c.name === "tg_session")).toBeUndefined();
    expect(problems).toEqual([]);
    // The one refusal on the way is the auto-recharge save without a card.
    expect(failures).toEqual([`409 POST ${stack.gatewayUrl}/account/billing/auto-recharge`]);
    await context.close();
  });
});
