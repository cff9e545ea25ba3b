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
    expect(await ledger.adjust({ ref: "fund", monthly: 0, purchased: 100_000, reason: "t" }))
      .toMatchObject({ ok: true });
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
