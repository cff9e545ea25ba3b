/**
 * Usage by key (issue 22): the ledger keeps its minute aggregate per key, still one row written
 * per debit; refunds leave their own key's row; settling into hours and a restart keep every
 * key's sums exact; `GET /v1/account/usage` answers per minute and per key, in JSON and CSV;
 * keys carry `last_used_at`; the transaction history exports as CSV, every page at once.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import type { DebitCharge } from "../../src/ledger/domain/types";
import {
  admin,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";
import { billingHtml, page, signIn } from "../helpers/page";

const MINUTE = 60_000;

type Sums = Record<string, { requests: number; credits: number }>;

function sumByKey(rows: Array<{ key_id?: string | null; requests: number; credits: number }>) {
  const out: Sums = {};
  for (const r of rows) {
    const k = r.key_id ?? "";
    const s = out[k] ?? { requests: 0, credits: 0 };
    s.requests += r.requests;
    s.credits += r.credits;
    out[k] = s;
  }
  for (const [k, s] of Object.entries(out)) if (s.requests === 0 && s.credits === 0) delete out[k];
  return out;
}

/** RFC 4180 as csv.ts writes it (quoted fields may hold commas and quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else field += ch;
  }
  expect(field).toBe("");
  return rows;
}

/** The CSV's rows as objects keyed by its header row. */
function csvObjects(text: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text);
  expect(header).toBeDefined();
  return rows.map((r) => Object.fromEntries((header as string[]).map((h, i) => [h, r[i] ?? ""])));
}

const cell = (v: unknown) => (v === null || v === undefined ? "" : String(v));

describe("the ledger's usage per key", () => {
  it("stays exact per key through refunds, settling into hours and a restart", async () => {
    const accountId = `acct_${crypto.randomUUID()}`;
    const ledger = ledgerFor(env, accountId);
    await ledger.init({ accountId, plan: "free" });
    expect(
      await ledger.adjust({ ref: "fund", monthly: 0, purchased: 100_000, reason: "t" }),
    ).toMatchObject({ ok: true });
    const start = Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE;
    let t = start;
    const expected: Sums = {};
    const charges: Array<{ ref: string; charge: DebitCharge }> = [];
    const keys = ["key_a", "key_b", "key_c", undefined] as const;
    // 3 hours, a debit every 20 s, keys in turn, costs 1..3; every 7th debit kept for a refund.
    const debits = (count: number, from: number) =>
      runInDurableObject(ledger, async (raw) => {
        const instance = raw as AccountLedger;
        const out: Array<{ ref: string; charge: DebitCharge; key: string; cost: number }> = [];
        for (let i = from; i < from + count; i++) {
          t += 20_000;
          instance.testSetClock(t);
          const key = keys[i % keys.length];
          const cost = 1 + (i % 3);
          const r = await instance.debit(cost, `dbt_${i}`, key);
          if (!r.ok) throw new Error(`debit ${i} refused: ${r.reason}`);
          out.push({
            ref: `dbt_${i}`,
            charge: { minute: r.minute, ...r.charged, key_id: key ?? "" },
            key: key ?? "",
            cost,
          });
        }
        return out;
      });
    const record = (done: Awaited<ReturnType<typeof debits>>) => {
      for (const d of done) {
        const s = expected[d.key] ?? { requests: 0, credits: 0 };
        s.requests += 1;
        s.credits += d.cost;
        expected[d.key] = s;
        if (d.ref.endsWith("7")) charges.push({ ref: d.ref, charge: d.charge });
      }
    };
    const refund = async (stub: typeof ledger, n: number) => {
      for (const { ref, charge } of charges.splice(0, n)) {
        expect(await stub.refund(ref, charge)).toMatchObject({ ok: true, refunded: true });
        const s = expected[charge.key_id ?? ""] as { requests: number; credits: number };
        s.requests -= 1;
        s.credits -= charge.monthly + charge.purchased;
      }
    };
    record(await debits(300, 0));
    // Refunds of open minutes, then the checkpoint settles those minutes into hours.
    await refund(ledger, 10);
    await ledger.testSetClock(t + MINUTE);
    expect(await runDurableObjectAlarm(ledger)).toBe(true);
    record(await debits(240, 300));
    // Refunds of settled minutes (out of their key's hour row) and of open ones.
    await refund(ledger, charges.length);
    await runInDurableObject(ledger, (_i, state) => state.abort("restart")).catch(() => {});
    const fresh = ledgerFor(env, accountId);
    await fresh.testSetClock(t + MINUTE);
    const range = [start / 1000 - 3600, (t + MINUTE) / 1000] as const;
    const byKey = await fresh.usage(...range, { byKey: true });
    expect(byKey.every((r) => typeof r.key_id === "string")).toBe(true);
    expect(sumByKey(byKey)).toEqual(expected);
    // The account's series is the sum of its keys'; minute rows (the ring) agree.
    const all = sumByKey(await fresh.usage(...range));
    const total = Object.values(expected).reduce(
      (a, s) => ({ requests: a.requests + s.requests, credits: a.credits + s.credits }),
      { requests: 0, credits: 0 },
    );
    expect(all).toEqual({ "": total });
    expect(sumByKey(await fresh.usage(...range, { byKey: true, minutes: true }))).toEqual(expected);
    // A refund never takes from another key's row: a forged key finds nothing to give back.
    const last = byKey.filter((r) => r.key_id === "key_a").at(-1);
    expect(last).toBeDefined();
    expect(
      await fresh.refund("dbt_forged", {
        minute: (last as { at: number }).at,
        monthly: 0,
        purchased: 1,
        key_id: "key_zzz",
      }),
    ).toEqual({ ok: false, reason: "not_found" });
    expect(await fresh.audit()).toMatchObject({ consistent: true });
    // Last use per key, to the minute, whether settled or still open.
    const lastUsed = await fresh.keysLastUsed();
    expect(Object.keys(lastUsed).sort()).toEqual(["key_a", "key_b", "key_c"]);
    const maxMinute = (k: string) =>
      Math.max(...byKey.filter((r) => r.key_id === k).map((r) => r.at));
    expect(lastUsed.key_b).toBe(maxMinute("key_b"));
  });
});

interface Point {
  start: string;
  key_id?: string | null;
  requests: number;
  credits: number;
}

async function usageOf(account: TestAccount, query: string) {
  const res = await gateway(`/v1/account/usage${query}`, { key: account.api_key });
  expect(res.status, await res.clone().text()).toBe(200);
  return json<{ granularity: string; from: string; to: string; series: Point[] }>(res);
}

async function csvOf(path: string, account: TestAccount, headers: Record<string, string> = {}) {
  const res = await gateway(path, { key: account.api_key, headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe("text/csv; charset=utf-8");
  return res.text();
}

describe("GET /v1/account/usage per minute and per key, JSON and CSV", () => {
  it("answers each key's requests and credits, refunds taken out, and keys' last use", async () => {
    const account = await createAccount();
    const created = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ name: "second", scope: "classify" }),
    });
    expect(created.status).toBe(201);
    const second = await json<{ id: string; key: string }>(created);
    const unused = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ name: "unused" }),
    });
    expect(unused.status).toBe(201);
    const unusedId = (await json<{ id: string }>(unused)).id;
    const before = Math.floor(Date.now() / MINUTE) * MINUTE;
    for (let i = 0; i < 3; i++) {
      const r = await classify(account);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    for (let i = 0; i < 2; i++) {
      const r = await classify({ ...account, api_key: second.key });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    // An upstream failure: debited, then refunded out of the second key's minute.
    const failed = await gateway("/v1/status/503", {
      method: "POST",
      body: "{}",
      key: second.key,
    });
    await expectError(failed, 502, "upstream_error");
    const after = Math.floor(Date.now() / MINUTE) * MINUTE;

    const minutes = await usageOf(account, "?granularity=minute");
    expect(minutes.granularity).toBe("minute");
    expect(minutes.series).toHaveLength(60);
    expect(minutes.series.reduce((n, p) => n + p.requests, 0)).toBe(5);
    expect(await usageOf(account, "?granularity=minute&group_by=key")).toMatchObject({
      granularity: "minute",
    });
    const keyed = (await usageOf(account, "?granularity=minute&group_by=key")).series;
    const firstKeyId = keyed.find((p) => p.key_id !== second.id)?.key_id;
    expect(sumByKey(keyed)).toEqual({
      [firstKeyId as string]: { requests: 3, credits: 3 },
      [second.id]: { requests: 2, credits: 2 },
    });
    for (const p of keyed) {
      expect(Date.parse(p.start)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(p.start)).toBeLessThanOrEqual(after);
    }
    // By hour and day too; the points with traffic only.
    const hourly = (await usageOf(account, "?group_by=key")).series;
    expect(sumByKey(hourly)).toEqual(sumByKey(keyed));
    expect(hourly.every((p) => p.requests > 0)).toBe(true);

    // CSV: the same points, header first, whether asked by format or by Accept.
    const csv = await csvOf(
      "/v1/account/usage?granularity=minute&group_by=key&format=csv",
      account,
    );
    expect(csv.startsWith("start,key_id,requests,credits\r\n")).toBe(true);
    expect(csvObjects(csv)).toEqual(
      keyed.map((p) => ({
        start: p.start,
        key_id: cell(p.key_id),
        requests: String(p.requests),
        credits: String(p.credits),
      })),
    );
    const plain = await csvOf("/v1/account/usage?granularity=minute", account, {
      Accept: "text/csv",
    });
    expect(csvObjects(plain)).toEqual(
      minutes.series.map((p) => ({
        start: p.start,
        requests: String(p.requests),
        credits: String(p.credits),
      })),
    );

    // Last use per key, to the minute; null for a key never used.
    const keys = (
      await json<{ data: Array<{ id: string; last_used_at: string | null }> }>(
        await gateway("/v1/account/keys", { key: account.api_key }),
      )
    ).data;
    const lastOf = (id: string | null | undefined) => keys.find((k) => k.id === id)?.last_used_at;
    for (const id of [firstKeyId, second.id]) {
      const at = Date.parse(lastOf(id) as string);
      expect(at % MINUTE).toBe(0);
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(after);
    }
    expect(keys.filter((k) => k.last_used_at === null).map((k) => k.id)).toEqual([unusedId]);
    // Settled by the checkpoint, the last use still shows.
    expect(await runDurableObjectAlarm(ledgerFor(env, account.id))).toBe(true);
    const settled = (
      await json<{ data: Array<{ id: string; last_used_at: string | null }> }>(
        await gateway("/v1/account/keys", { key: account.api_key }),
      )
    ).data;
    expect(settled.find((k) => k.id === second.id)?.last_used_at).toBe(lastOf(second.id));
  });

  it("refuses minutes older than a day and unknown group_by or format values", async () => {
    const account = await createAccount();
    const old = new Date(Date.now() - 25 * 3_600_000).toISOString();
    await expectError(
      await gateway(`/v1/account/usage?granularity=minute&from=${old}`, { key: account.api_key }),
      400,
      "invalid_request",
    );
    const day = new Date(Date.now() - 24 * 3_600_000).toISOString();
    const full = await usageOf(account, `?granularity=minute&from=${day}`);
    expect(full.series.length).toBeGreaterThanOrEqual(1_440);
    await expectError(
      await gateway("/v1/account/usage?group_by=account", { key: account.api_key }),
      400,
      "invalid_request",
    );
    await expectError(
      await gateway("/v1/account/transactions?format=xml", { key: account.api_key }),
      400,
      "invalid_request",
    );
  });
});

describe("GET /v1/account/transactions as CSV", () => {
  it("streams every transaction, all pages at once, the same rows as the JSON pages", async () => {
    const account = await createAccount();
    // More rows than one D1 page of the export (100): grants and adjustments, one a tricky note.
    for (let i = 0; i < 3; i++) {
      const res = await admin(`/accounts/${account.id}/credits`, {
        method: "POST",
        body: JSON.stringify({ purchased: 10 + i, reason: i === 0 ? '=SUM(A1), "quoted"' : "t" }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const now = Date.now();
    const stmt = env.DB.prepare(
      `INSERT INTO transactions (id, account_id, type, status, credits, amount_cents, currency,
         description, needs_attention, created_at, updated_at)
       VALUES (?, ?, 'adjustment', 'succeeded', ?, 0, 'usd', ?, 0, ?, ?)`,
    );
    await env.DB.batch(
      Array.from({ length: 130 }, (_, i) => {
        const at = new Date(now - 86_400_000 - i * 1000).toISOString();
        return stmt.bind(`adj_bulk_${account.id}_${i}`, account.id, i - 5, `bulk ${i}`, at, at);
      }),
    );
    // The JSON, page by page.
    const pages: Array<Record<string, unknown>> = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await gateway(`/v1/account/transactions?limit=50${q}`, {
        key: account.api_key,
      });
      expect(res.status).toBe(200);
      const body = await json<{ data: Array<Record<string, unknown>>; next_cursor: string | null }>(
        res,
      );
      pages.push(...body.data);
      cursor = body.next_cursor;
    } while (cursor);
    expect(pages.length).toBeGreaterThanOrEqual(133);

    const csv = await csvOf("/v1/account/transactions?format=csv", account);
    const rows = csvObjects(csv);
    const columns = [
      "id",
      "type",
      "status",
      "credits",
      "amount_cents",
      "currency",
      "failure_code",
      "invoice_url",
      "action_url",
      "description",
      "created_at",
    ];
    expect(parseCsv(csv)[0]).toEqual(columns);
    // A formula-looking text is defused with a leading quote; numbers stay numbers.
    const expectedRows = pages.map((t) =>
      Object.fromEntries(
        columns.map((c) => {
          const v = cell(t[c]);
          return [c, typeof t[c] === "string" && /^[=+\-@]/.test(v) ? `'${v}` : v];
        }),
      ),
    );
    expect(rows).toEqual(expectedRows);
    expect(rows.some((r) => r.description === `'=SUM(A1), "quoted"`)).toBe(true);
    expect(rows.some((r) => r.credits === "-5")).toBe(true);
    // Accept: text/csv asks for the same.
    expect(await csvOf("/v1/account/transactions", account, { Accept: "text/csv" })).toBe(csv);
  });
});

describe("the Billing page", () => {
  it("shows usage per key, links both CSV exports, and pages through the whole history", async () => {
    const account = await createAccount();
    for (let i = 0; i < 2; i++) {
      const r = await classify(account);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    const now = Date.now();
    const stmt = env.DB.prepare(
      `INSERT INTO transactions (id, account_id, type, status, credits, amount_cents, currency,
         description, needs_attention, created_at, updated_at)
       VALUES (?, ?, 'adjustment', 'succeeded', 1, 0, 'usd', 'bulk', 0, ?, ?)`,
    );
    await env.DB.batch(
      Array.from({ length: 45 }, (_, i) => {
        const at = new Date(now - 3_600_000 - i * 1000).toISOString();
        return stmt.bind(`adj_page_${account.id}_${i}`, account.id, at, at);
      }),
    );
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const body = await json<{ data: Array<{ id: string }>; next_cursor: string | null }>(
        await gateway(`/v1/account/transactions?limit=100${q}`, { key: account.api_key }),
      );
      all.push(...body.data.map((t) => t.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(all.length).toBeGreaterThanOrEqual(46);

    const cookie = await signIn(account);
    let html = await billingHtml(cookie);
    // Usage per key: the account's first key, 2 requests and 2 credits, and its last use.
    const keys = (
      await json<{ data: Array<{ id: string; last_used_at: string | null }> }>(
        await gateway("/v1/account/keys", { key: account.api_key }),
      )
    ).data;
    const used = keys.find((k) => k.last_used_at !== null);
    expect(used).toBeDefined();
    const row = new RegExp(`<tr data-key="${(used as { id: string }).id}">(.*?)</tr>`, "s").exec(
      html,
    )?.[1];
    expect(row, "a usage row for the key").toBeDefined();
    expect(row).toMatch(/data-label="Requests"[^>]*>2</);
    expect(row).toMatch(/data-label="Credits"[^>]*>2</);
    // The exports, downloadable with the page's own session.
    for (const [id, path] of [
      ["usage-csv", "/v1/account/usage?granularity=day&amp;group_by=key&amp;format=csv"],
      ["history-csv", "/v1/account/transactions?format=csv"],
    ] as const) {
      expect(html).toContain(`id="${id}" href="${path}"`);
      const res = await page(path.replaceAll("&amp;", "&"), { cookie });
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("text/csv; charset=utf-8");
      await res.arrayBuffer();
    }
    // The history, page after page, ends with every transaction shown once.
    const shown: string[] = [];
    for (let n = 0; n < 10; n++) {
      const table = /<table id="transactions".*?<\/table>/s.exec(html)?.[0] ?? "";
      shown.push(
        ...[...table.matchAll(/<tr data-type="[^"]*" data-status="[^"]*" data-id="([^"]+)"/g)].map(
          (m) => m[1] as string,
        ),
      );
      const older = /id="history-older" href="([^"#]+)#history"/.exec(html)?.[1];
      if (!older) break;
      const next = await page(older.replaceAll("&amp;", "&"), { cookie });
      expect(next.status).toBe(200);
      html = await next.text();
      expect(html).toContain('href="/account/billing#history"');
    }
    expect(shown).toEqual(all);
  });
});
