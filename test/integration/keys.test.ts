import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../../src/db/client";
import { emails } from "../../src/db/schema";
import {
  admin,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";

interface CreatedKey {
  id: string;
  key: string;
  scope: "full" | "classify";
  name: string | null;
}

async function createKey(account: TestAccount, body: Record<string, unknown> = {}, key?: string) {
  return gateway("/v1/account/keys", {
    method: "POST",
    key: key ?? account.api_key,
    body: JSON.stringify(body),
  });
}

async function newKey(account: TestAccount, body: Record<string, unknown> = {}) {
  const res = await createKey(account, body);
  expect(res.status).toBe(201);
  return json<CreatedKey>(res);
}

async function keysOf(account: TestAccount) {
  const res = await gateway("/v1/account/keys", { key: account.api_key });
  expect(res.status).toBe(200);
  return (
    await json<{ data: Array<{ id: string; scope: string; revoked_at: string | null }> }>(res)
  ).data;
}

async function emailKinds(account: TestAccount) {
  const res = await admin(`/accounts/${account.id}/emails`);
  return (await json<{ data: Array<{ kind: string }> }>(res)).data.map((e) => e.kind);
}

afterEach(() => vi.restoreAllMocks());

describe("key scopes (money rule 11: least privilege)", () => {
  it("the account's first key is full; keys made through the API default to classify", async () => {
    const account = await createAccount();
    const [first] = await keysOf(account);
    expect(first?.scope).toBe("full");
    const made = await newKey(account, { name: "ci" });
    expect(made.scope).toBe("classify");
    expect(made.key).toMatch(/^tg_(live|test)_[0-9A-Za-z]{32,}$/);
    const full = await newKey(account, { scope: "full" });
    expect(full.scope).toBe("full");
  });

  it("a classify key spends credits and reads the account, but buys nothing and changes nothing", async () => {
    const account = await createAccount();
    const { key } = await newKey(account);
    const spent = await gateway("/v1/classify", {
      method: "POST",
      key,
      body: JSON.stringify({ title: "Wireless earbuds" }),
    });
    expect(spent.status).toBe(200);
    await spent.arrayBuffer();
    for (const path of ["/v1/account", "/v1/account/balance", "/v1/account/keys"]) {
      const read = await gateway(path, { key });
      expect(read.status, path).toBe(200);
      await read.arrayBuffer();
    }
    const [owner] = await keysOf(account);
    const writes: Array<[string, string, unknown]> = [
      ["PUT", "/v1/account/auto-recharge", { enabled: false }],
      ["POST", "/v1/account/top-ups", { package: "credits_1000" }],
      ["POST", "/v1/account/keys", {}],
      ["DELETE", `/v1/account/keys/${owner?.id}`, undefined],
      ["POST", "/v1/account/billing-portal", {}],
    ];
    for (const [method, path, body] of writes) {
      const res = await gateway(path, {
        method,
        key,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      await expectError(res, 403, "insufficient_scope");
    }
    // The owner's key survived the attempt to revoke it.
    expect((await keysOf(account)).find((k) => k.id === owner?.id)?.revoked_at).toBeNull();
  });

  it("an unknown scope is a 400 naming the field", async () => {
    const account = await createAccount();
    const body = await expectError(
      await createKey(account, { scope: "admin" }),
      400,
      "invalid_request",
    );
    expect(body.error.fields?.map((f) => f.field)).toEqual(["scope"]);
  });
});

describe("key limits", () => {
  it("at most 20 active keys: the 21st is 409 limit_reached, also when created concurrently", async () => {
    const account = await createAccount();
    const results = await Promise.all(Array.from({ length: 25 }, () => createKey(account)));
    const statuses = results.map((r) => r.status).sort();
    await Promise.all(results.map((r) => r.arrayBuffer()));
    expect(statuses.filter((s) => s === 201)).toHaveLength(19);
    expect(statuses.filter((s) => s === 409)).toHaveLength(6);
    await expectError(await createKey(account), 409, "limit_reached");
    expect((await keysOf(account)).filter((k) => k.revoked_at === null)).toHaveLength(20);
  });

  it("revoking a key frees a slot", async () => {
    const account = await createAccount();
    const made = await Promise.all(Array.from({ length: 19 }, () => newKey(account)));
    await expectError(await createKey(account), 409, "limit_reached");
    const res = await gateway(`/v1/account/keys/${made[0]?.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect((await createKey(account)).status).toBe(201);
  });
});

describe("revoking keys", () => {
  it("five concurrent revocations of five full keys leave exactly one active full key", async () => {
    const account = await createAccount();
    const others = await Promise.all(
      Array.from({ length: 4 }, () => newKey(account, { scope: "full" })),
    );
    const ids = (await keysOf(account)).map((k) => k.id);
    expect(ids).toHaveLength(5);
    const results = await Promise.all(
      ids.map((id) =>
        gateway(`/v1/account/keys/${id}`, { method: "DELETE", key: account.api_key }),
      ),
    );
    const statuses = results.map((r) => r.status);
    const refused = results.filter((r) => r.status === 409);
    expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    expect(refused).toHaveLength(1);
    await expectError(refused[0] as Response, 409, "conflict");
    await Promise.all(results.filter((r) => r.status === 200).map((r) => r.arrayBuffer()));
    // The survivor may be any of them (the owner's own key may be among the revoked): list
    // the keys with whichever still works.
    let listed: Array<{ scope: string; revoked_at: string | null }> = [];
    for (const key of [account.api_key, ...others.map((o) => o.key)]) {
      const res = await gateway("/v1/account/keys", { key });
      if (res.status === 200) {
        listed = (await json<{ data: typeof listed }>(res)).data;
        break;
      }
      await res.arrayBuffer();
    }
    expect(listed.filter((k) => k.revoked_at === null && k.scope === "full")).toHaveLength(1);
  });

  it("classify keys do not count: the last full key cannot be revoked while classify keys remain", async () => {
    const account = await createAccount();
    await newKey(account);
    const [, owner] = await keysOf(account);
    const res = await gateway(`/v1/account/keys/${owner?.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    await expectError(res, 409, "conflict");
  });

  it("another account's key id is 404, and nothing changes", async () => {
    const a = await createAccount();
    const b = await createAccount();
    const [bKey] = await keysOf(b);
    await newKey(a, { scope: "full" });
    const res = await gateway(`/v1/account/keys/${bKey?.id}`, {
      method: "DELETE",
      key: a.api_key,
    });
    await expectError(res, 404, "not_found");
    expect((await keysOf(b))[0]?.revoked_at).toBeNull();
  });
});

describe("key emails", () => {
  it("creating and revoking a key each email the account", async () => {
    const account = await createAccount();
    const sent = vi.spyOn(env.EMAIL, "send").mockResolvedValue({ messageId: "m" } as never);
    const made = await newKey(account, { name: "deploy bot" });
    const res = await gateway(`/v1/account/keys/${made.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const kinds = await emailKinds(account);
    expect(kinds).toContain("key_created");
    expect(kinds).toContain("key_revoked");
    expect(sent).toHaveBeenCalledTimes(2);
    // A classify key still works for traffic.
    await (await classify(account)).arrayBuffer();
  });
});

describe("key churn (issue 18 item 9)", () => {
  it("the key emails carry no caller text: the name is in neither subject nor body", async () => {
    const account = await createAccount();
    const sent = vi.spyOn(env.EMAIL, "send").mockResolvedValue({ messageId: "m" } as never);
    const name = "Reset your password at https://evil.example/login";
    const made = await newKey(account, { name });
    expect(made.name).toBe(name);
    const res = await gateway(`/v1/account/keys/${made.id}`, {
      method: "DELETE",
      key: account.api_key,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const messages = sent.mock.calls.map(
      ([m]) => m as unknown as { subject: string; text: string },
    );
    expect(messages).toHaveLength(2);
    for (const m of messages) {
      expect(m.subject).not.toContain("evil.example");
      expect(m.text).not.toContain("evil.example");
      expect(m.text).not.toContain("Reset your password");
      // The key is still named, by what the caller did not choose.
      expect(m.text).toContain(made.key.slice(-4));
    }
  });

  it("lists keys in pages (limit, cursor, next_cursor), newest first, each key once", async () => {
    const account = await createAccount();
    for (let i = 0; i < 4; i++) await newKey(account, { name: `k${i}` });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : "?limit=2";
      const res = await gateway(`/v1/account/keys${query}`, { key: account.api_key });
      expect(res.status).toBe(200);
      const page = await json<{ data: Array<{ id: string }>; next_cursor: string | null }>(res);
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((k) => k.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(5);
    expect(seen).toEqual((await keysOf(account)).map((k) => k.id));
    const bad = await gateway("/v1/account/keys?cursor=nope", { key: account.api_key });
    expect((await expectError(bad, 400, "invalid_request")).error.fields?.[0]?.field).toBe(
      "cursor",
    );
    await expectError(
      await gateway("/v1/account/keys?limit=101", { key: account.api_key }),
      400,
      "invalid_request",
    );
  });

  it("validates the cursor with the other query parameters: every bad one is named", async () => {
    const account = await createAccount();
    const b64url = (v: unknown) =>
      btoa(JSON.stringify(v)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    const notOurs = ["nope", "%%%", b64url(["a"]), b64url(["a", "b", "c"]), b64url([1, 2])];
    for (const path of ["/v1/account/keys", "/v1/account/transactions"]) {
      for (const cursor of notOurs) {
        const res = await gateway(`${path}?cursor=${encodeURIComponent(cursor)}`, {
          key: account.api_key,
        });
        const err = await expectError(res, 400, "invalid_request");
        expect(err.error.fields, `${path} ${cursor}`).toEqual([
          { field: "cursor", message: "invalid cursor" },
        ]);
      }
      // One answer names both, instead of the limit first and the cursor on the next try.
      const both = await gateway(`${path}?limit=0&cursor=nope`, { key: account.api_key });
      const err = await expectError(both, 400, "invalid_request");
      expect(err.error.fields?.map((f) => f.field).sort()).toEqual(["cursor", "limit"]);
      // A cursor of ours (two strings) is accepted, even one past the last row.
      const ok = await gateway(`${path}?cursor=${b64url(["1970-01-01T00:00:00.000Z", "x"])}`, {
        key: account.api_key,
      });
      expect(ok.status).toBe(200);
      expect(await json(ok)).toMatchObject({ data: [], next_cursor: null });
    }
  });

  it("create-and-revoke cycles stop at 30 keys an hour: 429 rate_limited with Retry-After", async () => {
    const account = await createAccount();
    let made = 0;
    let refused: Response | null = null;
    for (let i = 0; i < 40 && !refused; i++) {
      const res = await createKey(account);
      if (res.status !== 201) {
        refused = res;
        break;
      }
      made++;
      const { id } = await json<CreatedKey>(res);
      const revoked = await gateway(`/v1/account/keys/${id}`, {
        method: "DELETE",
        key: account.api_key,
      });
      expect(revoked.status).toBe(200);
      await revoked.arrayBuffer();
    }
    // The account's first key counts: 29 more in this hour.
    expect(made).toBe(29);
    const retryAfter = Number(refused?.headers.get("Retry-After"));
    expect(retryAfter).toBeGreaterThan(3_000);
    expect(retryAfter).toBeLessThanOrEqual(3_600);
    const body = await expectError(refused as Response, 429, "rate_limited");
    expect(body.error.retry_after_seconds).toBe(retryAfter);
    // (More than the operator route's 50 newest: read D1.)
    const kinds = (
      await dbFor(env.DB)
        .select({ kind: emails.kind })
        .from(emails)
        .where(eq(emails.accountId, account.id))
        .all()
    ).map((e) => e.kind);
    expect(kinds.filter((k) => k === "key_created")).toHaveLength(29);
    expect(kinds.filter((k) => k === "key_revoked")).toHaveLength(29);
    // Revoking is never refused, and nothing more was made.
    expect((await keysOf(account)).length).toBe(30);
  });
});
