/**
 * One refusal, one set of words: every Billing page form that the account's rules refuse says
 * the refusal table's words (src/refusals.ts), and the API's envelope for the same refusal
 * carries the same table's type and message.
 */
import { describe, expect, it } from "vitest";
import { REFUSALS, type RefusalType, refusalStatus } from "../../src/platform/refusals";
import { createAccount, expectError, gateway, json, type TestAccount } from "../helpers/http";
import { asHtml, billingHtml, follow, page, signIn, tokenFor } from "../helpers/page";
import { attachCard } from "../helpers/stripe";

/** The notice the page shows for a refusal: the table's sentence and its next step. */
function expectNotice(html: string, reason: RefusalType) {
  const words: { text: string; action?: string } = REFUSALS[reason].page;
  expect(html).toContain(`<p>${asHtml(words.text)}</p>`);
  if (words.action) expect(html).toContain(`<p>${asHtml(words.action)}</p>`);
}

/** The API's envelope for the same refusal: the table's type, status and message. */
async function expectEnvelope(res: Response, reason: RefusalType) {
  const body = await expectError(res, refusalStatus(reason), REFUSALS[reason].type);
  expect(body.error.message).toBe(REFUSALS[reason].message);
}

async function signedIn(): Promise<{ account: TestAccount; cookie: string; html: string }> {
  const account = await createAccount();
  const cookie = await signIn(account);
  return { account, cookie, html: await billingHtml(cookie) };
}

/** The top-up confirmation's form: its token and its random request id. */
async function confirmation(cookie: string, pkg: string) {
  const res = await page(`/account/billing/top-up?package=${pkg}`, { cookie });
  expect(res.status).toBe(200);
  const html = await res.text();
  const request = /name="request" value="([0-9A-Za-z]{24})"/.exec(html)?.[1] ?? "";
  expect(request).not.toBe("");
  return { csrf: tokenFor(html, "/account/billing/top-up"), request };
}

describe("the page says the refusal table's words, the API its message", () => {
  it("auto-recharge without a card: payment_method_required, with the action to add one", async () => {
    const { account, cookie, html } = await signedIn();
    const res = await page("/account/billing/auto-recharge", {
      cookie,
      form: {
        enabled: "on",
        package: "credits_1000",
        csrf: tokenFor(html, "/account/billing/auto-recharge"),
      },
    });
    expectNotice(await follow(res, cookie), "payment_method_required");
    expect(REFUSALS.payment_method_required.page.action).toContain("“Add a card”");
    await expectEnvelope(
      await gateway("/v1/account/auto-recharge", {
        method: "PUT",
        key: account.api_key,
        body: JSON.stringify({ enabled: true, package: "credits_1000" }),
      }),
      "payment_method_required",
    );
  });

  it("a top-up over the spending limit, and a confirmation reused for another package", async () => {
    const { account, cookie } = await signedIn();
    await attachCard(account);
    const limit = await gateway("/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ monthly_spend_limit_cents: 1_000 }),
    });
    expect(limit.status).toBe(200);
    await limit.arrayBuffer();

    const big = await confirmation(cookie, "credits_3000");
    const over = await page("/account/billing/top-up", {
      cookie,
      form: { ...big, package: "credits_3000" },
    });
    expectNotice(await follow(over, cookie), "spending_limit_reached");
    await expectEnvelope(
      await gateway("/v1/account/top-ups", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ package: "credits_3000" }),
      }),
      "spending_limit_reached",
    );

    const small = await confirmation(cookie, "credits_1000");
    const bought = await page("/account/billing/top-up", {
      cookie,
      form: { ...small, package: "credits_1000" },
    });
    expect(await follow(bought, cookie)).toContain("Buying 1,000 credits");
    const reused = await page("/account/billing/top-up", {
      cookie,
      form: { ...small, package: "credits_3000" },
    });
    expectNotice(await follow(reused, cookie), "idempotency_conflict");
  });

  it("keys: the 21st key, the last full key, and a key that does not exist", async () => {
    const { account, cookie, html } = await signedIn();
    for (let i = 0; i < 19; i++) {
      const made = await gateway("/v1/account/keys", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify({ name: `k${i}` }),
      });
      expect(made.status).toBe(201);
      await made.arrayBuffer();
    }
    const csrf = tokenFor(html, "/account/billing/keys");
    const tooMany = await page("/account/billing/keys", {
      cookie,
      form: { csrf, name: "one more", scope: "classify" },
    });
    expectNotice(await follow(tooMany, cookie), "key_limit_reached");
    const apiTooMany = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({}),
    });
    const body = await expectError(apiTooMany, 409, "limit_reached");
    expect(body.error).toMatchObject({ message: REFUSALS.key_limit_reached.message, limit: 20 });

    const keys = await json<{ data: Array<{ id: string; scope: string }> }>(
      await gateway("/v1/account/keys", { key: account.api_key }),
    );
    const fullKey = keys.data.find((k) => k.scope === "full")?.id ?? "";
    const last = await page(`/account/billing/keys/${fullKey}/revoke`, {
      cookie,
      form: { csrf },
    });
    expectNotice(await follow(last, cookie), "last_full_key");
    await expectEnvelope(
      await gateway(`/v1/account/keys/${fullKey}`, {
        method: "DELETE",
        key: account.api_key,
      }),
      "last_full_key",
    );

    const missing = await page("/account/billing/keys/key_nosuchkey/revoke", {
      cookie,
      form: { csrf },
    });
    expect(missing.status).toBe(404);
    const shown = await missing.text();
    expect(shown).toContain(asHtml(REFUSALS.key_not_found.page.title));
    expect(shown).toContain(asHtml(REFUSALS.key_not_found.page.text));
    await expectEnvelope(
      await gateway("/v1/account/keys/key_nosuchkey", {
        method: "DELETE",
        key: account.api_key,
      }),
      "key_not_found",
    );
  });
});
