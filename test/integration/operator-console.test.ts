/**
 * The operator console at /admin (issue 21): local sign-in with ADMIN_TOKEN, Cloudflare Access,
 * the overview, search with paging, an account's page, and actions that need a reason and a
 * valid form token. Every input has a label (checked on each page's HTML).
 */
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";
import {
  asHtml,
  confirmSignIn,
  page,
  SIGN_IN_LINK,
  setCookiePair,
  tokenFor,
  withMailbox,
} from "../helpers/page";

/** Every visible input, select and textarea has a `<label for>` naming its id. */
function expectLabelled(html: string) {
  const ids = [...html.matchAll(/<(?:input|select|textarea)\b([^>]*)>/g)]
    .map((m) => m[1] ?? "")
    .filter((attrs) => !/type="hidden"/.test(attrs))
    .map((attrs) => /\bid="([^"]+)"/.exec(attrs)?.[1]);
  expect(ids.length).toBeGreaterThan(0);
  for (const id of ids) {
    expect(id, "an input without an id").toBeDefined();
    expect(html, `a label for #${id}`).toContain(`for="${id}"`);
  }
}

/** Signs in at the console's local form; the cookies to send back. */
async function signIn(): Promise<string> {
  const form = await page("/admin/console/sign-in");
  expect(form.status).toBe(200);
  const html = await form.text();
  expectLabelled(html);
  const nonce = setCookiePair(form, "tg_operator_form");
  const res = await page("/admin/console/sign-in", {
    cookie: nonce,
    form: { admin_token: ADMIN_TOKEN, csrf: tokenFor(html, "/admin/console/sign-in") },
  });
  expect(res.status).toBe(303);
  expect(res.headers.get("Location")).toBe("/admin");
  await res.arrayBuffer();
  return [nonce, setCookiePair(res, "tg_operator")].join("; ");
}

async function html(path: string, cookie: string): Promise<string> {
  const res = await page(path, { cookie });
  expect(res.status, path).toBe(200);
  return res.text();
}

describe("operator console: signing in", () => {
  it("without a session, GET /admin sends the browser to the sign-in form", async () => {
    const res = await page("/admin");
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/admin/console/sign-in");
  });

  it("a form post without a session goes to the sign-in form and changes nothing", async () => {
    const account = await createAccount();
    const res = await page(`/admin/console/accounts/${account.id}/suspend`, {
      form: { reason: "no session", csrf: "x" },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/admin/console/sign-in");
    expect((await classify(account)).status).toBe(200);
  });

  it("refuses a wrong admin token, and a sign-in post without its form token", async () => {
    const form = await page("/admin/console/sign-in");
    const formHtml = await form.text();
    const nonce = setCookiePair(form, "tg_operator_form");
    const wrong = await page("/admin/console/sign-in", {
      cookie: nonce,
      form: { admin_token: "guess", csrf: tokenFor(formHtml, "/admin/console/sign-in") },
    });
    expect(wrong.status).toBe(401);
    expect(setCookiePair(wrong, "tg_operator")).toBe("");
    const forged = await page("/admin/console/sign-in", {
      cookie: nonce,
      form: { admin_token: ADMIN_TOKEN, csrf: "forged" },
    });
    expect(forged.status).toBe(403);
    expect(setCookiePair(forged, "tg_operator")).toBe("");
  });

  it("the admin token typed once opens the overview", async () => {
    const cookie = await signIn();
    const overview = await html("/admin", cookie);
    expect(overview).toContain("<h1>Overview</h1>");
    expect(overview).toContain("Signed in as admin token");
    expect(overview).toContain("Credits outstanding");
    expect(overview).toContain("Revenue this month");
  });
});

describe("operator console: Cloudflare Access", () => {
  let privateKey: CryptoKey;
  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    privateKey = pair.privateKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "console-key", alg: "RS256" };
    await fetch(`${env.ACCESS_KEYS_URL}/_test/keys`, { method: "POST", body: JSON.stringify(jwk) });
  });

  it("names the operator by the token's email, no sign-in form", async () => {
    const jwt = await new SignJWT({ email: "ops@example.com" })
      .setProtectedHeader({ alg: "RS256", kid: "console-key" })
      .setIssuer(`https://${env.ACCESS_TEAM_DOMAIN}`)
      .setAudience(env.ACCESS_AUD)
      .setExpirationTime("5m")
      .sign(privateKey);
    const res = await gateway("/admin", { headers: { "Cf-Access-Jwt-Assertion": jwt } });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain("Signed in as ops@example.com");
    // Access signs out at the edge: no sign-out form here.
    expect(body).not.toContain("/admin/console/sign-out");
  });
});

describe("operator console: search and an account", () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = await signIn();
  });

  it("finds accounts by email prefix and pages through them", async () => {
    const prefix = `console-${crypto.randomUUID().slice(0, 8)}-`;
    await Promise.all(
      Array.from({ length: 27 }, (_, i) =>
        createAccount("free", `${prefix}${String(i).padStart(2, "0")}@example.com`),
      ),
    );
    const first = await html(`/admin/console/accounts?query=${prefix}`, cookie);
    expectLabelled(first);
    expect(first.match(new RegExp(`${prefix}\\d\\d@example.com</a>`, "g"))).toHaveLength(25);
    const next = /href="([^"]*cursor=[^"]+)"/.exec(first)?.[1]?.replaceAll("&amp;", "&");
    expect(next).toBeDefined();
    const second = await html(next as string, cookie);
    expect(second.match(new RegExp(`${prefix}\\d\\d@example.com</a>`, "g"))).toEqual([
      `${prefix}25@example.com</a>`,
      `${prefix}26@example.com</a>`,
    ]);
    expect(second).not.toContain("Next page");
  });

  async function accountPage(account: TestAccount) {
    const body = await html(`/admin/console/accounts/${account.id}`, cookie);
    expectLabelled(body);
    return body;
  }

  it("shows the account and acts on it only with a reason and a valid form token", async () => {
    const account = await createAccount("free", `acted-${crypto.randomUUID()}@example.com`);
    const base = `/admin/console/accounts/${account.id}`;
    let body = await accountPage(account);
    expect(body).toContain(asHtml(account.id));
    expect(body).toContain("API keys");
    expect(body).toContain("Ledger history and purchases");

    // Adjust: no reason → 400; a forged token → 403; both right → 303 and the balance moves.
    const adjustToken = tokenFor(body, `${base}/credits`);
    const noReason = await page(`${base}/credits`, {
      cookie,
      form: { monthly: "25", purchased: "0", reason: " ", csrf: adjustToken },
    });
    expect(noReason.status).toBe(400);
    const forged = await page(`${base}/credits`, {
      cookie,
      form: { monthly: "25", purchased: "0", reason: "goodwill", csrf: "x" },
    });
    expect(forged.status).toBe(403);
    // A token for another form is refused too.
    const otherPurpose = await page(`${base}/credits`, {
      cookie,
      form: {
        monthly: "25",
        purchased: "0",
        reason: "goodwill",
        csrf: tokenFor(body, `${base}/suspend`),
      },
    });
    expect(otherPurpose.status).toBe(403);
    expect(await balanceOf(account)).toMatchObject({ monthly: 500 });
    const adjusted = await page(`${base}/credits`, {
      cookie,
      form: { monthly: "25", purchased: "10", reason: "goodwill", csrf: adjustToken },
    });
    expect(adjusted.status).toBe(303);
    expect(adjusted.headers.get("Location")).toBe(`${base}?done=adjusted`);
    expect(await balanceOf(account)).toMatchObject({ monthly: 525, purchased: 10 });

    // Suspend: a reason is required; then the API refuses the account's traffic.
    const suspendToken = tokenFor(body, `${base}/suspend`);
    const bare = await page(`${base}/suspend`, { cookie, form: { csrf: suspendToken } });
    expect(bare.status).toBe(400);
    expect((await classify(account)).status).toBe(200);
    const suspended = await page(`${base}/suspend`, {
      cookie,
      form: { reason: "Card testing from this account", csrf: suspendToken },
    });
    expect(suspended.status).toBe(303);
    await expectError(await classify(account), 403, "account_suspended");
    body = await accountPage(account);
    expect(body).toContain(asHtml("Card testing from this account"));

    const lifted = await page(`${base}/unsuspend`, {
      cookie,
      form: { reason: "Confirmed with the customer", csrf: tokenFor(body, `${base}/unsuspend`) },
    });
    expect(lifted.status).toBe(303);
    expect((await classify(account)).status).toBe(200);
  });

  it("emails the first owner a sign-in link with a reason; the link signs them in; audited", async () => {
    const account = await createAccount("free", `linked-${crypto.randomUUID()}@example.com`);
    const base = `/admin/console/accounts/${account.id}`;
    const body = await accountPage(account);
    expect(body).toContain('<h2 id="people-h">People</h2>');
    // The first owner is the one chosen unless the operator picks another member.
    expect(body).toContain(`<option value="${asHtml(account.email)}" selected="">`);
    const action = `${base}/sign-in-link`;
    const token = tokenFor(body, action);
    const mailbox = withMailbox();
    const post = (form: Record<string, string>) => page(action, { cookie, form, env: mailbox.env });

    expect((await post({ email: account.email, reason: " ", csrf: token })).status).toBe(400);
    const forged = { email: account.email, reason: "lost access", csrf: "x" };
    expect((await post(forged)).status).toBe(403);
    const stranger = await post({
      email: `${crypto.randomUUID()}@example.com`,
      reason: "lost access",
      csrf: token,
    });
    expect(stranger.status).toBe(404);
    expect(await stranger.text()).toContain("No such member");
    expect(mailbox.sent).toEqual([]);

    const sent = await post({
      email: account.email,
      reason: "Customer wrote in: lost access",
      csrf: token,
    });
    expect(sent.status).toBe(303);
    expect(sent.headers.get("Location")).toBe(`${base}?done=link_sent`);
    expect(mailbox.sent.map((m) => m.to)).toEqual([account.email]);
    const link = SIGN_IN_LINK.exec(mailbox.sent[0]?.text ?? "")?.[1] ?? "";
    const signedIn = await confirmSignIn(link, account.id);
    expect(signedIn.status).toBe(303);
    expect(setCookiePair(signedIn, "tg_session")).toMatch(/^tg_session=.+/);

    const after = await html(`${base}?done=link_sent`, cookie);
    expect(after).toContain("Sign-in link emailed.");
    // The account's audit log on its page: the action, whom it went to, the operator's reason.
    const row = /<tr data-action="sign_in_link\.sent">([\s\S]*?)<\/tr>/.exec(after)?.[1] ?? "";
    expect(row).toContain("Sign-in link emailed by an operator");
    expect(row).toContain(asHtml(`to ${account.email}; reason: Customer wrote in: lost access`));
    expect(row).toContain("operator admin token");
    const log = await json<{
      data: Array<{ action: string; account_id: string; details: Record<string, unknown> }>;
    }>(
      await gateway("/admin/audit-log?limit=5", {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      }),
    );
    expect(log.data.find((e) => e.account_id === account.id)).toMatchObject({
      action: "sign_in_link.sent",
      details: { email: account.email, reason: "Customer wrote in: lost access" },
    });
  });

  it("revokes a key with a reason; the key stops working", async () => {
    const account = await createAccount();
    const made = await json<{ id: string; key: string }>(
      await gateway("/v1/account/keys", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ name: "ci" }),
      }),
    );
    const base = `/admin/console/accounts/${account.id}`;
    const body = await accountPage(account);
    const action = `${base}/keys/${made.id}/revoke`;
    const token = tokenFor(body, action);
    expect((await page(action, { cookie, form: { csrf: token } })).status).toBe(400);
    const revoked = await page(action, {
      cookie,
      form: { reason: "leaked in a log", csrf: token },
    });
    expect(revoked.status).toBe(303);
    await expectError(
      await gateway("/v1/classify", { method: "POST", key: made.key, body: "{}" }),
      401,
      "invalid_api_key",
    );
  });
});
