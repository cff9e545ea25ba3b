/**
 * Coalesced debits (src/gateway/debit-lanes.ts): the debits one isolate sends to one account's
 * ledger share Durable Object calls, each still decided on its own in the ledger (money rules
 * 1–3) and answered on its own; a call that fails fails each of its debits, and each request
 * reverses its own. Counted with a wrapper of the real binding that only counts. These run
 * every request in the test's own context; the same with each request in its own context (the
 * runtime's cross-request rules) is test/acceptance/proxy.test.mjs, "concurrent requests".
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import type { DebitItem } from "../../src/ledger/domain/types";
import type { Bindings } from "../../src/platform/env";
import {
  admin,
  audit,
  balanceOf,
  classify,
  createAccount,
  expectError,
  setBalance,
} from "../helpers/http";
import { ledgerFailing } from "../helpers/ledger-faults";
import { expectLogs } from "../helpers/logs";
import { uniqueRequestId, upstreamRequests } from "../helpers/upstream";

/**
 * The real bindings, with every call on one Durable Object namespace counted (the ledger's, or
 * the escrow shards'): calls, and debits per `debitMany`.
 */
function counted(binding: "ACCOUNT_LEDGER" | "LEDGER_SHARD" = "ACCOUNT_LEDGER") {
  const calls: Record<string, number> = {};
  const batches: number[] = [];
  const real = env[binding] as unknown as DurableObjectNamespace;
  const namespace = {
    idFromName: (name: string) => real.idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = real.get(id);
      return new Proxy(stub, {
        get(_t, prop: string) {
          return (...args: unknown[]) => {
            calls[prop] = (calls[prop] ?? 0) + 1;
            if (prop === "debitMany") batches.push((args.at(-1) as DebitItem[]).length);
            return (stub as unknown as Record<string, (...a: unknown[]) => unknown>)[prop]?.(
              ...args,
            );
          };
        },
      });
    },
  };
  const bindings = { ...env, [binding]: namespace } as unknown as Bindings;
  return { bindings, calls, batches };
}

/** An account on 4 escrow shards, with 10,000 purchased credits and no rate limit to speak of. */
async function shardedAccount() {
  const account = await createAccount();
  // Before the key's first use: a cached key learns a new shard count late (identity.ts).
  const set = await admin(`/accounts/${account.id}`, {
    method: "PATCH",
    // Each shard lets through its part of the account's rate limit: lifted, as in the bench.
    body: JSON.stringify({ shards: 4, rate_limit_per_minute: 1_000_000 }),
  });
  expect(set.status).toBe(200);
  await set.arrayBuffer();
  await setBalance(account, { monthly: 0, purchased: 10_000 });
  return account;
}

describe("coalesced debits", () => {
  it("N concurrent requests on B credits: exactly min(N, B) served, in fewer ledger calls than requests, each answered its own balance", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 25 });
    const { bindings, calls, batches } = counted();
    const responses = await Promise.all(
      Array.from({ length: 40 }, () => classify(account, "/v1/classify", { env: bindings })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(25);
    expect(statuses.filter((s) => s === 403)).toHaveLength(15);
    // Each served request was told the balance after its own debit: 24 down to 0, once each.
    const remaining = responses
      .filter((r) => r.status === 200)
      .map((r) => Number(r.headers.get("X-Credits-Remaining")))
      .sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 25 }, (_, i) => i));
    for (const r of responses) await r.arrayBuffer();
    // One debit call per request no more: a debit with nothing in flight went alone (the
    // plain `debit`), the rest in batches (`debitMany`), every debit in exactly one call.
    const alone = calls.debit ?? 0;
    expect(alone).toBeGreaterThanOrEqual(1);
    expect(alone + batches.reduce((n, b) => n + b, 0)).toBe(40);
    expect(alone + batches.length).toBeLessThan(40);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 0, total: 0 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a sharded account's debits coalesce per shard: fewer shard calls than requests, each debit in exactly one", async () => {
    const account = await shardedAccount();
    const { bindings, calls, batches } = counted("LEDGER_SHARD");
    const responses = await Promise.all(
      Array.from({ length: 80 }, () => classify(account, "/v1/classify", { env: bindings })),
    );
    const bodies = await Promise.all(responses.map((r) => r.text()));
    expect(responses.map((r, i) => `${r.status} ${r.status === 200 ? "" : bodies[i]}`)).toEqual(
      Array(80).fill("200 "),
    );
    const alone = calls.debit ?? 0;
    expect(alone + batches.reduce((n, b) => n + b, 0)).toBe(80);
    expect(alone + batches.length).toBeLessThan(80);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    // Every lease back: the account's whole balance is the ledger's again, exact.
    await ledgerFor(env, account.id).leaseRecall();
    expect(await balanceOf(account)).toMatchObject({ purchased: 10_000 - 80 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a sharded account's coalesced debits are refunded where each was taken: a failing upstream charges nothing", async () => {
    const account = await shardedAccount();
    const { bindings, batches } = counted("LEDGER_SHARD");
    // Every request's upstream fails: each debit is refunded to the shard and the lease it was
    // taken from, as the debit's answer named them (a refund sent elsewhere is lost silently).
    const responses = await Promise.all(
      Array.from({ length: 60 }, () =>
        classify(account, "/v1/status/503", { env: bindings, body: "{}" }),
      ),
    );
    for (const r of responses) await expectError(r, 502, "upstream_error");
    expect(Math.max(...batches)).toBeGreaterThan(1);
    await ledgerFor(env, account.id).leaseRecall();
    expect(await balanceOf(account)).toMatchObject({ purchased: 10_000 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a call of several whose reply is lost: every request in it is 503, nothing forwarded, each debit reversed once", async () => {
    const logs = expectLogs([/^durable object unavailable \S+ Error: /]);
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 100 });
    // Only the call of several loses its reply: the first request, sent alone, is served.
    const failing = await ledgerFailing(account.id, { debitMany: "lost_reply" });
    const ids = Array.from({ length: 12 }, () => uniqueRequestId());
    const responses = await Promise.all(
      ids.map((id) =>
        classify(account, "/v1/classify", { env: failing, headers: { "X-Request-Id": id } }),
      ),
    );
    const served = responses.filter((r) => r.status === 200);
    expect(served).toHaveLength(1);
    const lost = ids.filter((_, i) => responses[i]?.status !== 200);
    for (const res of responses)
      if (res.status === 200) await res.arrayBuffer();
      else await expectError(res, 503, "service_unavailable");
    for (const id of lost) expect(await upstreamRequests(id)).toEqual([]);
    // Every debit of the lost call ran and committed, and every one was reversed by its own
    // ref: only the served request's credit is kept.
    expect(await balanceOf(account)).toMatchObject({ purchased: 99, total: 99 });
    expect((await audit(account.id)).consistent).toBe(true);
    expect(logs.matching(/^durable object unavailable /)).toHaveLength(11);
  });
});
