/**
 * Operators (issue 21): Cloudflare Access identities, account search, the money overview and
 * suspension, against the real ledger, D1, queues and the local Stripe server. The Access keys
 * are this file's own: an RSA pair made here, its public half served by
 * test/global/access-keys.ts (the gateway reads it through ACCESS_CERTS_URL).
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import {
  admin,
  BASE,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
} from "../helpers/http";
import {
  billingHtml,
  confirmSignIn,
  INVITE_LINK,
  openLinkPage,
  page,
  SIGN_IN_LINK,
  setCookiePair,
  signIn,
  withMailbox,
} from "../helpers/page";
import { attachCard, eventually } from "../helpers/stripe";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

interface Overview {
  accounts: { total: number; paying: number; suspended: number };
  outstanding_credits: { monthly: number; purchased: number; purchased_value_cents: number };
  revenue_cents: { this_month: number; purchases: number; subscriptions: number };
  recharges: {
    pending: number;
    requires_action: number;
    failed_this_month: number;
    needs_attention: number;
  };
  pending_refunds: number;
  dead_letters: number;
  last_reconcile: null | { finished_at: string; checked: number; attention: number };
}

const overview = async () => {
  const res = await admin("/overview");
  expect(res.status).toBe(200);
  return json<Overview>(res);
};

async function topUp(key: string, pkg: string) {
  const res = await gateway("/v1/account/top-ups", {
    method: "POST",
    key,
    body: JSON.stringify({ package: pkg }),
  });
  return res;
}

// ---------------------------------------------------------------- the overview

describe("GET /admin/overview", () => {
  it("counts what the test did, exactly: accounts, credits outstanding and their value, revenue, the last reconcile", async () => {
    const before = await overview();
    const buyer = await createAccount();
    await attachCard(buyer);
    const res = await topUp(buyer.api_key, "credits_3000");
    expect(res.status).toBe(202);
    await eventually(async () => expect((await balanceOf(buyer)).purchased).toBe(3000));
    const gifted = await createAccount();
    await setBalance(gifted, { monthly: 500, purchased: 100 });
    const suspended = await admin(`/accounts/${gifted.id}/suspend`, {
      method: "POST",
      body: JSON.stringify({ reason: "chargeback under review" }),
    });
    expect(suspended.status).toBe(200);
    const reconciled = await admin("/reconcile", { method: "POST" });
    expect(reconciled.status).toBe(200);

    // The balances reach D1 through the ledgers' outboxes (the alarm delivers within seconds).
    await eventually(async () => {
      const after = await overview();
      expect({
        accounts: {
          total: after.accounts.total - before.accounts.total,
          paying: after.accounts.paying - before.accounts.paying,
          suspended: after.accounts.suspended - before.accounts.suspended,
        },
        outstanding: {
          monthly: after.outstanding_credits.monthly - before.outstanding_credits.monthly,
          purchased: after.outstanding_credits.purchased - before.outstanding_credits.purchased,
          value:
            after.outstanding_credits.purchased_value_cents -
            before.outstanding_credits.purchased_value_cents,
        },
        revenue: {
          this_month: after.revenue_cents.this_month - before.revenue_cents.this_month,
          purchases: after.revenue_cents.purchases - before.revenue_cents.purchases,
          subscriptions: after.revenue_cents.subscriptions - before.revenue_cents.subscriptions,
        },
        pending: after.recharges.pending - before.recharges.pending,
      }).toEqual({
        // Two free accounts, one of them suspended; neither pays for a plan.
        accounts: { total: 2, paying: 0, suspended: 1 },
        // 500 monthly each; 3,000 bought for $17 and 100 given (worth nothing: never paid for).
        outstanding: { monthly: 1000, purchased: 3100, value: 1700 },
        revenue: { this_month: 1700, purchases: 1700, subscriptions: 0 },
        pending: 0,
      });
      expect(after.last_reconcile?.finished_at).toBeDefined();
    }, 20_000);
    const after = await overview();
    expect(Object.keys(after).sort()).toEqual(
      [
        "accounts",
        "outstanding_credits",
        "revenue_cents",
        "recharges",
        "pending_refunds",
        "dead_letters",
        "last_reconcile",
      ].sort(),
    );
  });

  it("a spent credit reaches the figure at the ledger's checkpoint, not per request", async () => {
    const account = await createAccount();
    await eventually(async () => {
      const b = await ledgerBalanceRow(account.id);
      expect(b).toMatchObject({ monthly: 500, purchased: 0 });
    });
    const res = await classify(account);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // No projection per request: D1 still says 500 after the debit.
    expect(await ledgerBalanceRow(account.id)).toMatchObject({ monthly: 500 });
    // The checkpoint (the alarm's settle, two minutes on by the test clock) projects 499.
    const ledger = ledgerFor(env, account.id);
    await ledger.testSetClock(Date.now() + 2 * 60_000);
    try {
      expect(await runDurableObjectAlarm(ledger)).toBe(true);
    } finally {
      await ledger.testSetClock(null);
    }
    await eventually(async () =>
      expect(await ledgerBalanceRow(account.id)).toMatchObject({ monthly: 499 }),
    );
  });
});

async function ledgerBalanceRow(accountId: string) {
  return env.DB.prepare(
    "SELECT monthly, purchased, version FROM account_balances WHERE account_id = ?",
  )
    .bind(accountId)
    .first<{ monthly: number; purchased: number; version: number }>();
}

// ---------------------------------------------------------------- search

describe("GET /admin/accounts?query=&cursor=", () => {
  it("pages through the accounts whose email starts with the query, case-insensitive", async () => {
    const prefix = `Search-${crypto.randomUUID().slice(0, 8)}-`;
    const made = [];
    for (let batch = 0; batch < 3; batch++) {
      made.push(
        ...(await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            createAccount(
              "free",
              `${prefix}${String(batch * 10 + i).padStart(2, "0")}@example.com`,
            ),
          ),
        )),
      );
    }
    const first = await json<{ data: { id: string; email: string }[]; next_cursor: string | null }>(
      await admin(`/accounts?query=${encodeURIComponent(prefix.toLowerCase())}`),
    );
    expect(first.data).toHaveLength(25);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await json<{
      data: { id: string; email: string }[];
      next_cursor: string | null;
    }>(
      await admin(
        `/accounts?query=${encodeURIComponent(prefix.toUpperCase())}&cursor=${first.next_cursor}`,
      ),
    );
    expect(second.data).toHaveLength(5);
    expect(second.next_cursor).toBeNull();
    const emails = [...first.data, ...second.data].map((a) => a.email);
    expect(emails).toEqual(
      made.map((_, i) => `${prefix}${String(i).padStart(2, "0")}@example.com`),
    );
  });

  it("finds the accounts a member belongs to by the member's own address, whatever its case", async () => {
    const account = await createAccount();
    const owner = await signIn(account);
    const person = `Member-${crypto.randomUUID()}@example.com`;
    const invited = await gateway("/v1/account/members", {
      method: "POST",
      headers: { Origin: "https://gateway.test", "Sec-Fetch-Site": "same-origin", Cookie: owner },
      body: JSON.stringify({ email: person, role: "viewer" }),
      env: withMailbox().env,
    });
    expect(invited.status, await invited.clone().text()).toBe(201);
    const found = await json<{ data: { id: string }[] }>(
      await admin(`/accounts?query=${encodeURIComponent(person.toUpperCase())}`),
    );
    expect(found.data.map((a) => a.id)).toEqual([account.id]);
  });

  it("finds an account by its exact id or Stripe customer id", async () => {
    const account = await createAccount();
    const byId = await json<{ data: { id: string }[] }>(
      await admin(`/accounts?query=${account.id}`),
    );
    expect(byId.data.map((a) => a.id)).toEqual([account.id]);
    const byCustomer = await json<{ data: { id: string; stripe_customer_id: string }[] }>(
      await admin(`/accounts?query=${account.stripe_customer_id}`),
    );
    expect(byCustomer.data.map((a) => a.id)).toEqual([account.id]);
  });

  it("refuses a cursor that is not one of ours", async () => {
    const res = await admin("/accounts?cursor=nope");
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.[0]?.field).toBe("cursor");
  });
});

// ---------------------------------------------------------------- suspension

describe("suspension", () => {
  it("refuses the debit with 403 account_suspended: free, nothing forwarded; unsuspend restores", async () => {
    const account = await createAccount();
    const suspend = await admin(`/accounts/${account.id}/suspend`, {
      method: "POST",
      body: JSON.stringify({ reason: "Abuse report #42" }),
    });
    expect(suspend.status).toBe(200);
    expect(await suspend.json()).toMatchObject({
      id: account.id,
      suspension: { reason: "Abuse report #42", suspended_at: expect.any(String) },
    });

    const requestId = uniqueRequestId();
    const refused = await classify(account, "/v1/classify", {
      headers: { "X-Request-Id": requestId },
    });
    const body = await expectError(refused, 403, "account_suspended");
    expect(body.error.message).toMatch(/suspended/);
    expect(await upstreamRequests(requestId)).toEqual([]);
    expect(await balanceOf(account)).toMatchObject({ monthly: 500, purchased: 0 });

    // Its people see it, and why.
    const view = await json<{ suspension: unknown }>(
      await gateway("/v1/account", { key: account.api_key }),
    );
    expect(view.suspension).toEqual({
      suspended_at: expect.any(String),
      reason: "Abuse report #42",
    });
    const billing = await billingHtml(await signIn(account));
    expect(billing).toContain("This account is suspended");
    expect(billing).toContain("Reason: Abuse report #42.");

    const lifted = await admin(`/accounts/${account.id}/unsuspend`, { method: "POST" });
    expect(lifted.status).toBe(200);
    expect(await lifted.json()).toEqual({ id: account.id, suspension: null });
    const served = await classify(account);
    expect(served.status).toBe(200);
    await served.arrayBuffer();
    expect(await balanceOf(account)).toMatchObject({ monthly: 499 });
    const again = await json<{ suspension: unknown }>(
      await gateway("/v1/account", { key: account.api_key }),
    );
    expect(again.suspension).toBeNull();
  });

  it("refuses top-ups and Checkout while suspended, and starts no auto-recharge", async () => {
    const account = await createAccount();
    await attachCard(account);
    const enabled = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true, package: "credits_1000" }),
    });
    expect(enabled.status).toBe(200);
    await enabled.arrayBuffer();
    await admin(`/accounts/${account.id}/suspend`, {
      method: "POST",
      body: JSON.stringify({ reason: "unpaid invoice" }),
    });
    await expectError(await topUp(account.api_key, "credits_1000"), 403, "account_suspended");
    await expectError(
      await gateway("/v1/account/checkout", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ plan: "starter" }),
      }),
      403,
      "account_suspended",
    );
    // At the threshold an operator's adjustment would start a recharge; suspended, none starts.
    await setBalance(account, { monthly: 50, purchased: 0 });
    const settings = await json<{ pending: boolean }>(
      await gateway("/v1/account/auto-recharge", { key: account.api_key }),
    );
    expect(settings.pending).toBe(false);
    // Lifted: the trigger is decided again at once.
    await admin(`/accounts/${account.id}/unsuspend`, { method: "POST" });
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1000));
  });

  it("needs a reason, and a known account", async () => {
    const account = await createAccount();
    const none = await admin(`/accounts/${account.id}/suspend`, {
      method: "POST",
      body: JSON.stringify({ reason: "  " }),
    });
    expect((await expectError(none, 400, "invalid_request")).error.fields?.[0]?.field).toBe(
      "reason",
    );
    await expectError(
      await admin("/accounts/acct_nobody/suspend", {
        method: "POST",
        body: JSON.stringify({ reason: "x" }),
      }),
      404,
      "not_found",
    );
    expect((await classify(account)).status).toBe(200);
  });
});

// ---------------------------------------------------------------- a sign-in link for a member

describe("POST /admin/accounts/:id/sign-in-link", () => {
  /** Asks for a link with a mail server of the test's own; the answer and the token sent. */
  async function sendLink(accountId: string, body: Record<string, unknown> = {}) {
    const mailbox = withMailbox();
    const res = await admin(`/accounts/${accountId}/sign-in-link`, {
      method: "POST",
      body: JSON.stringify(body),
      env: mailbox.env,
    });
    const token = (to: string) =>
      SIGN_IN_LINK.exec(mailbox.sent.findLast((m) => m.to === to)?.text ?? "")?.[1] ?? null;
    return { res, token, sent: mailbox.sent };
  }

  async function signedInWith(token: string | null, accountId: string) {
    expect(token, "a sign-in link in the email sent").toBeTruthy();
    const res = await confirmSignIn(token ?? "", accountId);
    expect(res.status).toBe(303);
    await res.arrayBuffer();
    const cookie = setCookiePair(res, "tg_session");
    expect(cookie).toMatch(/^tg_session=.+/);
    return cookie;
  }

  it("emails the first owner a link that signs them in, and audits it with the operator", async () => {
    const account = await createAccount("free", `Owner-${crypto.randomUUID()}@Example.com`);
    const owner = account.email.toLowerCase();
    const { res, token, sent } = await sendLink(account.id);
    expect(res.status).toBe(200);
    const body = await json<{ account_id: string; member_id: string; email: string }>(res);
    expect(body).toMatchObject({ account_id: account.id, email: owner });
    expect(sent.map((m) => m.to)).toEqual([owner]);
    const cookie = await signedInWith(token(owner), account.id);
    expect(await billingHtml(cookie)).toContain("Billing");

    const log = await json<{
      data: Array<{ action: string; actor: { type: string }; details: Record<string, unknown> }>;
    }>(await gateway("/v1/account/audit-log?limit=100", { key: account.api_key }));
    const entry = log.data.find((e) => e.action === "sign_in_link.sent");
    expect(entry?.actor.type).toBe("operator");
    expect(entry?.details).toMatchObject({ member_id: body.member_id, email: owner });
    // The link is the one mechanism's: used once, it signs nobody in again.
    const again = await openLinkPage(`/account/sign-in/confirm?token=${token(owner)}`);
    expect(again.html).not.toContain('name="account_id"');
    // The console lists it among the account's emails.
    const emails = await json<{ data: Array<{ to: string; kind: string }> }>(
      await admin(`/accounts/${account.id}/emails`),
    );
    expect(emails.data[0]).toMatchObject({ to: owner, kind: "sign_in_link" });
  });

  it("sends to the member named by email (an invited one only once they accepted)", async () => {
    const account = await createAccount();
    const ownerCookie = await signIn(account.email);
    const developer = `Dev-${crypto.randomUUID()}@example.com`;
    const mailbox = withMailbox();
    const invited = await gateway("/v1/account/members", {
      method: "POST",
      headers: { Origin: BASE, "Sec-Fetch-Site": "same-origin", Cookie: ownerCookie },
      body: JSON.stringify({ email: developer, role: "developer" }),
      env: mailbox.env,
    });
    expect(invited.status).toBe(201);
    const inviteToken = INVITE_LINK.exec(mailbox.sent.at(-1)?.text ?? "")?.[1] ?? "";

    // Invited, not yet a member: nobody to sign in.
    const early = await sendLink(account.id, { email: developer });
    await expectError(early.res, 404, "not_found");
    expect(early.sent).toEqual([]);

    const opened = await openLinkPage(`/account/invitation?token=${inviteToken}`);
    const accepted = await page("/account/invitation", {
      cookie: opened.cookie,
      form: { token: inviteToken, csrf: opened.csrf },
    });
    expect(accepted.status).toBe(303);
    await accepted.arrayBuffer();

    const { res, token, sent } = await sendLink(account.id, { email: developer.toUpperCase() });
    expect(res.status).toBe(200);
    expect(sent.map((m) => m.to)).toEqual([developer.toLowerCase()]);
    await signedInWith(token(developer.toLowerCase()), account.id);
  });

  it("404 for an unknown account or a non-member email, and nothing is sent", async () => {
    const account = await createAccount();
    const stranger = await sendLink(account.id, { email: `${crypto.randomUUID()}@example.com` });
    await expectError(stranger.res, 404, "not_found");
    expect(stranger.sent).toEqual([]);
    // A member of another account is no member of this one.
    const other = await createAccount();
    const elsewhere = await sendLink(account.id, { email: other.email });
    await expectError(elsewhere.res, 404, "not_found");
    const nobody = await sendLink("acct_nobody");
    await expectError(nobody.res, 404, "not_found");
    expect(nobody.sent).toEqual([]);
    await expectError(
      await gateway(`/admin/accounts/${account.id}/sign-in-link`, { method: "POST", body: "{}" }),
      401,
      "invalid_api_key",
    );
  });
});

// ---------------------------------------------------------------- Cloudflare Access

describe("operator identity: Cloudflare Access", () => {
  const KID = "test-key-1";
  let privateKey: CryptoKey;
  let otherKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    privateKey = pair.privateKey;
    otherKey = (await generateKeyPair("RS256")).privateKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "RS256", use: "sig" };
    const res = await fetch(`${env.ACCESS_KEYS_URL}/_test/keys`, {
      method: "POST",
      body: JSON.stringify(jwk),
    });
    expect(res.status).toBe(204);
  });

  const token = (
    claims: { aud?: string; iss?: string; exp?: number; email?: string } = {},
    key: CryptoKey = privateKey,
    kid = KID,
  ) =>
    new SignJWT({ email: claims.email ?? "Ops@Example.com" })
      .setProtectedHeader({ alg: "RS256", kid })
      .setIssuer(claims.iss ?? `https://${env.ACCESS_TEAM_DOMAIN}`)
      .setAudience(claims.aud ?? env.ACCESS_AUD)
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 300)
      .sign(key);

  const withAssertion = async (jwt: string) =>
    gateway("/admin/overview", { headers: { "Cf-Access-Jwt-Assertion": jwt } });

  it("accepts a token signed by the team's key for this audience", async () => {
    const res = await withAssertion(await token());
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it.each([
    ["another audience", () => token({ aud: "someone-else" })],
    ["another issuer", () => token({ iss: "https://other.cloudflareaccess.com" })],
    ["expired", () => token({ exp: Math.floor(Date.now() / 1000) - 120 })],
    ["signed by another key under the same key id", () => token({}, otherKey)],
    ["signed by an unknown key id", () => token({}, otherKey, "unknown-kid")],
    ["with no email", () => token({ email: "" })],
  ])("refuses a token %s: 401", async (_name, make) => {
    await expectError(await withAssertion(await make()), 401, "invalid_api_key");
  });

  it("refuses garbage in the header, and nothing at all", async () => {
    await expectError(await withAssertion("not.a.jwt"), 401, "invalid_api_key");
    await expectError(await gateway("/admin/overview"), 401, "invalid_api_key");
  });
});
