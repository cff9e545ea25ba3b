/**
 * An account with escrow shards through the gateway (docs/ledger-shards.md): the operator sets
 * the count, requests spread over the shards, refunds go back where the debit was taken, and
 * lowering the count recalls every lease.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import { shardFor } from "../../src/ledger/shards/client";
import {
  admin,
  audit,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
} from "../helpers/http";

async function setShards(accountId: string, shards: unknown) {
  return admin(`/accounts/${accountId}`, { method: "PATCH", body: JSON.stringify({ shards }) });
}

describe("an account with escrow shards", () => {
  it("PATCH /admin/accounts/:id sets the shard count, validated and audited", async () => {
    const account = await createAccount();
    const res = await setShards(account.id, 4);
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: account.id, shards: 4 });
    await expectError(await setShards(account.id, 0), 400, "invalid_request");
    await expectError(await setShards(account.id, 17), 400, "invalid_request");
    await expectError(await setShards(account.id, 2.5), 400, "invalid_request");
    const log = await json<{ data: { action: string; details: Record<string, unknown> }[] }>(
      await admin("/audit-log"),
    );
    const entry = log.data.find((e) => e.action === "shards.updated");
    expect(entry?.details).toMatchObject({ shards: 4, previous: 1 });
  });

  it("serves exactly min(N, B) across 4 shards through HTTP, refuses the rest at zero, and replays exactly", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 30, purchased: 20 });
    await ledgerFor(env, account.id).setLimits({ rateLimitPerMinute: 1_000_000 });
    expect((await setShards(account.id, 4)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 80 }, () => classify(account)));
    const statuses = responses.map((r) => r.status);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    expect(statuses.filter((s) => s === 403)).toHaveLength(30);
    // Back to one: every lease is recalled, the ledger holds the whole account again.
    expect((await setShards(account.id, 1)).status).toBe(200);
    expect(await balanceOf(account)).toMatchObject({ monthly: 0, purchased: 0, total: 0 });
    expect(await audit(account.id)).toMatchObject({
      consistent: true,
      ledger_total: 0,
      balance_total: 0,
    });
  });

  it("refunds a failed upstream call to the shard that took the debit, exactly (money rule 8)", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 10, purchased: 90 });
    expect((await setShards(account.id, 4)).status).toBe(200);
    for (let i = 0; i < 8; i++) {
      const res = await gateway("/v1/status/503", {
        method: "POST",
        body: "{}",
        key: account.api_key,
      });
      await expectError(res, 502, "upstream_error");
    }
    expect((await classify(account)).status).toBe(200);
    expect((await setShards(account.id, 1)).status).toBe(200);
    expect(await balanceOf(account)).toMatchObject({ monthly: 9, purchased: 90, total: 99 });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("a revoked key and a suspension reach every shard at once (their leases are recalled)", async () => {
    const account = await createAccount();
    expect((await setShards(account.id, 4)).status).toBe(200);
    const created = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ scope: "classify" }),
    });
    const key = await json<{ id: string; key: string }>(created);
    const other = { ...account, api_key: key.key };
    // Every shard of the account holds a lease granted while the key was good.
    const at = (i: number) => ({ accountId: account.id, shard: i, shards: 4 });
    const debitOn = (i: number, keyId: string) =>
      shardFor(env, account.id, i).debit(at(i), 1, `dbt_${crypto.randomUUID()}`, keyId);
    for (let i = 0; i < 4; i++) expect((await debitOn(i, key.id)).ok).toBe(true);
    expect((await classify(other)).status).toBe(200);
    const revoked = await gateway(`/v1/account/keys/${key.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expect(revoked.status).toBe(200);
    await revoked.arrayBuffer();
    for (let i = 0; i < 4; i++)
      expect(await debitOn(i, key.id)).toMatchObject({ ok: false, reason: "key_revoked" });
    const suspended = await admin(`/accounts/${account.id}/suspend`, {
      method: "POST",
      body: JSON.stringify({ reason: "test" }),
    });
    expect(suspended.status).toBe(200);
    await suspended.arrayBuffer();
    const owner = (
      await json<{ data: { id: string; scope: string }[] }>(
        await gateway("/v1/account/keys", { key: account.api_key }),
      )
    ).data.find((k) => k.id !== key.id);
    for (let i = 0; i < 4; i++)
      expect(await debitOn(i, owner?.id ?? "")).toMatchObject({
        ok: false,
        reason: "account_suspended",
      });
    expect((await audit(account.id)).consistent).toBe(true);
  });

  it("the account's rate limit holds across its shards (each its part of the minute)", async () => {
    const account = await createAccount("free"); // 60 requests a minute, 500 credits
    expect((await setShards(account.id, 4)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 200 }, () => classify(account)));
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    const served = responses.filter((r) => r.status === 200).length;
    const limited = responses.filter((r) => r.status === 429).length;
    // Whatever the clock, the burst spans at most two windows of each shard: at most
    // 2 × 4 × 15 served (one object alone would have served all 200: 500 credits).
    expect(served + limited).toBe(200);
    expect(served).toBeLessThanOrEqual(120);
    expect((await setShards(account.id, 1)).status).toBe(200);
    expect((await balanceOf(account)).total).toBe(500 - served);
    expect((await audit(account.id)).consistent).toBe(true);
  });
});
