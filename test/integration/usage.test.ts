import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { UsagePoint } from "../../src/accounts/usage";
import { ledgerFor } from "../../src/ledger/client";
import {
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  type TestAccount,
} from "../helpers/http";

const HOUR = 3_600;
const DAY = 86_400;

interface UsageBody {
  granularity: "hour" | "day";
  from: string;
  to: string;
  series: UsagePoint[];
}

async function usage(account: TestAccount, query = ""): Promise<UsageBody> {
  const res = await gateway(`/v1/account/usage${query}`, { key: account.api_key });
  expect(res.status).toBe(200);
  return json<UsageBody>(res);
}

/** Makes `n` proxied requests, then runs the ledger's alarm (its checkpoint settles them). */
async function spend(account: TestAccount, n: number) {
  for (let i = 0; i < n; i++) {
    const res = await classify(account);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  expect(await runDurableObjectAlarm(ledgerFor(env, account.id))).toBe(true);
}

const sec = (iso: string) => Date.parse(iso) / 1000;
const totals = (series: UsagePoint[]) => ({
  requests: series.reduce((a, p) => a + p.requests, 0),
  credits: series.reduce((a, p) => a + p.credits, 0),
});

describe("GET /v1/account/usage", () => {
  it("shows proxied requests from the ledger, by hour and by day, zero-filled", async () => {
    const account = await createAccount();
    const before = Math.floor(Date.now() / 1000);
    await spend(account, 3);
    const after = Math.floor(Date.now() / 1000);

    const hourly = await usage(account);
    expect(hourly.granularity).toBe("hour");
    // The last 24 hours: 24 buckets ending with the current hour, every one present.
    expect(hourly.series).toHaveLength(24);
    expect(sec(hourly.to) - sec(hourly.from)).toBe(24 * HOUR);
    hourly.series.forEach((p, i) => {
      expect(sec(p.start)).toBe(sec(hourly.from) + i * HOUR);
    });
    expect(totals(hourly.series)).toEqual({ requests: 3, credits: 3 });
    const used = hourly.series.filter((p) => p.requests > 0).map((p) => sec(p.start));
    const hourOf = (s: number) => Math.floor(s / HOUR) * HOUR;
    expect([hourOf(before), hourOf(after)]).toContain(used[0]);

    const daily = await usage(account, "?granularity=day");
    expect(daily.granularity).toBe("day");
    expect(daily.series).toHaveLength(30);
    expect(sec(daily.from) % DAY).toBe(0);
    expect(totals(daily.series)).toEqual({ requests: 3, credits: 3 });
    const dayOf = (s: number) => Math.floor(s / DAY) * DAY;
    const usedDays = daily.series.filter((p) => p.requests > 0).map((p) => sec(p.start));
    expect([dayOf(before), dayOf(after)]).toContain(usedDays[0]);
    expect(sec(daily.to)).toBe(dayOf(Date.now() / 1000) + DAY);
  });

  it("sums seeded hours into the right hour and day buckets of an explicit range", async () => {
    const account = await createAccount();
    // Usage older than a day lives in the ledger's hour rows (usage only: no debit amounts).
    await runInDurableObject(ledgerFor(env, account.id), (_i, state) => {
      for (const [at, requests, credits] of [
        ["2026-01-01T10:00:00Z", 5, 8],
        ["2026-01-01T23:00:00Z", 1, 1],
        ["2026-01-02T00:00:00Z", 4, 4],
      ] as const) {
        state.storage.sql.exec(
          "INSERT INTO usage_hours (hour, requests, credits, peak) VALUES (?, ?, ?, ?)",
          sec(at),
          requests,
          credits,
          requests,
        );
      }
    });
    const hourly = await usage(account, "?from=2026-01-01T10:30:00Z&to=2026-01-01T12:10:00Z");
    expect(hourly).toEqual({
      granularity: "hour",
      from: "2026-01-01T10:00:00.000Z",
      to: "2026-01-01T13:00:00.000Z",
      series: [
        { start: "2026-01-01T10:00:00.000Z", requests: 5, credits: 8 },
        { start: "2026-01-01T11:00:00.000Z", requests: 0, credits: 0 },
        { start: "2026-01-01T12:00:00.000Z", requests: 0, credits: 0 },
      ],
    });
    const daily = await usage(
      account,
      "?granularity=day&from=2025-12-31T00:00:00Z&to=2026-01-03T00:00:00Z",
    );
    expect(daily.series).toEqual([
      { start: "2025-12-31T00:00:00.000Z", requests: 0, credits: 0 },
      { start: "2026-01-01T00:00:00.000Z", requests: 6, credits: 9 },
      { start: "2026-01-02T00:00:00.000Z", requests: 4, credits: 4 },
    ]);
    // Offsets other than Z name the same instant.
    const offset = await usage(
      account,
      `?granularity=day&from=${encodeURIComponent("2026-01-01T09:00:00+09:00")}&to=2026-01-02T00:00:00Z`,
    );
    expect(offset.series.map((p) => p.start)).toEqual(["2026-01-01T00:00:00.000Z"]);
  });

  it("answers an empty range with every bucket at zero", async () => {
    const account = await createAccount();
    await spend(account, 1);
    const body = await usage(account, "?from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z");
    expect(body.series).toHaveLength(24);
    expect(body.series.every((p) => p.requests === 0 && p.credits === 0)).toBe(true);
    const days = await usage(
      account,
      "?granularity=day&from=2025-01-01T00:00:00Z&to=2026-02-05T00:00:00Z",
    );
    // 400 days is the largest day range.
    expect(days.series).toHaveLength(400);
    expect(totals(days.series)).toEqual({ requests: 0, credits: 0 });
  });

  it("never shows another account's usage", async () => {
    const mine = await createAccount();
    const theirs = await createAccount();
    await spend(theirs, 4);
    await spend(mine, 1);
    expect(totals((await usage(mine)).series)).toEqual({ requests: 1, credits: 1 });
    expect(totals((await usage(theirs)).series)).toEqual({ requests: 4, credits: 4 });
    const fresh = await createAccount();
    expect(totals((await usage(fresh, "?granularity=day")).series)).toEqual({
      requests: 0,
      credits: 0,
    });
  });

  it("refuses invalid queries with 400 invalid_request naming the field", async () => {
    const account = await createAccount();
    const cases: Array<[string, string]> = [
      ["?granularity=second", "granularity"],
      // Minutes are kept for the last 24 hours only.
      ["?granularity=minute&from=2026-01-01T00:00:00Z", "from"],
      ["?from=yesterday", "from"],
      ["?to=2026-01-01", "to"],
      ["?from=2026-01-01T10:00:00", "from"],
      ["?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"],
      ["?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"],
      // Hour: at most 31 days; day: at most 400 days.
      ["?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:01Z", "from"],
      ["?granularity=day&from=2025-01-01T00:00:00Z&to=2026-02-06T00:00:00Z", "from"],
    ];
    for (const [query, field] of cases) {
      const res = await gateway(`/v1/account/usage${query}`, { key: account.api_key });
      const body = await expectError(res, 400, "invalid_request");
      expect({ query, fields: body.error.fields?.map((f) => f.field) }).toEqual({
        query,
        fields: [field],
      });
    }
    // Unknown parameters are refused too (a typo such as `form=` must not be ignored).
    const unknown = await expectError(
      await gateway("/v1/account/usage?limit=5", { key: account.api_key }),
      400,
      "invalid_request",
    );
    expect(unknown.error.fields?.[0]).toEqual({ field: "limit", message: "unknown field" });
    // A 31-day hour range is allowed.
    expect(
      (await usage(account, "?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")).series,
    ).toHaveLength(31 * 24);
  });

  it("needs a key like every account route", async () => {
    await expectError(await gateway("/v1/account/usage"), 401, "invalid_api_key");
  });
});
