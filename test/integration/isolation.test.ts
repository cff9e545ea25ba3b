import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import { balanceOf, classify, createAccount, expectError, gateway, json } from "../helpers/http";

describe("an account sees and changes only itself", () => {
  it("account A cannot read or change account B by path, query, header or body", async () => {
    const a = await createAccount();
    const b = await createAccount("pro");
    const bKeys = await json<{ data: Array<{ id: string }> }>(
      await gateway("/v1/account/keys", { key: b.api_key }),
    );
    const bKeyId = bKeys.data[0]?.id as string;

    // Path and query tricks answer for A, or 404, never with B's data.
    const me = await json<{ id: string }>(
      await gateway(`/v1/account?account_id=${b.id}`, { key: a.api_key }),
    );
    expect(me.id).toBe(a.id);
    await expectError(await gateway(`/v1/account/${b.id}`, { key: a.api_key }), 404, "not_found");
    await expectError(
      await gateway(`/v1/account/${b.id}/balance`, { key: a.api_key }),
      404,
      "not_found",
    );
    const bal = await json<{ plan: string }>(
      await gateway("/v1/account/balance", { key: a.api_key, headers: { "X-Account-Id": b.id } }),
    );
    expect(bal.plan).toBe("free");

    // Revoking B's key with A's key is indistinguishable from a key that does not exist.
    await expectError(
      await gateway(`/v1/account/keys/${bKeyId}`, { method: "DELETE", key: a.api_key }),
      404,
      "not_found",
    );
    await expectError(
      await gateway("/v1/account/keys/key_doesnotexist", { method: "DELETE", key: a.api_key }),
      404,
      "not_found",
    );

    // Unknown body fields are refused, so an account id in a body cannot redirect a write.
    const res = await gateway("/v1/account/keys", {
      method: "POST",
      key: a.api_key,
      body: JSON.stringify({ account_id: b.id }),
    });
    await expectError(res, 400, "invalid_request");

    // Proxied traffic with B's id anywhere still debits A.
    const r = await classify(a, `/v1/classify?account=${b.id}`, {
      headers: { "X-Account-Id": b.id },
    });
    await r.arrayBuffer();
    expect((await balanceOf(a)).total).toBe(499);
    expect((await balanceOf(b)).total).toBe(8000);
    expect(
      (await json<{ data: unknown[] }>(await gateway("/v1/account/keys", { key: b.api_key }))).data,
    ).toHaveLength(1);
  });
});

describe("API keys", () => {
  it("lists prefix and last four only, shows a new key once, and honours revocation", async () => {
    const a = await createAccount();
    const created = await gateway("/v1/account/keys", {
      method: "POST",
      key: a.api_key,
      body: JSON.stringify({ name: "ci" }),
    });
    expect(created.status).toBe(201);
    const second = await json<{ id: string; key: string; last4: string }>(created);
    expect(second.key.slice(-4)).toBe(second.last4);

    const listed = await gateway("/v1/account/keys", { key: a.api_key });
    const text = await listed.text();
    expect(text).not.toContain(a.api_key);
    expect(text).not.toContain(second.key);
    expect(JSON.parse(text).data).toHaveLength(2);

    // Both keys work, then the second is revoked and refused at once in this isolate.
    expect((await gateway("/v1/account", { key: second.key })).status).toBe(200);
    const revoked = await gateway(`/v1/account/keys/${second.id}`, {
      method: "DELETE",
      key: a.api_key,
    });
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ id: second.id, revoked: true });
    await expectError(await gateway("/v1/account", { key: second.key }), 401, "invalid_api_key");
    await expectError(await classify({ ...a, api_key: second.key }), 401, "invalid_api_key");
    expect((await gateway("/v1/account", { key: a.api_key })).status).toBe(200);
  });

  it("a revoked key is refused on proxied traffic even where an isolate still caches it", async () => {
    const a = await createAccount();
    const second = await json<{ id: string; key: string }>(
      await gateway("/v1/account/keys", {
        method: "POST",
        key: a.api_key,
        body: JSON.stringify({ name: "cached" }),
      }),
    );
    const first = await classify({ ...a, api_key: second.key });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    // What another isolate sees: the key is cached there, D1 has not been consulted again.
    // Only the account's Durable Object knows; it refuses the key inside the debit call.
    await ledgerFor(env, a.id).revokeKey(second.id);
    await expectError(await classify({ ...a, api_key: second.key }), 401, "invalid_api_key");
    expect((await balanceOf(a)).total).toBe(499);
    const ok = await classify(a);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  it("refuses to revoke the last active key", async () => {
    const a = await createAccount();
    const keys = await json<{ data: Array<{ id: string }> }>(
      await gateway("/v1/account/keys", { key: a.api_key }),
    );
    await expectError(
      await gateway(`/v1/account/keys/${keys.data[0]?.id}`, { method: "DELETE", key: a.api_key }),
      409,
      "conflict",
    );
  });
});
