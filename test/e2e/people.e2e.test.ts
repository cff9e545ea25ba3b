/**
 * People, not keys (issue 20) in a real browser against the real local stack: an owner signs
 * in by the emailed link, invites a developer from the Members section; the developer accepts
 * the invitation, creates a `classify` key, sees no purchase or limit forms and is refused a
 * top-up and a raised limit (403 insufficient_role); the owner sees the joining and the key in
 * the Activity section; the last owner cannot leave (a removal or demotion posted anyway is
 * refused in the page's words). axe-core runs
 * in every new page (sign-in, check your email, the link's confirm page, the invitation) at
 * 1280 and 390 px. Leaves screenshots in test-results/ (people-*.png).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  axeProblems,
  api as callApi,
  type Stack,
  signInLink,
  startStackAndBrowser,
  until,
} from "./harness";

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

/** A fresh client address per browser: every browser here is 127.0.0.1 (see signInByEmail). */
async function freshClient(page: Page) {
  const r = crypto.getRandomValues(new Uint8Array(3));
  await page.setExtraHTTPHeaders({ "CF-Connecting-IP": `10.${r[0]}.${r[1]}.${r[2]}` });
}

/** The invitation link in the newest invitation email of the account, to `email`. */
async function invitationLink(accountId: string, email: string): Promise<string> {
  return until(async () => {
    const res = await callApi(stack, `/admin/accounts/${accountId}/emails`, {
      token: stack.adminToken,
    });
    const mail = ((res.body.data ?? []) as Array<{ kind: string; to: string; text: string }>).find(
      (m) => m.kind === "invitation" && m.to === email,
    );
    return /https?:\/\/\S+\/account\/invitation\?token=[0-9A-Za-z]{32}/.exec(mail?.text ?? "")?.[0];
  }, 20_000);
}

/** Builds and submits a form as a page left open would post it: `({action, fields}) => …`. */
const POST_FORM = `({ action, fields }) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}`;

async function shot(page: Page, name: string) {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

describe("people in Chromium", () => {
  it("an owner signs in by email and invites a developer, who accepts, makes a classify key and buys nothing", async () => {
    const created = await callApi(stack, "/admin/accounts", {
      method: "POST",
      token: stack.adminToken,
      body: JSON.stringify({ email: `e2e-owner-${crypto.randomUUID()}@example.com` }),
    });
    expect(created.status).toBe(201);
    const account = created.body as { id: string; email: string };

    for (const width of [1280, 390]) {
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      await freshClient(page);
      await page.goto(`${stack.gatewayUrl}/account/sign-in`);
      expect(await axeProblems(page)).toEqual([]);
      await page.getByLabel("Email address").fill(account.email);
      await page.getByRole("button", { name: "Email me a sign-in link" }).click();
      await page.getByRole("heading", { name: "Check your email" }).waitFor();
      expect(await axeProblems(page)).toEqual([]);
      await page.goto(await signInLink(stack, account.email));
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      expect(await axeProblems(page)).toEqual([]);
      await shot(page, `people-sign-in-confirm-${width}.png`);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
      await page.getByRole("heading", { name: "Members" }).waitFor();
      expect(await axeProblems(page)).toEqual([]);
      if (width === 390) {
        await context.close();
        continue;
      }

      // The last owner cannot leave: the page says so instead of offering it.
      await page.getByText("The last owner stays").waitFor();
      // Invite a developer from the Members section.
      const developer = `e2e-dev-${crypto.randomUUID()}@example.com`;
      await page.locator("#invite-email").fill(developer);
      await page.getByLabel("Role", { exact: true }).selectOption("developer");
      await page.getByRole("button", { name: "Send invitation" }).click();
      await page.getByText(`Invitation sent to ${developer} (developer).`).waitFor();
      expect(await page.locator("#members").textContent()).toContain("invited");

      // The developer, in a browser of their own, accepts.
      const devContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const dev = await devContext.newPage();
      await freshClient(dev);
      await dev.goto(await invitationLink(account.id, developer));
      await dev.getByRole("heading", { name: "Join an account" }).waitFor();
      expect(await axeProblems(dev)).toEqual([]);
      await shot(dev, "people-invitation-1280.png");
      await dev.getByRole("button", { name: "Accept and sign in" }).click();
      await dev.getByText("Welcome: you joined the account and are signed in.").waitFor();
      expect(await axeProblems(dev)).toEqual([]);
      // Only the forms a developer may use: keys (classify only), nothing to buy or limit.
      expect(await dev.getByRole("button", { name: "Review purchase" }).count()).toBe(0);
      expect(await dev.getByRole("button", { name: "Save limit" }).count()).toBe(0);
      expect(await dev.getByRole("button", { name: "Send invitation" }).count()).toBe(0);
      expect(await dev.locator('#key-scope option[value="full"]').count()).toBe(0);
      await dev.getByLabel("Name (optional)").fill("dev-laptop");
      await dev.getByRole("button", { name: "Create key" }).click();
      await dev.getByText("New API key “dev-laptop”.").waitFor();
      const key = await dev.getByLabel("Your new key").inputValue();
      const listed = await callApi(stack, "/v1/account/keys", { token: key });
      expect(listed.status).toBe(200);
      const mine = (listed.body.data as Array<{ name: string; scope: string }>).find(
        (k) => k.name === "dev-laptop",
      );
      expect(mine?.scope).toBe("classify");
      // The session's own API calls, as the page's scripts would make them: refused by role.
      const asDev = (method: string, pathname: string, data: unknown) =>
        dev.request.fetch(`${stack.gatewayUrl}${pathname}`, {
          method,
          data,
          headers: { Origin: stack.gatewayUrl, "Content-Type": "application/json" },
        });
      for (const [method, pathname, data] of [
        ["POST", "/v1/account/top-ups", { package: "credits_1000" }],
        ["PUT", "/v1/account/limits", { monthly_spend_limit_cents: 100_000 }],
      ] as const) {
        const res = await asDev(method, pathname, data);
        expect(res.status(), `${method} ${pathname}`).toBe(403);
        expect((await res.json()).error.type).toBe("insufficient_role");
      }
      await shot(dev, "people-developer-1280.png");

      // The owner sees the developer active.
      await page.reload();
      await page.getByRole("heading", { name: "Members" }).waitFor();
      const row = page.locator("#members tr", { hasText: developer });
      expect(await row.textContent()).toContain("active");

      // ... and both of the developer's changes in the Activity section (the audit log), by
      // the developer: the joining, with its role, and the classify key.
      await page.getByRole("heading", { name: "Activity" }).waitFor();
      const joined = page.locator('#activity-log tr[data-action="member.joined"]', {
        hasText: developer,
      });
      expect(await joined.count()).toBe(1);
      expect(await joined.textContent()).toContain("Member joined");
      expect(await joined.textContent()).toContain("as developer");
      const keyRow = page.locator('#activity-log tr[data-action="key.created"]', {
        hasText: "dev-laptop",
      });
      expect(await keyRow.count()).toBe(1);
      expect(await keyRow.textContent()).toContain("classify only");
      expect(await keyRow.textContent()).toContain(developer);
      await shot(page, "people-owner-1280.png");

      // The last owner cannot leave: the page offers neither; a remove or a demotion posted
      // anyway (a page left open while another owner left) is refused in the page's words.
      const me = await page.request.fetch(`${stack.gatewayUrl}/v1/account/members`, {
        headers: { Origin: stack.gatewayUrl },
      });
      expect(me.status()).toBe(200);
      const owner = ((await me.json()).data as Array<{ id: string; email: string }>).find(
        (m) => m.email === account.email,
      );
      if (!owner) throw new Error("the owner is not listed");
      expect(await page.getByRole("button", { name: `Remove ${account.email}` }).count()).toBe(0);
      const csrf = await page
        .locator('form[action="/account/billing/members"] input[name="csrf"]')
        .inputValue();
      for (const [action, fields] of [
        [`/account/billing/members/${owner.id}/remove`, {}],
        [`/account/billing/members/${owner.id}/role`, { role: "viewer" }],
      ] as const) {
        // As a string: the tests compile without the DOM's types.
        await page.evaluate(
          `(${POST_FORM})(${JSON.stringify({ action, fields: { ...fields, csrf } })})`,
        );
        await page.getByText("This is the account's last owner.").waitFor();
        await page.getByText("Make another member an owner first.").waitFor();
        expect(await axeProblems(page)).toEqual([]);
        const mine = page.locator("#members tr", { hasText: account.email });
        expect(await mine.textContent()).toContain("owner");
        expect(await mine.textContent()).toContain("The last owner stays");
      }
      await shot(page, "people-last-owner-1280.png");
      await devContext.close();
      await context.close();
    }
  });
});
