/**
 * Passkeys (issue 20 item 7) in Chromium with the DevTools Protocol's virtual authenticator
 * (CTAP2, resident keys, user verification): a person signs in by the emailed link, adds a
 * passkey on the Billing page, signs out, signs in with the passkey alone (the audit log says
 * both), and removes it. axe-core runs on the Billing page with its Passkeys section and on the sign-in
 * page that offers the passkey, at 1280 and 390 px.
 *
 * The stack's DASHBOARD_URL names `localhost`, not 127.0.0.1: WebAuthn takes the page's host as
 * its RP ID, and an IP address is never a valid one.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  axeProblems,
  api as callApi,
  type Stack,
  signInLink,
  startStackAndBrowser,
} from "./harness";

const SHOTS = path.resolve("test-results");
let stack: Stack;
let browser: Browser;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ stack, browser, stop } = await startStackAndBrowser({ dashboardHost: "localhost" }));
});

afterAll(async () => {
  await stop?.();
});

describe("passkeys in Chromium", () => {
  it("signs in by email, adds a passkey, signs out, signs in with the passkey, and removes it", async () => {
    const base = stack.dashboardOrigin;
    expect(new URL(base).hostname).toBe("localhost");
    const created = await callApi(stack, "/admin/accounts", {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ email: `e2e-passkey-${crypto.randomUUID()}@example.com` }),
    });
    expect(created.status).toBe(201);
    const account = created.body as { id: string; email: string; api_key: string };

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const r = crypto.getRandomValues(new Uint8Array(3));
    await page.setExtraHTTPHeaders({ "CF-Connecting-IP": `10.${r[0]}.${r[1]}.${r[2]}` });
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });

    // Sign in by the emailed link.
    await page.goto(`${base}/account/sign-in`);
    await page.getByLabel("Email address").fill(account.email);
    await page.getByRole("button", { name: "Email me a sign-in link" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    const link = await signInLink(stack, account.email);
    expect(new URL(link).origin).toBe(base);
    await page.goto(link);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();

    // Add a passkey.
    await page.getByRole("heading", { name: "Passkeys" }).waitFor();
    expect(await page.getByText("You have no passkey yet.").count()).toBe(1);
    expect(await axeProblems(page)).toEqual([]);
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.getByText("Passkey added.").waitFor();
    expect(await page.locator("#passkeys tbody tr").count()).toBe(1);
    expect(await axeProblems(page)).toEqual([]);
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    expect(credentials).toHaveLength(1);
    expect(credentials[0]?.isResidentCredential).toBe(true);
    await mkdir(SHOTS, { recursive: true });
    await page
      .locator("section", { has: page.getByRole("heading", { name: "Passkeys" }) })
      .screenshot({ path: path.join(SHOTS, "passkeys-section-1280.png") });

    // Sign out; the signed-out page offers the passkey.
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await page.getByText("You are signed out.").waitFor();
    for (const width of [390, 1280]) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(`${base}/account/sign-in`);
      await page.getByRole("button", { name: "Sign in with a passkey" }).waitFor();
      expect(await axeProblems(page), `sign-in at ${width}px`).toEqual([]);
      await page.screenshot({ path: path.join(SHOTS, `passkeys-sign-in-${width}.png`) });
    }

    // Sign in with the passkey alone: no address typed, no email sent.
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
    expect(await page.locator("#passkeys tbody tr").textContent()).not.toContain("never");

    const audit = await callApi(stack, "/v1/account/audit-log", { token: account.api_key });
    expect(audit.status).toBe(200);
    const entries = audit.body.data as Array<{ action: string; details: Record<string, unknown> }>;
    expect(entries.filter((e) => e.action === "passkey.added")).toHaveLength(1);
    expect(
      entries.filter((e) => e.action === "person.signed_in").map((e) => e.details.method ?? null),
    ).toEqual(["passkey", null]);
    await page.getByText("with a passkey").first().waitFor();

    // Remove it: the section says so, and the page stays axe-clean.
    await page.getByRole("button", { name: /^Remove the passkey ending / }).click();
    await page.getByText("The passkey was removed").waitFor();
    expect(await page.getByText("You have no passkey yet.").count()).toBe(1);
    expect(await axeProblems(page)).toEqual([]);
    await context.close();
  });
});
