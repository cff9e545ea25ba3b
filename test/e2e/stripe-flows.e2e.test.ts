/**
 * The Stripe flows in a real browser against the whole local stack: a free account subscribes
 * to Starter through Checkout with a test card, spends down to the threshold, is auto-recharged
 * through a one-off invoice, and finds that invoice in its history and in the customer portal;
 * a payment that needs authentication is completed on the hosted invoice page and credited
 * once. Screenshots go to test-results/ (the ones in docs/, linked from the README, are copies).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NoSubscriptionError, simulateRenewal } from "../../scripts/simulate-renewal.mjs";
import {
  api,
  reloadUntil,
  type Stack,
  signInByEmail,
  startStackAndBrowser,
  until,
} from "./harness";

const SHOTS = path.resolve("test-results");
let h: Awaited<ReturnType<typeof startStackAndBrowser>>;

beforeAll(async () => {
  h = await startStackAndBrowser();
});

afterAll(async () => {
  await h?.stop();
});

async function freeAccount(stack: Stack, email: string) {
  const created = await api(stack, "/admin/accounts", {
    method: "POST",
    token: stack.adminToken,
    body: JSON.stringify({ email }),
  });
  expect(created.status).toBe(201);
  return { id: created.body.id as string, key: created.body.api_key as string, email };
}

interface Tx {
  type: string;
  status: string;
  credits: number;
  amount_cents: number;
  invoice_url: string | null;
  action_url: string | null;
}

async function transactions(stack: Stack, key: string): Promise<Tx[]> {
  return (await api(stack, "/v1/account/transactions", { token: key })).body.data as Tx[];
}

/** Subscribes through Checkout the way the hosted page's form posts it (no browser needed). */
async function subscribe(stack: Stack, key: string, plan: "starter" | "pro") {
  const session = await api(stack, "/v1/account/checkout", {
    method: "POST",
    token: key,
    body: JSON.stringify({ plan }),
  });
  expect(session.status).toBe(200);
  const done = await fetch(session.body.url as string, {
    method: "POST",
    redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ payment_method: "pm_card_visa" }),
  });
  expect(done.status).toBe(303);
  await done.arrayBuffer();
}

describe("npm run simulate:renewal", () => {
  it("renews the account's real subscription in the local Stripe server: a new paid cycle", async () => {
    const { stack } = h;
    const account = await freeAccount(stack, "e2e-renewal@example.com");
    await subscribe(stack, account.key, "starter");
    const first = await until(async () => {
      const b = await api(stack, "/v1/account/balance", { token: account.key });
      expect(b.body).toMatchObject({ plan: "starter", monthly: 3_000 });
      return b.body as { cycle_ends_at: string };
    });
    const spent = await api(stack, `/admin/accounts/${account.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: -1_000, reason: "e2e: use some of the cycle" }),
    });
    expect(spent.status).toBe(200);

    const { invoice } = await simulateRenewal(stack, account.id, () => {});
    expect(invoice).toMatchObject({ billing_reason: "subscription_cycle", status: "paid" });
    // The renewal's paid invoice starts the next cycle: the allowance again, a month later, and
    // a history row with that invoice.
    await until(async () => {
      const b = await api(stack, "/v1/account/balance", { token: account.key });
      expect(b.body.monthly).toBe(3_000);
      expect(Date.parse(b.body.cycle_ends_at as string)).toBeGreaterThan(
        Date.parse(first.cycle_ends_at) + 27 * 86_400_000,
      );
      const grants = (await transactions(stack, account.key)).filter(
        (t) => t.type === "monthly_grant" && t.amount_cents === 1_900,
      );
      expect(grants).toHaveLength(2);
      return true;
    });
  });

  it("without a subscription says so and changes nothing (it used to move the cycle back)", async () => {
    const { stack } = h;
    const account = await freeAccount(stack, "e2e-renewal-free@example.com");
    const before = await api(stack, "/v1/account/balance", { token: account.key });
    await expect(simulateRenewal(stack, account.id, () => {})).rejects.toThrow(NoSubscriptionError);
    const after = await api(stack, "/v1/account/balance", { token: account.key });
    expect(after.body).toEqual(before.body);
    expect(await transactions(stack, account.key)).toHaveLength(1);
  });
});

describe("Stripe flows in Chromium", () => {
  it("subscribes through Checkout, is auto-recharged by invoice, and finds the invoice in its history and the portal", async () => {
    const { stack, browser } = h;
    const account = await freeAccount(stack, "e2e-checkout@example.com");
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signInByEmail(stack, page, account.email);
    expect(await page.locator("#plan-state").textContent()).toContain("Free plan");

    // Checkout: the local Stripe-compatible server's hosted page, a test card, back again.
    await page.getByRole("button", { name: /Subscribe to Starter/ }).click();
    await page.getByRole("button", { name: "Subscribe" }).waitFor();
    await page.getByLabel(/pm_card_visa/).check();
    await page.getByRole("button", { name: "Subscribe" }).click();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    // Back before the webhooks, the page says the plan is being activated and refreshes itself
    // (no Subscribe offered); once they have arrived, the plan is said once, and the page is
    // plain /account/billing again.
    await page.getByText("Your Starter plan is active: 3,000 credits a month.").waitFor();
    expect(new URL(page.url()).search).toBe("");
    // The webhooks (checkout.session.completed, the subscription and its first invoice) arrive.
    await reloadUntil(page, async () =>
      ((await page.locator("#plan-state").textContent()) ?? "").includes(
        "Starter subscription: active",
      ),
    );
    expect(await page.locator("#card-on-file").textContent()).toContain("visa ending 4242");
    const balance = await api(stack, "/v1/account/balance", { token: account.key });
    expect(balance.body).toMatchObject({ plan: "starter", monthly: 3_000, purchased: 0 });

    // Auto-recharge with the card Checkout saved, then spend down to the threshold.
    await page.getByLabel("Auto-recharge credits").check();
    await page.getByLabel("Credit package").selectOption("credits_1000");
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.getByText("Auto-recharge settings saved.").waitFor();
    const spent = await api(stack, `/admin/accounts/${account.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: -2_900, reason: "e2e: spend down to 100" }),
    });
    expect(spent.status).toBe(200);
    const recharge = await until(async () =>
      (await transactions(stack, account.key)).find(
        (t) => t.type === "auto_recharge" && t.status === "succeeded",
      ),
    );
    expect(recharge).toMatchObject({ credits: 1_000, amount_cents: 700, action_url: null });
    expect(recharge.invoice_url).toMatch(/\/i\/in_/);
    const renewal = (await transactions(stack, account.key)).find(
      (t) => t.type === "monthly_grant",
    );
    expect(renewal?.amount_cents).toBe(1_900);
    expect(renewal?.invoice_url).toMatch(/\/i\/in_/);
    await reloadUntil(
      page,
      async () =>
        (await page
          .locator('#transactions tr[data-type="auto_recharge"][data-status="succeeded"]')
          .count()) > 0,
    );
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "checkout-subscribed.png"), fullPage: true });

    // The hosted invoice page says it is paid and has a receipt.
    const invoicePage = await context.newPage();
    await invoicePage.goto(recharge.invoice_url as string);
    expect((await invoicePage.content()).toLowerCase()).toContain("paid");
    await invoicePage.close();

    // The customer portal lists the purchase's invoice beside the subscription's.
    await page.getByRole("button", { name: "Manage plan and billing" }).click();
    await page.getByRole("heading", { name: /Customer portal/ }).waitFor();
    expect(await page.locator("#invoices li").count()).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: path.join(SHOTS, "portal-invoices.png"), fullPage: true });
    await context.close();
  });

  it("completes a payment that needs authentication on the hosted invoice page, credited once", async () => {
    const { stack, browser } = h;
    const account = await freeAccount(stack, "e2e-3ds@example.com");
    const card = await api(stack, `/admin/accounts/${account.id}/payment-method`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ payment_method: "pm_card_authenticationRequired" }),
    });
    expect(card.status).toBe(200);
    const on = await api(stack, "/v1/account/auto-recharge", {
      method: "PUT",
      token: account.key,
      body: JSON.stringify({ enabled: true, package: "credits_1000" }),
    });
    expect(on.status).toBe(200);
    await api(stack, `/admin/accounts/${account.id}/credits`, {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ monthly: -400, reason: "e2e: spend down to 100" }),
    });
    // Off-session, the card needs its owner: nothing granted, auto-recharge off, a link.
    const waiting = await until(async () =>
      (await transactions(stack, account.key)).find((t) => t.status === "requires_action"),
    );
    expect(waiting.action_url).toMatch(/\/i\/in_/);
    // The history row is written before the ledger turns auto-recharge off.
    const settings = await until(async () => {
      const got = await api(stack, "/v1/account/auto-recharge", { token: account.key });
      return got.body.last_failure ? got : null;
    });
    expect(settings.body).toMatchObject({
      enabled: false,
      last_failure: { action_url: waiting.action_url },
    });
    expect((await api(stack, "/v1/account/balance", { token: account.key })).body).toMatchObject({
      purchased: 0,
    });

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(waiting.action_url as string);
    await page.getByRole("button", { name: /Authenticate and pay/ }).click();
    await page.waitForLoadState();
    await page.screenshot({ path: path.join(SHOTS, "invoice-authenticated.png"), fullPage: true });
    // invoice.paid reaches the gateway: the same recharge is credited, once.
    await until(async () => {
      const b = (await api(stack, "/v1/account/balance", { token: account.key })).body;
      return b.purchased === 1_000;
    });
    const rows = await transactions(stack, account.key);
    expect(rows.filter((t) => t.type === "auto_recharge")).toHaveLength(1);
    expect(rows.find((t) => t.type === "auto_recharge")?.status).toBe("succeeded");
    const audit = await api(stack, `/admin/accounts/${account.id}/audit`, {
      token: stack.adminToken,
    });
    expect(audit.body).toMatchObject({ consistent: true });
    await context.close();
  });
});
