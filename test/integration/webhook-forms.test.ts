/**
 * The Billing page's webhook forms (issue 22; contract: "Webhooks to customers"): add an
 * endpoint (its secret on the next page view only), send it a test event and see the delivery's
 * status on the page, delete it; a bad or internal URL and a sixth endpoint refused on the page
 * in words at the API's status; a role without `developer_tools` offered no form and refused a
 * post (403). The customer's endpoint is the upstream stub's `/_test/hooks/<name>`.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { describe, expect, it, vi } from "vitest";
import { formToken } from "../../src/http/form-token";
import type { Bindings } from "../../src/platform/env";
import { BASE, createAccount, gateway, json, type TestAccount } from "../helpers/http";
import {
  billingHtml,
  follow,
  INVITE_LINK,
  openLinkPage,
  page,
  setCookiePair,
  signIn,
  tokenFor,
  withMailbox,
} from "../helpers/page";

const ADD = "/account/billing/webhooks";
const ADD_ACTION = `${ADD}#webhooks`;
const SECRET_FIELD = /<textarea id="new-webhook-secret"[^>]*>([^<]*)<\/textarea>/;
const hookName = () => `f${crypto.randomUUID().replaceAll("-", "")}`;
const hookUrl = (name: string) => `${env.UPSTREAM_URL}/_test/hooks/${name}`;

interface EndpointJson {
  id: string;
  url: string;
  events: string[] | null;
}

async function endpoints(account: TestAccount): Promise<EndpointJson[]> {
  const res = await gateway("/v1/account/webhooks", { key: account.api_key });
  expect(res.status).toBe(200);
  return (await json<{ data: EndpointJson[] }>(res)).data;
}

/** Posts the page's add form as the browser does: the URL and the events checked. */
async function add(cookie: string, url: string, events: string[] = [], bindings?: Bindings) {
  const html = await billingHtml(cookie);
  const form: Record<string, string> = { url, csrf: tokenFor(html, ADD_ACTION) };
  for (const type of events) form[`event:${type}`] = "on";
  return page(ADD, { cookie, form, env: bindings });
}

/** The `<div class="webhook">` block of the endpoint on the page. */
function endpointBlock(html: string, id: string): string {
  const start = html.indexOf(`data-endpoint="${id}"`);
  expect(start, `endpoint ${id} on the page`).toBeGreaterThan(-1);
  const end = html.indexOf('<div class="webhook"', start + 1);
  return html.slice(start, end === -1 ? html.indexOf("</section>", start) : end);
}

/** A member of the account with this role, signed in (invited by the owner through the API). */
async function memberCookie(ownerCookie: string, role: "billing" | "developer" | "viewer") {
  const email = `${crypto.randomUUID()}@example.com`;
  const mailbox = withMailbox();
  const res = await gateway("/v1/account/members", {
    method: "POST",
    headers: { Origin: BASE, "Sec-Fetch-Site": "same-origin", Cookie: ownerCookie },
    body: JSON.stringify({ email, role }),
    env: mailbox.env,
  });
  expect(res.status).toBe(201);
  await res.arrayBuffer();
  const token = INVITE_LINK.exec(mailbox.sent.findLast((m) => m.to === email)?.text ?? "")?.[1];
  expect(token, "an invitation link").toBeTruthy();
  const opened = await openLinkPage(`/account/invitation?token=${token}`);
  const accepted = await page("/account/invitation", {
    cookie: opened.cookie,
    form: { token: token ?? "", csrf: opened.csrf },
  });
  expect(accepted.status).toBe(303);
  await accepted.arrayBuffer();
  return setCookiePair(accepted, "tg_session");
}

/** The form token of `purpose` for a session cookie, as the server derives it. */
function formTokenOf(cookie: string, purpose: string): Promise<string> {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
  return formToken(env.SESSION_SECRET, value.split(".")[5] ?? "", purpose);
}

describe("webhook endpoints on the Billing page", () => {
  it("adds one: the secret shows on the next page view only, and signs the test event sent from the page, whose delivery the page lists", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const name = hookName();
    const res = await add(cookie, hookUrl(name));
    const html = await follow(res, cookie);
    const secret = SECRET_FIELD.exec(html)?.[1] ?? "";
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32}$/);
    expect(html.split(secret).length - 1, "the secret, once").toBe(1);
    expect(html).toContain("shown only this once");
    // Never again: not on a reload, not in the API.
    const again = await billingHtml(cookie);
    expect(again).not.toContain(secret);
    expect(again).not.toContain('id="new-webhook-secret"');
    const [listed] = await endpoints(account);
    expect(listed).toEqual({
      id: expect.stringMatching(/^we_/),
      url: hookUrl(name),
      events: null,
      created_at: expect.any(String),
    });
    expect(JSON.stringify(listed)).not.toContain(secret);
    const id = listed?.id ?? "";
    expect(endpointBlock(again, id)).toContain("Nothing sent yet.");

    // "Send test": the same queue and signature as the API's test send.
    const sent = await page(`/account/billing/webhooks/${id}/test`, {
      cookie,
      form: { csrf: tokenFor(again, `/account/billing/webhooks/${id}/test`) },
    });
    expect(await follow(sent, cookie)).toContain(`Test event sent to ${hookUrl(name)}.`);
    const got = await vi.waitFor(
      async () => {
        const r = await fetch(hookUrl(name));
        const list = (await r.json<{ data: { headers: Record<string, string>; body: string }[] }>())
          .data;
        expect(list).toHaveLength(1);
        return list[0];
      },
      { timeout: 10_000 },
    );
    const payload = new Webhook(secret).verify(got?.body ?? "", {
      "webhook-id": got?.headers["webhook-id"] ?? "",
      "webhook-timestamp": got?.headers["webhook-timestamp"] ?? "",
      "webhook-signature": got?.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({ type: "webhook.test", data: { endpoint_id: id } });
    // The delivery, recorded with its status, shows on the page.
    await vi.waitFor(
      async () => {
        const block = endpointBlock(await billingHtml(cookie), id);
        expect(block).toContain(`data-delivery="${got?.headers["webhook-id"]}"`);
        expect(block).toContain("webhook.test");
        expect(block).toContain('<span class="pill succeeded">succeeded</span>');
        expect(block).toContain("HTTP 200");
      },
      { timeout: 10_000 },
    );
  });

  it("subscribes to the events checked", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const res = await add(cookie, hookUrl(hookName()), ["balance.low", "recharge.failed"]);
    const html = await follow(res, cookie);
    const [listed] = await endpoints(account);
    expect(listed?.events).toEqual(["balance.low", "recharge.failed"]);
    expect(endpointBlock(html, listed?.id ?? "")).toContain("Events: balance.low, recharge.failed");
  });

  it("deletes one: gone from the page and the API; deleting it again is a 404 page", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    await follow(await add(cookie, hookUrl(hookName())), cookie);
    const [listed] = await endpoints(account);
    const action = `/account/billing/webhooks/${listed?.id}/delete`;
    const csrf = tokenFor(await billingHtml(cookie), action);
    const html = await follow(await page(action, { cookie, form: { csrf } }), cookie);
    expect(html).toContain(`Webhook endpoint ${listed?.url} deleted`);
    expect(html).not.toContain(`data-endpoint="${listed?.id}"`);
    expect(html).toContain("No webhook endpoints.");
    expect(await endpoints(account)).toEqual([]);
    const twice = await page(action, { cookie, form: { csrf } });
    expect(twice.status).toBe(404);
    expect(await twice.text()).toContain("No such webhook endpoint");
    // Audited as the API's changes are, by the person signed in.
    const log = await gateway("/v1/account/audit-log", { key: account.api_key });
    const entries = (
      await json<{ data: { action: string; actor: { type: string; label: string } }[] }>(log)
    ).data.filter((e) => e.action.startsWith("webhook."));
    expect(entries.map((e) => [e.action, e.actor.type, e.actor.label])).toEqual([
      ["webhook.deleted", "person", account.email],
      ["webhook.created", "person", account.email],
    ]);
  });

  it("refuses a URL that is not one with 400, on the page, the form filled in again", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const res = await add(cookie, "ftp://example.com/hook", ["plan.changed"]);
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain("No endpoint added: the URL must be an http or https URL.");
    expect(html).toContain('value="ftp://example.com/hook"');
    expect(html).toMatch(/id="webhook-event-plan.changed"[^>]*checked/);
    expect(html).toContain('aria-invalid="true"');
    expect(await endpoints(account)).toEqual([]);
  });

  it("outside local mode refuses an internal address (server-side request forgery) with 400 in words", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    // A production configuration the gateway serves (as customer-webhooks.test.ts has it).
    const production: Bindings = {
      ...env,
      ENVIRONMENT: "production",
      UPSTREAM_URL: "https://classifier.acme.io",
      DASHBOARD_URL: "https://api.acme.io/account/billing",
      STRIPE_API_URL: undefined,
      EMAIL_FROM: "billing@acme.io",
      SUPPORT_EMAIL: "help@acme.io",
      LEDGER_TEST_CLOCK: undefined,
    };
    for (const [url, words] of [
      ["https://169.254.169.254/latest", "must not be a private, loopback or link-local address"],
      ["https://localhost/hook", "must not name a local or internal host"],
      ["http://hooks.acme.io/hook", "must be an https URL"],
    ] as const) {
      const res = await add(cookie, url, [], production);
      expect(res.status, url).toBe(400);
      expect(await res.text()).toContain(`No endpoint added: the URL ${words}.`);
    }
    expect(await endpoints(account)).toEqual([]);
  });

  it("allows 5: the page then says so instead of the form, and a sixth posted anyway is 409 in words", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    for (let i = 0; i < 5; i++) {
      const res = await add(cookie, hookUrl(hookName()));
      expect(res.status).toBe(303);
      await res.arrayBuffer();
    }
    const html = await billingHtml(cookie);
    expect(html).toContain("At most 5 endpoints: delete one to add another.");
    expect(html).not.toContain(`action="${ADD_ACTION}"`);
    const sixth = await page(ADD, {
      cookie,
      form: { url: hookUrl(hookName()), csrf: await formTokenOf(cookie, "webhooks") },
    });
    expect(sixth.status).toBe(409);
    expect(await sixth.text()).toContain(
      "An account can have at most 5 webhook endpoints. Delete one first.",
    );
    expect(await endpoints(account)).toHaveLength(5);
  });

  it("a role without developer_tools sees the endpoints but no form, and its posts are 403; a developer may", async () => {
    const account = await createAccount();
    const owner = await signIn(account);
    await follow(await add(owner, hookUrl(hookName())), owner);
    const [listed] = await endpoints(account);
    const id = listed?.id ?? "";
    for (const role of ["billing", "viewer"] as const) {
      const cookie = await memberCookie(owner, role);
      const html = await billingHtml(cookie);
      expect(html, role).toContain(`data-endpoint="${id}"`);
      expect(html, role).not.toContain('action="/account/billing/webhooks');
      const csrf = await formTokenOf(cookie, "webhooks");
      for (const [path, form] of [
        [ADD, { url: hookUrl(hookName()), csrf }],
        [`/account/billing/webhooks/${id}/test`, { csrf }],
        [`/account/billing/webhooks/${id}/delete`, { csrf }],
      ] as const) {
        const res = await page(path, { cookie, form });
        expect(res.status, `${role} ${path}`).toBe(403);
        await res.arrayBuffer();
      }
    }
    expect(await endpoints(account)).toHaveLength(1);
    const developer = await memberCookie(owner, "developer");
    expect(await billingHtml(developer)).toContain(`action="${ADD_ACTION}"`);
    await follow(await add(developer, hookUrl(hookName())), developer);
    expect(await endpoints(account)).toHaveLength(2);
  });

  it("refuses another form's token with 403 and adds nothing", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const res = await page(ADD, {
      cookie,
      form: { url: hookUrl(hookName()), csrf: await formTokenOf(cookie, "keys") },
    });
    expect(res.status).toBe(403);
    await res.arrayBuffer();
    expect(await endpoints(account)).toEqual([]);
  });
});
