/**
 * A Durable Object that is overloaded or unreachable (API.md "Production"): 503
 * `service_unavailable` with `Retry-After`, never 500, nothing forwarded; and a debit whose
 * reply was lost is reversed exactly once if it committed, never "refunded" if it did not
 * (money rule 8; docs/architecture.md "When the ledger cannot be reached").
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import type { Bindings } from "../../src/platform/env";
import { reconcile } from "../../src/purchases/reconciler";
import {
  audit,
  BASE,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  send,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { type LedgerFault, ledgerFailing } from "../helpers/ledger-faults";
import { expectLogs } from "../helpers/logs";
import { signIn } from "../helpers/page";
import { eventually } from "../helpers/stripe";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

afterEach(() => vi.restoreAllMocks());

/** What these failures log on purpose: the 503 itself, and a reversal that had to wait. */
const expectedLogs = () =>
  expectLogs([
    /^durable object unavailable \S+ Error: /,
    /^refund deferred dbt_\w+ /,
    /^refund not applied yet; will retry dbt_\w+ /,
  ]);

/** The account's ledger entries whose ref starts with `prefix` (`refund:`, `void:`). */
async function entries(accountId: string, prefix: string) {
  return runInDurableObject(ledgerFor(env, accountId), (_i, state) =>
    state.storage.sql
      .exec<{ ref: string; monthly_delta: number; purchased_delta: number }>(
        "SELECT ref, monthly_delta, purchased_delta FROM ledger WHERE ref LIKE ?",
        `${prefix}%`,
      )
      .toArray(),
  );
}

/** A classification (cost 1) whose debit call fails with `fault`; returns its request id. */
async function classifyFailing(
  account: TestAccount,
  fault: LedgerFault,
  retryAfter: string,
  also: Record<string, LedgerFault> = {},
) {
  const requestId = uniqueRequestId();
  const res = await classify(account, "/v1/classify", {
    headers: { "X-Request-Id": requestId },
    env: await ledgerFailing(account.id, { debit: fault, ...also }),
  });
  const body = await expectError(res, 503, "service_unavailable");
  expect(res.headers.get("Retry-After")).toBe(retryAfter);
  expect(body.error.retry_after_seconds).toBe(Number(retryAfter));
  // Nothing forwarded: the upstream stub saw no request with this id.
  expect(await upstreamRequests(requestId)).toEqual([]);
  return requestId;
}

describe("a proxied request whose ledger call fails", () => {
  it("overloaded: 503 with Retry-After, nothing forwarded, nothing charged or written", async () => {
    const logs = expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 5 });
    // A reversal would fail and be deferred (logged): there must be none.
    await classifyFailing(account, "overloaded", "10", { refund: "lost_request" });
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 5 });
    // Refused before it ran: nothing to reverse, and the object is not called again for it.
    expect(await entries(account.id, "refund:")).toEqual([]);
    expect(await entries(account.id, "void:")).toEqual([]);
    expect((await audit(account.id)).consistent).toBe(true);
    // Logged as unavailable (a warning with the request id), not as an unhandled error.
    expect(logs.matching(/^durable object unavailable /)).toHaveLength(1);
    expect(logs.matching(/^refund deferred /)).toEqual([]);
  });

  it("committed but its reply lost: 503, nothing forwarded, and the debit reversed exactly once", async () => {
    expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 1, purchased: 2 });
    await classifyFailing(account, "lost_reply", "5");
    // The debit ran (monthly first) and is given back where it came from.
    expect(await balanceOf(account)).toMatchObject({ monthly: 1, purchased: 2 });
    const refunds = await entries(account.id, "refund:");
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ monthly_delta: 1, purchased_delta: 0 });
    // Asked again (the queue or the reconciler redelivering): nothing changes.
    const debitRef = refunds[0]?.ref.slice("refund:".length) as string;
    const again = await ledgerFor(env, account.id).refund(debitRef, null, Date.now());
    expect(again).toMatchObject({ ok: true, refunded: false });
    expect(await balanceOf(account)).toMatchObject({ monthly: 1, purchased: 2 });
    expect(await entries(account.id, "refund:")).toHaveLength(1);
    expect(await audit(account.id)).toMatchObject({ consistent: true, ledger_total: 3 });
  });

  it("never arrived: 503, nothing forwarded, no credits made up, and a late arrival is refused", async () => {
    expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 4 });
    await classifyFailing(account, "lost_request", "5");
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 4 });
    expect(await entries(account.id, "refund:")).toEqual([]);
    // The ledger recorded that the debit never committed (on this failure path only).
    const voided = await entries(account.id, "void:");
    expect(voided).toEqual([
      { ref: expect.stringMatching(/^void:dbt_/), monthly_delta: 0, purchased_delta: 0 },
    ]);
    const debitRef = voided[0]?.ref.slice("void:".length) as string;
    const ledger = ledgerFor(env, account.id);
    // The request, delivered late after all, is not charged: the client was told 503.
    expect(await ledger.debit(1, debitRef, undefined)).toMatchObject({
      ok: false,
      reason: "not_found",
    });
    // Asked again, and with a forged charge: still nothing given back.
    expect(await ledger.refund(debitRef, null, Date.now())).toEqual({
      ok: false,
      reason: "not_found",
    });
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 4 });
    expect(await audit(account.id)).toMatchObject({ consistent: true, ledger_total: 4 });
  });

  it("object reset (the runtime's own error): 503, nothing forwarded, and a debit the ledger cannot place waits for an operator", async () => {
    expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 3 });
    await classifyFailing(account, "reset", "5");
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 3 });
    // The restarted object has no memory of the time the debit was sent: it cannot tell.
    const owed = await env.DB.prepare(
      "SELECT debit_ref, charge, sent_at FROM pending_refunds WHERE account_id = ?",
    )
      .bind(account.id)
      .all<{ debit_ref: string; charge: string | null; sent_at: number | null }>();
    expect(owed.results).toHaveLength(1);
    const row = owed.results[0];
    expect(row?.charge).toBeNull();
    expect(row?.sent_at).toBeTypeOf("number");
    // The reconciler neither refunds it blindly nor drops it: it reports it, every run.
    for (let run = 0; run < 2; run++) {
      const report = await reconcile(env);
      expect(report.attention).toContainEqual({
        id: row?.debit_ref,
        reason: expect.stringContaining("cannot tell whether it committed"),
      });
      expect(report.refundsApplied).not.toContain(row?.debit_ref);
    }
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 3 });
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("a lost debit reply when the ledger stays unreachable for the reversal too", () => {
  it("the reversal goes through the refund queue and is applied once", async () => {
    expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 6 });
    await classifyFailing(account, "lost_reply", "5", { refund: "lost_request" });
    await eventually(async () =>
      expect(await entries(account.id, "refund:")).toEqual([
        { ref: expect.stringMatching(/^refund:dbt_/), monthly_delta: 0, purchased_delta: 1 },
      ]),
    );
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 6 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("with the queue down too, it waits in D1 and the reconciler applies it once", async () => {
    expectedLogs();
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 6 });
    const send = vi.spyOn(env.REFUND_QUEUE, "send").mockRejectedValue(new Error("queue down"));
    await classifyFailing(account, "lost_reply", "5", { refund: "lost_request" });
    expect(send).toHaveBeenCalledTimes(1);
    vi.restoreAllMocks();
    // Charged, and owed back: a D1 row with the time the debit was sent, no charge.
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 5 });
    const owed = await env.DB.prepare(
      "SELECT debit_ref, charge, sent_at FROM pending_refunds WHERE account_id = ?",
    )
      .bind(account.id)
      .all<{ debit_ref: string; charge: string | null; sent_at: number | null }>();
    expect(owed.results).toEqual([
      { debit_ref: expect.stringMatching(/^dbt_/), charge: null, sent_at: expect.any(Number) },
    ]);
    const debitRef = owed.results[0]?.debit_ref;
    expect((await reconcile(env)).refundsApplied).toContain(debitRef);
    expect((await reconcile(env)).refundsApplied).not.toContain(debitRef);
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 6 });
    expect(await entries(account.id, "refund:")).toHaveLength(1);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});

describe("routes that read the ledger", () => {
  it("the account API answers 503 with Retry-After, not 500", async () => {
    expectedLogs();
    const account = await createAccount();
    for (const fault of ["lost_request", "overloaded"] as const) {
      const res = await gateway("/v1/account/balance", {
        key: account.api_key,
        env: await ledgerFailing(account.id, { "*": fault }),
      });
      await expectError(res, 503, "service_unavailable");
      expect(res.headers.get("Retry-After")).toBe(fault === "overloaded" ? "10" : "5");
    }
  });

  it("the Billing page answers 503 with Retry-After, not 500", async () => {
    expectedLogs();
    const account = await createAccount();
    const session = await signIn(account);
    const res = await send(
      new Request(`${BASE}/account/billing`, { headers: { Cookie: session ?? "" } }),
      { env: await ledgerFailing(account.id, { "*": "reset" }) },
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("5");
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain("Try again in a moment");
  });

  it("a Stripe webhook answers 503 (not 2xx), so Stripe redelivers it, and the redelivery applies", async () => {
    expectedLogs();
    const account = await createAccount("starter");
    await setBalance(account, { monthly: 100, purchased: 7 });
    const start = Math.floor(Date.now() / 1000);
    const event = {
      id: `evt_${crypto.randomUUID().replaceAll("-", "")}`,
      object: "event",
      type: "invoice.paid",
      created: start,
      api_version: "2025-01-27.acacia",
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      data: {
        object: {
          id: `in_${crypto.randomUUID().replaceAll("-", "")}`,
          object: "invoice",
          customer: account.stripe_customer_id,
          status: "paid",
          billing_reason: "subscription_cycle",
          parent: {
            type: "subscription_details",
            subscription_details: { subscription: "sub_123" },
          },
          lines: {
            object: "list",
            data: [
              {
                id: "il_1",
                object: "line_item",
                period: { start, end: start + 30 * 86_400 },
                pricing: {
                  type: "price_details",
                  price_details: { price: env.STRIPE_PRICE_STARTER, product: "prod_x" },
                },
              },
            ],
          },
        },
      },
    };
    const payload = JSON.stringify(event);
    const deliver = async (bindings?: Bindings) =>
      gateway("/webhooks/stripe", {
        method: "POST",
        body: payload,
        headers: {
          "Stripe-Signature": await Stripe.webhooks.generateTestHeaderStringAsync({
            payload,
            secret: "whsec_test_tollgate",
            cryptoProvider: Stripe.createSubtleCryptoProvider(),
          }),
        },
        env: bindings,
      });
    const failed = await deliver(await ledgerFailing(account.id, { "*": "lost_request" }));
    await expectError(failed, 503, "service_unavailable");
    expect(failed.headers.get("Retry-After")).toBe("5");
    const redelivered = await deliver();
    expect(redelivered.status).toBe(200);
    expect(await redelivered.json()).toMatchObject({ handled: true });
    expect(await balanceOf(account)).toMatchObject({ monthly: 3000, purchased: 7 });
  });

  it("the sign-up page answers 503 with Retry-After, not 500, and the link still works after", async () => {
    expectedLogs();
    const email = `${crypto.randomUUID()}@example.com`;
    const sent: { to: string; text: string }[] = [];
    const mailbox = {
      async send(message: unknown) {
        sent.push(message as { to: string; text: string });
        return { messageId: "m" };
      },
    } as unknown as SendEmail;
    const asked = await gateway("/v1/signup", {
      method: "POST",
      headers: { "CF-Connecting-IP": `10.99.${sent.length}.${Math.floor(Math.random() * 250)}` },
      body: JSON.stringify({ email }),
      env: { ...env, EMAIL: mailbox } as Bindings,
    });
    expect(asked.status).toBe(202);
    const token = /\/account\/sign-up\/confirm\?token=([0-9A-Za-z]+)/.exec(
      sent.find((m) => m.to === email)?.text ?? "",
    )?.[1];
    expect(token).toBeDefined();
    const opened = await send(
      new Request(`${BASE}/account/sign-up/confirm?token=${token}`, {
        headers: { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" },
      }),
    );
    const html = await opened.text();
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? "";
    const cookie = opened.headers
      .getSetCookie()
      .map((c) => c.split(";")[0] ?? "")
      .find((c) => c.startsWith("tg_signup="));
    const post = (bindings?: Bindings) =>
      send(
        new Request(`${BASE}/account/sign-up/confirm`, {
          method: "POST",
          headers: { Origin: BASE, "Sec-Fetch-Site": "same-origin", Cookie: cookie ?? "" },
          body: new URLSearchParams({ token: token ?? "", csrf }),
          redirect: "manual",
        }),
        { env: bindings },
      );
    const failed = await post(await ledgerFailing("*", { "*": "lost_request" }));
    expect(failed.status).toBe(503);
    expect(failed.headers.get("Retry-After")).toBe("5");
    expect(await failed.text()).toContain("Try again in a moment");
    // The link was given back: following it again creates the account.
    const retried = await post();
    expect(retried.status).toBe(303);
    await retried.arrayBuffer();
  });
});
