/**
 * Webhooks to customers (contract: "Webhooks to customers"). The customer's endpoint is the
 * upstream stub's `/_test/hooks/<name>` (test/global/upstream-stub.ts), a real loopback HTTP
 * server that records each delivery's headers and body and answers 500 or a redirect when asked.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { auditLog } from "../../src/db/schema";
import { endpointById, insertDelivery } from "../../src/db/webhooks";
import { deliverItem } from "../../src/delivery/outbox";
import { handleWebhookBatch } from "../../src/delivery/webhook-consumer";
import { attempt, type WebhookMessage } from "../../src/delivery/webhooks";
import worker from "../../src/index";
import { ledgerFor } from "../../src/ledger/client";
import type { OutboxItem } from "../../src/ledger/domain/types";
import type { Bindings } from "../../src/platform/env";
import {
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { billingHtml, signIn } from "../helpers/page";
import { autoRechargingAccount } from "../helpers/recharge";
import { attachCard } from "../helpers/stripe";

const db = dbFor(env.DB);

interface Received {
  headers: Record<string, string>;
  body: string;
}

function hookUrl(name: string, query = "") {
  return `${env.UPSTREAM_URL}/_test/hooks/${name}${query}`;
}

async function received(name: string): Promise<Received[]> {
  const res = await fetch(hookUrl(name));
  return (await res.json<{ data: Received[] }>()).data;
}

async function addEndpoint(account: TestAccount, body: Record<string, unknown>) {
  const res = await gateway("/v1/account/webhooks", {
    method: "POST",
    key: account.api_key,
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return json<{ id: string; url: string; events: string[] | null; secret: string }>(res);
}

interface DeliveryJson {
  id: string;
  type: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  next_attempt_at: string | null;
}

async function deliveries(account: TestAccount, endpointId: string) {
  const res = await gateway(`/v1/account/webhooks/${endpointId}/deliveries`, {
    key: account.api_key,
  });
  expect(res.status).toBe(200);
  return (await json<{ data: DeliveryJson[] }>(res)).data;
}

async function testSend(account: TestAccount, endpointId: string) {
  const res = await gateway(`/v1/account/webhooks/${endpointId}/test`, {
    method: "POST",
    key: account.api_key,
  });
  expect(res.status).toBe(202);
  return json<{ delivery_id: string }>(res);
}

const name = () => `h${crypto.randomUUID().replaceAll("-", "")}`;

describe("endpoints", () => {
  it("the secret is shown once; the test send arrives signed as Standard Webhooks says", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook) });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32}$/);
    expect(created.events).toBeNull();
    const list = await json<{ data: Record<string, unknown>[] }>(
      await gateway("/v1/account/webhooks", { key: account.api_key }),
    );
    expect(list.data).toEqual([
      { id: created.id, url: hookUrl(hook), events: null, created_at: expect.any(String) },
    ]);
    // Stored sealed, never in the clear.
    const row = await endpointById(db, created.id);
    expect(row?.secretSealed).not.toContain(created.secret.slice(6));

    const { delivery_id } = await testSend(account, created.id);
    const [got] = await vi.waitFor(
      async () => {
        const list = await received(hook);
        expect(list).toHaveLength(1);
        return list;
      },
      { timeout: 10_000 },
    );
    if (!got) throw new Error("nothing received");
    expect(got.headers["webhook-id"]).toBe(delivery_id);
    const payload = new Webhook(created.secret).verify(got.body, {
      "webhook-id": got.headers["webhook-id"] ?? "",
      "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
      "webhook-signature": got.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({ type: "webhook.test", timestamp: expect.any(String) });
    // Another secret does not verify it.
    expect(() =>
      new Webhook(`whsec_${btoa("x".repeat(24))}`).verify(got.body, {
        "webhook-id": got.headers["webhook-id"] ?? "",
        "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
        "webhook-signature": got.headers["webhook-signature"] ?? "",
      }),
    ).toThrow();
    await vi.waitFor(async () =>
      expect(await deliveries(account, created.id)).toEqual([
        expect.objectContaining({
          id: delivery_id,
          type: "webhook.test",
          status: "succeeded",
          attempts: 1,
          last_status_code: 200,
        }),
      ]),
    );
    // The Billing page lists the endpoint and the delivery's status.
    const html = await billingHtml(await signIn(account));
    expect(html).toContain('id="webhooks"');
    expect(html).toMatch(new RegExp(`data-delivery="${delivery_id}"[\\s\\S]*?succeeded`));
  });

  it("at most 5 endpoints: the sixth is 409 limit_reached; a deletion frees a place; both audited", async () => {
    const account = await createAccount();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await addEndpoint(account, { url: hookUrl(name()) })).id);
    const sixth = await gateway("/v1/account/webhooks", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ url: hookUrl(name()) }),
    });
    await expectError(sixth, 409, "limit_reached");
    const del = await gateway(`/v1/account/webhooks/${ids[0]}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expect(del.status).toBe(200);
    await del.arrayBuffer();
    await expectError(
      await gateway(`/v1/account/webhooks/${ids[0]}`, { method: "DELETE", key: account.api_key }),
      404,
      "not_found",
    );
    await addEndpoint(account, { url: hookUrl(name()), events: ["balance.low"] });
    const entries = await db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.accountId, account.id)))
      .all();
    const actions = entries.map((e) => e.action);
    expect(actions.filter((a) => a === "webhook.created")).toHaveLength(6);
    expect(actions.filter((a) => a === "webhook.deleted")).toHaveLength(1);
  });

  it("bad input is 400 invalid_request naming the field", async () => {
    const account = await createAccount();
    for (const body of [
      { url: "not a url" },
      { url: "ftp://example.com/hook" },
      { url: "https://example.com/hook", events: ["no.such"] },
    ]) {
      const res = await gateway("/v1/account/webhooks", {
        method: "POST",
        key: account.api_key,
        body: JSON.stringify(body),
      });
      const err = await expectError(res, 400, "invalid_request");
      expect(err.error.fields?.[0]?.field).toBe("events" in body ? "events.0" : "url");
    }
  });
});

describe("delivery", () => {
  it("a 500 is retried with backoff and the retry succeeds, the same webhook-id each time", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook, "?fail=1") });
    const { delivery_id } = await testSend(account, created.id);
    const list = await vi.waitFor(
      async () => {
        const got = await received(hook);
        expect(got).toHaveLength(2);
        return got;
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(list.map((r) => r.headers["webhook-id"])).toEqual([delivery_id, delivery_id]);
    await vi.waitFor(async () =>
      expect(await deliveries(account, created.id)).toEqual([
        expect.objectContaining({ status: "succeeded", attempts: 2, last_status_code: 200 }),
      ]),
    );
  }, 30_000);

  it("an endpoint that keeps failing is retried for a day, then its delivery is failed", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook, "?status=500") });
    const t0 = new Date();
    const id = `msg_dead_${crypto.randomUUID().replaceAll("-", "")}`;
    // The row alone (no queue message): this test drives the consumer itself, with a clock.
    await insertDelivery(
      db,
      {
        id,
        endpointId: created.id,
        accountId: account.id,
        eventType: "balance.low",
        payload: "{}",
      },
      t0,
    );
    const run = async (at: Date) => {
      const batch = createMessageBatch<WebhookMessage>("tollgate-webhooks", [
        { id: `m-${at.getTime()}`, timestamp: at, attempts: 1, body: { delivery_id: id } },
      ]);
      const ctx = createExecutionContext();
      await handleWebhookBatch(batch, env, () => at);
      return getQueueResult(batch, ctx);
    };
    // The queue's result keeps no delay; the row's next_attempt_at says what was asked for.
    const nextAttempt = async () =>
      (await deliveries(account, created.id))[0]?.next_attempt_at ?? null;
    const first = await run(t0);
    expect(first.retryMessages).toEqual([{ msgId: `m-${t0.getTime()}` }]);
    expect(await nextAttempt()).toBe(new Date(t0.getTime() + 5_000).toISOString());
    const t1 = new Date(t0.getTime() + 10_000);
    const second = await run(t1);
    expect(second.retryMessages).toHaveLength(1);
    expect(await nextAttempt()).toBe(new Date(t1.getTime() + 300_000).toISOString());
    // The last attempt, a day later: no more retries, the delivery failed.
    const late = new Date(t0.getTime() + 24 * 3600_000 + 1000);
    const last = await run(late);
    expect(last.retryMessages).toEqual([]);
    expect(last.explicitAcks).toEqual([`m-${late.getTime()}`]);
    expect(await deliveries(account, created.id)).toEqual([
      expect.objectContaining({ id, status: "failed", attempts: 3, last_status_code: 500 }),
    ]);
    expect(await received(hook)).toHaveLength(3);
  });

  it("a redirect is not followed: it is a failed attempt", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook, "?status=302") });
    const row = await endpointById(db, created.id);
    if (!row) throw new Error("no endpoint");
    const now = new Date();
    const outcome = await attempt(env, row, deliveryRow(created.id, account.id, now), now);
    expect(outcome).toMatchObject({ ok: false, statusCode: 302 });
  });
});

function deliveryRow(endpointId: string, accountId: string, now: Date) {
  return {
    id: `msg_${crypto.randomUUID().replaceAll("-", "")}`,
    endpointId,
    accountId,
    eventType: "webhook.test",
    payload: "{}",
    status: "pending" as const,
    attempts: 0,
    lastStatusCode: null,
    lastError: null,
    nextAttemptAt: null,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
}

describe("server-side request forgery, outside local mode", () => {
  const production = { ...env, ENVIRONMENT: "production" };
  // A production configuration the gateway serves (as test/integration/production-config.test.ts).
  const served: Bindings = {
    ...env,
    ENVIRONMENT: "production",
    UPSTREAM_URL: "https://classifier.acme.io",
    DASHBOARD_URL: "https://api.acme.io/account/billing",
    STRIPE_API_URL: undefined,
    EMAIL_FROM: "billing@acme.io",
    SUPPORT_EMAIL: "help@acme.io",
    LEDGER_TEST_CLOCK: undefined,
  };

  it("adding a private, loopback, link-local or plain-http endpoint is 400 naming url", async () => {
    const account = await createAccount();
    for (const url of [
      "https://10.0.0.8/hook",
      "https://127.0.0.1/hook",
      "https://169.254.169.254/latest",
      "https://[::1]/hook",
      "https://[fe80::1]/hook",
      "https://localhost/hook",
      "https://192.168.1.1/hook",
      "http://hooks.acme.io/hook",
    ]) {
      const res = await gateway("/v1/account/webhooks", {
        method: "POST",
        key: account.api_key,
        env: served,
        body: JSON.stringify({ url }),
      });
      const err = await expectError(res, 400, "invalid_request");
      expect(err.error.fields, url).toEqual([{ field: "url", message: expect.any(String) }]);
    }
    const ok = await gateway("/v1/account/webhooks", {
      method: "POST",
      key: account.api_key,
      env: served,
      body: JSON.stringify({ url: "https://hooks.acme.io/tollgate" }),
    });
    expect(ok.status).toBe(201);
    await ok.arrayBuffer();
  });

  it("a private, loopback or link-local target is refused at send time, and nothing is sent", async () => {
    const account = await createAccount();
    const hook = name();
    // Added in local mode (where loopback is allowed), then sent as production would.
    const created = await addEndpoint(account, { url: hookUrl(hook) });
    const row = await endpointById(db, created.id);
    if (!row) throw new Error("no endpoint");
    const now = new Date();
    for (const url of [
      hookUrl(hook),
      "https://10.1.2.3/hook",
      "https://127.0.0.1/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://[::1]/hook",
      "https://localhost/hook",
      "https://api.localhost/hook",
      "https://2130706433/hook",
      "https://[::ffff:10.0.0.1]/hook",
    ]) {
      const outcome = await attempt(
        production,
        { ...row, url },
        deliveryRow(row.id, account.id, now),
        now,
      );
      expect(outcome, url).toMatchObject({ ok: false, statusCode: null, permanent: true });
    }
    expect(await received(hook)).toHaveLength(0);
  });
});

describe("events from where the fact is decided", () => {
  it("a top-up's success reaches a subscribed endpoint through the ledger's outbox", async () => {
    const account = await createAccount();
    await attachCard(account);
    const hook = name();
    const other = name();
    const created = await addEndpoint(account, {
      url: hookUrl(hook),
      events: ["top_up.succeeded"],
    });
    await addEndpoint(account, { url: hookUrl(other), events: ["balance.low"] });
    const res = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(res.status).toBe(202);
    const { id } = await json<{ id: string }>(res);
    const [got] = await vi.waitFor(
      async () => {
        const list = await received(hook);
        expect(list).toHaveLength(1);
        return list;
      },
      { timeout: 20_000, interval: 250 },
    );
    if (!got) throw new Error("nothing received");
    const payload = new Webhook(created.secret).verify(got.body, {
      "webhook-id": got.headers["webhook-id"] ?? "",
      "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
      "webhook-signature": got.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({
      type: "top_up.succeeded",
      data: { recharge_id: id, kind: "top_up", credits: 1000, status: "succeeded" },
    });
    // The endpoint that takes only balance.low got nothing.
    expect(await received(other)).toHaveLength(0);
  }, 30_000);

  for (const [card, type, code] of [
    ["pm_card_chargeCustomerFail", "recharge.failed", "card_declined"],
    ["pm_card_authenticationRequired", "recharge.requires_action", "authentication_required"],
  ] as const) {
    it(`an auto-recharge on ${card} sends ${type} from its settlement`, async () => {
      const { account } = await autoRechargingAccount(card);
      const hook = name();
      const created = await addEndpoint(account, { url: hookUrl(hook) });
      await setBalance(account, { monthly: 0, purchased: 3 });
      const [got] = await vi.waitFor(
        async () => {
          const list = await received(hook);
          expect(list).toHaveLength(1);
          return list;
        },
        { timeout: 20_000, interval: 250 },
      );
      if (!got) throw new Error("nothing received");
      const payload = new Webhook(created.secret).verify(got.body, {
        "webhook-id": got.headers["webhook-id"] ?? "",
        "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
        "webhook-signature": got.headers["webhook-signature"] ?? "",
      });
      expect(payload).toMatchObject({
        type,
        data: { kind: "auto_recharge", credits: 1000, code },
      });
    }, 30_000);
  }

  it("the ledger's plan change sends plan.changed once, whatever the redeliveries", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook), events: ["plan.changed"] });
    const ledger = ledgerFor(env, account.id);
    const change = {
      ref: `evt_${crypto.randomUUID()}`,
      plan: "starter",
      version: Math.floor(Date.now() / 1000),
      cycles: "stripe",
    } as const;
    expect(await ledger.changePlan(change)).toMatchObject({ ok: true, changed: true });
    expect(await ledger.changePlan(change)).toMatchObject({ ok: true, changed: false });
    const [got] = await vi.waitFor(
      async () => {
        const list = await received(hook);
        expect(list).toHaveLength(1);
        return list;
      },
      { timeout: 20_000, interval: 250 },
    );
    if (!got) throw new Error("nothing received");
    const payload = new Webhook(created.secret).verify(got.body, {
      "webhook-id": got.headers["webhook-id"] ?? "",
      "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
      "webhook-signature": got.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({ type: "plan.changed", data: { from: "free", to: "starter" } });
    expect(await deliveries(account, created.id)).toHaveLength(1);
  }, 30_000);

  it("an outbox item delivered twice is one delivery per endpoint", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook) });
    const item = {
      type: "email",
      kind: "low_balance",
      ref: `low_balance:${crypto.randomUUID()}`,
      account_id: account.id,
      level: 10,
      total: 9,
      situation: { auto_recharge: "off" },
    } as const satisfies OutboxItem;
    await deliverItem(env, item);
    await deliverItem(env, item);
    await vi.waitFor(
      async () =>
        expect(await deliveries(account, created.id)).toEqual([
          expect.objectContaining({ type: "balance.low", status: "succeeded" }),
        ]),
      { timeout: 10_000, interval: 250 },
    );
    // At least once: a second message for a never-attempted row may race the first; whatever
    // arrives carries the one webhook-id, so the customer deduplicates.
    const ids = new Set((await received(hook)).map((r) => r.headers["webhook-id"]));
    expect(ids.size).toBe(1);
  });

  it("the low-balance crossing sends balance.low once, not once per request", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, { url: hookUrl(hook), events: ["balance.low"] });
    await setBalance(account, { monthly: 12, purchased: 0 });
    const put = await gateway("/v1/account/alerts", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ low_balance_credits: 10 }),
    });
    expect(put.status).toBe(200);
    await put.arrayBuffer();
    for (let i = 0; i < 5; i++) {
      const res = await classify(account);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const [got] = await vi.waitFor(
      async () => {
        const list = await received(hook);
        expect(list).toHaveLength(1);
        return list;
      },
      { timeout: 20_000, interval: 250 },
    );
    if (!got) throw new Error("nothing received");
    const payload = new Webhook(created.secret).verify(got.body, {
      "webhook-id": got.headers["webhook-id"] ?? "",
      "webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
      "webhook-signature": got.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({ type: "balance.low", data: { level: 10, balance_total: 10 } });
    await vi.waitFor(async () =>
      expect(await deliveries(account, created.id)).toEqual([
        expect.objectContaining({ type: "balance.low", status: "succeeded" }),
      ]),
    );
  }, 30_000);

  it("credits.exhausted comes with the first refusal of an episode, again only after credits return", async () => {
    const account = await createAccount();
    const hook = name();
    const created = await addEndpoint(account, {
      url: hookUrl(hook),
      events: ["credits.exhausted"],
    });
    await setBalance(account, { monthly: 2, purchased: 0 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await classify(account);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 403, 403, 403]);
    const first = await vi.waitFor(
      async () => {
        const list = await received(hook);
        expect(list).toHaveLength(1);
        return list[0] as Received;
      },
      { timeout: 20_000, interval: 250 },
    );
    const payload = new Webhook(created.secret).verify(first.body, {
      "webhook-id": first.headers["webhook-id"] ?? "",
      "webhook-timestamp": first.headers["webhook-timestamp"] ?? "",
      "webhook-signature": first.headers["webhook-signature"] ?? "",
    });
    expect(payload).toMatchObject({
      type: "credits.exhausted",
      data: { balance_total: 0, cost: 1 },
    });
    // Credits back: the next refusal opens a new episode, and only the first of it is sent.
    await setBalance(account, { monthly: 0, purchased: 1 });
    for (const want of [200, 403, 403]) {
      const res = await classify(account);
      expect(res.status).toBe(want);
      await res.arrayBuffer();
    }
    await vi.waitFor(async () => expect(await received(hook)).toHaveLength(2), {
      timeout: 20_000,
      interval: 250,
    });
    // A restarted object remembers its episode: no event for a refusal within it.
    const ledger = ledgerFor(env, account.id);
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    const again = await classify(account);
    expect(again.status).toBe(403);
    await again.arrayBuffer();
    await vi.waitFor(async () =>
      expect(await deliveries(account, created.id)).toEqual([
        expect.objectContaining({ type: "credits.exhausted", status: "succeeded" }),
        expect.objectContaining({ type: "credits.exhausted", status: "succeeded" }),
      ]),
    );
    expect(await received(hook)).toHaveLength(2);
  }, 40_000);
});

describe("who may manage endpoints", () => {
  it("a classify key reads them and cannot change them", async () => {
    const account = await createAccount();
    const created = await addEndpoint(account, { url: hookUrl(name()) });
    const res = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ name: "app", scope: "classify" }),
    });
    expect(res.status).toBe(201);
    const { key } = await json<{ key: string }>(res);
    const list = await gateway("/v1/account/webhooks", { key });
    expect(list.status).toBe(200);
    await list.arrayBuffer();
    for (const [method, path] of [
      ["POST", "/v1/account/webhooks"],
      ["DELETE", `/v1/account/webhooks/${created.id}`],
      ["POST", `/v1/account/webhooks/${created.id}/test`],
    ] as const) {
      const r = await gateway(path, {
        method,
        key,
        body: method === "POST" ? JSON.stringify({ url: hookUrl(name()) }) : undefined,
      });
      expect(r.status, `${method} ${path}`).toBe(403);
      await r.arrayBuffer();
    }
  });
});

describe("the dead-letter queue", () => {
  it("a message the consumer kept failing on fails its delivery", async () => {
    const account = await createAccount();
    const created = await addEndpoint(account, { url: hookUrl(name()) });
    const id = `msg_dlq_${crypto.randomUUID().replaceAll("-", "")}`;
    await insertDelivery(
      db,
      {
        id,
        endpointId: created.id,
        accountId: account.id,
        eventType: "balance.low",
        payload: "{}",
      },
      new Date(),
    );
    const batch = createMessageBatch<WebhookMessage>("tollgate-webhooks-dlq", [
      { id: "dead-1", timestamp: new Date(), attempts: 20, body: { delivery_id: id } },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["dead-1"]);
    expect(await deliveries(account, created.id)).toEqual([
      expect.objectContaining({ id, status: "failed", attempts: 0 }),
    ]);
  });
});
