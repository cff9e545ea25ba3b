import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RefundMessage } from "../../src/gateway/refunds";
import { ledgerFor } from "../../src/ledger/client";
import { reconcile } from "../../src/purchases/reconciler";
import { audit, balanceOf, createAccount, expectError, gateway, setBalance } from "../helpers/http";
import { eventually } from "../helpers/stripe";

/** The account's Durable Object refuses the next `refund` call, as if it were unreachable. */
function failNextRefund(): void {
  const namespace = env.ACCOUNT_LEDGER;
  const realGet = namespace.get.bind(namespace);
  let fail = true;
  vi.spyOn(namespace, "get").mockImplementation((id) => {
    const stub = realGet(id);
    return new Proxy(stub, {
      get(target, prop) {
        if (prop === "refund" && fail) {
          fail = false;
          return () => Promise.reject(new Error("Durable Object is unreachable"));
        }
        // RPC stubs answer any property, `bind` included: call through the stub instead.
        return (...args: unknown[]) =>
          (target as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>)[prop]?.(...args);
      },
    });
  });
}

async function refundEntries(accountId: string) {
  return runInDurableObject(ledgerFor(env, accountId), (_i, state) =>
    state.storage.sql
      .exec<{ ref: string }>("SELECT ref FROM ledger WHERE ref LIKE 'refund:%'")
      .toArray(),
  );
}

afterEach(() => vi.restoreAllMocks());

describe("a refund that cannot reach the Durable Object at first (money rule 8)", () => {
  it("the client still gets 502, and the refund arrives later, exactly once", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 1, purchased: 2 });
    failNextRefund();
    const res = await gateway("/v1/status/503", {
      method: "POST",
      key: account.api_key,
      body: "{}",
    });
    await expectError(res, 502, "upstream_error");
    vi.restoreAllMocks();
    await eventually(async () =>
      expect(await balanceOf(account)).toMatchObject({ monthly: 1, purchased: 2 }),
    );
    expect(await refundEntries(account.id)).toHaveLength(1);
    expect((await audit(account.id)).consistent).toBe(true);
    // The queued refund named the key: it left that key's minute, so no usage is left over.
    const rows = await ledgerFor(env, account.id).usage(0, Math.ceil(Date.now() / 1000) + 60, {
      byKey: true,
    });
    expect(rows.reduce((n, r) => n + r.requests + r.credits, 0)).toBe(0);
  });

  it("a refund applied twice (a redelivered message) changes nothing the second time", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 0, purchased: 5 });
    failNextRefund();
    await (
      await gateway("/v1/status/500", { method: "POST", key: account.api_key, body: "{}" })
    ).arrayBuffer();
    vi.restoreAllMocks();
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(5));
    const [entry] = await refundEntries(account.id);
    const debitRef = entry?.ref.slice("refund:".length) as string;
    const again = await ledgerFor(env, account.id).refund(debitRef, null);
    expect(again).toMatchObject({ ok: true, refunded: false });
    expect((await balanceOf(account)).purchased).toBe(5);
  });

  it("with the refund queue down too, the refund waits in D1 and the reconciler applies it once", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 2, purchased: 3 });
    failNextRefund();
    const send = vi.spyOn(env.REFUND_QUEUE, "send").mockRejectedValue(new Error("queue down"));
    const res = await gateway("/v1/status/502", {
      method: "POST",
      key: account.api_key,
      body: "{}",
    });
    await expectError(res, 502, "upstream_error");
    expect(send).toHaveBeenCalledTimes(1);
    vi.restoreAllMocks();
    // Nothing came back yet: the refund is owed, in D1.
    expect(await balanceOf(account)).toMatchObject({ monthly: 1, purchased: 3 });
    const owed = await env.DB.prepare("SELECT debit_ref FROM pending_refunds WHERE account_id = ?")
      .bind(account.id)
      .all<{ debit_ref: string }>();
    expect(owed.results).toHaveLength(1);
    const first = await reconcile(env);
    expect(first.refundsApplied).toEqual([owed.results[0]?.debit_ref]);
    expect(await balanceOf(account)).toMatchObject({ monthly: 2, purchased: 3 });
    const second = await reconcile(env);
    expect(second.refundsApplied).not.toContain(owed.results[0]?.debit_ref);
    expect(await balanceOf(account)).toMatchObject({ monthly: 2, purchased: 3 });
    expect(await refundEntries(account.id)).toHaveLength(1);
    expect((await audit(account.id)).consistent).toBe(true);
    // D1's pending refund kept the key: the reconciler's refund left that key's minute.
    const rows = await ledgerFor(env, account.id).usage(0, Math.ceil(Date.now() / 1000) + 60, {
      byKey: true,
    });
    expect(rows.reduce((n, r) => n + r.requests + r.credits, 0)).toBe(0);
  });
});

describe("a refund names the debit it gives back", () => {
  it("a refund message carries the debit's charge, or when a debit whose reply was lost was sent; neither is malformed", () => {
    const of = { account_id: "acct_1", debit_ref: "dbt_1" };
    const charge = { minute: 60, monthly: 1, purchased: 0 };
    expect(RefundMessage.safeParse({ ...of, charge }).success).toBe(true);
    expect(RefundMessage.safeParse({ ...of, sent_at: 1 }).success).toBe(true);
    expect(RefundMessage.safeParse(of).success).toBe(false);
  });

  it("a pending refund with neither is reported for an operator and kept, never counted as applied", async () => {
    const account = await createAccount();
    const debitRef = `dbt_${crypto.randomUUID().replaceAll("-", "")}`;
    await env.DB.prepare(
      "INSERT INTO pending_refunds (debit_ref, account_id, charge, sent_at, last_error) VALUES (?, ?, NULL, NULL, 'test')",
    )
      .bind(debitRef, account.id)
      .run();
    const report = await reconcile(env);
    expect(report.refundsApplied).not.toContain(debitRef);
    expect(report.attention).toContainEqual({
      id: debitRef,
      reason: expect.stringContaining("names neither the debit's charge nor when it was sent"),
    });
    const kept = await env.DB.prepare("SELECT debit_ref FROM pending_refunds WHERE debit_ref = ?")
      .bind(debitRef)
      .all();
    expect(kept.results).toHaveLength(1);
    await env.DB.prepare("DELETE FROM pending_refunds WHERE debit_ref = ?").bind(debitRef).run();
  });
});
