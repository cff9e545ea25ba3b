/**
 * Group commit's pure parts: the batch of deltas one write carries (src/ledger/domain/
 * minute-row.ts), the minute row with its keys inside, a refund's change to it, and when a
 * debit joins a batch and how it is flushed (src/ledger/domain/group-commit.ts).
 */
import { describe, expect, it } from "vitest";
import { type DebitDecision, debitAnswer } from "../../src/ledger/domain/decisions";
import {
  FIRST_LONE,
  flushBy,
  groupCommitMode,
  joinsBatch,
  LONE_BATCHES,
  loneAfter,
} from "../../src/ledger/domain/group-commit";
import {
  addDelta,
  addToBatch,
  keyPath,
  keysJson,
  leaveMinute,
  type MinuteDelta,
  type MinuteRow,
  parseKeys,
  perKey,
  remainder,
  takeBack,
} from "../../src/ledger/domain/minute-row";

const counts = (requests: number, dm: number, dp: number, rm = 0, rp = 0) => ({
  requests,
  credits: dm + dp - rm - rp,
  debit_monthly: dm,
  debit_purchased: dp,
  refunded_monthly: rm,
  refunded_purchased: rp,
});

/** A minute: key_a 3 debits (2 monthly + 1 purchased), key_b 1 (2 purchased), 2 of no key. */
const row: MinuteRow = {
  minute: 600,
  ...counts(6, 4, 5),
  keys: { key_a: counts(3, 2, 1), key_b: counts(1, 0, 2) },
};

describe("the batch one write carries", () => {
  it("sums a minute's debits for the account and per named key; a debit of no key is the remainder", () => {
    const batch = new Map<number, MinuteDelta>();
    addToBatch(batch, 600, "key_a", { monthly: 1, purchased: 0 });
    addToBatch(batch, 600, "key_a", { monthly: 0, purchased: 2 });
    addToBatch(batch, 600, "", { monthly: 3, purchased: 0 });
    addToBatch(batch, 660, "key_b", { monthly: 0, purchased: 1 });
    expect([...batch.keys()]).toEqual([600, 660]);
    const first = batch.get(600) as MinuteDelta;
    expect(first).toMatchObject({ minute: 600, requests: 3, monthly: 4, purchased: 2 });
    expect([...first.keys]).toEqual([["key_a", { requests: 2, monthly: 1, purchased: 2 }]]);
    expect(batch.get(660)?.keys.get("key_b")).toEqual({ requests: 1, monthly: 0, purchased: 1 });
  });
});

describe("one row per account-minute, the keys inside", () => {
  it("stores each named key as six numbers and reads them back", () => {
    const json = keysJson(row.keys);
    expect(JSON.parse(json)).toEqual({ key_a: [3, 3, 2, 1, 0, 0], key_b: [1, 2, 0, 2, 0, 0] });
    expect(parseKeys(json)).toEqual(row.keys);
    expect(parseKeys("{}")).toEqual({});
  });

  it("names a key's place in the JSON by a quoted label, and refuses a label SQLite cannot quote", () => {
    expect(keyPath("key_0a1b")).toBe('$."key_0a1b"');
    expect(() => keyPath('key"x')).toThrow(/quote/);
  });

  it("adds a write's delta to the row it knows: the account, each named key, refunds kept", () => {
    const refunded = { ...row, ...counts(5, 4, 5, 0, 2), keys: { ...row.keys } };
    const delta: MinuteDelta = {
      minute: 600,
      requests: 3,
      monthly: 1,
      purchased: 4,
      keys: new Map([
        ["key_b", { requests: 1, monthly: 0, purchased: 1 }],
        ["key_c", { requests: 1, monthly: 1, purchased: 0 }],
      ]),
    };
    const after = addDelta(refunded, delta);
    expect(after).toEqual({
      minute: 600,
      ...counts(8, 5, 9, 0, 2),
      keys: { key_a: counts(3, 2, 1), key_b: counts(2, 0, 3), key_c: counts(1, 1, 0) },
    });
    // The debit of no key in the delta (3 requests less the 2 keyed) stays in the remainder.
    expect(remainder(after).requests).toBe(remainder(refunded).requests + 1);
    expect(refunded.keys.key_b).toEqual(counts(1, 0, 2));
  });

  it('shows the debits of no key as key "", and only when there are any', () => {
    expect(remainder(row)).toEqual(counts(2, 2, 2));
    expect(perKey(row).map((k) => [k.key_id, k.requests, k.credits])).toEqual([
      ["", 2, 4],
      ["key_a", 3, 3],
      ["key_b", 1, 2],
    ]);
    const keyed = { ...row, ...counts(4, 2, 3) };
    expect(perKey(keyed).map((k) => k.key_id)).toEqual(["key_a", "key_b"]);
  });
});

describe("a refund's change to the row (money rule 8)", () => {
  it("takes the debit out of its own key and the account, once per debit it holds", () => {
    const after = takeBack(row, "key_b", { monthly: 0, purchased: 2 }) as MinuteRow;
    expect(after.keys.key_b).toEqual(counts(0, 0, 2, 0, 2));
    expect(after).toMatchObject({ requests: 5, credits: 7, refunded_purchased: 2 });
    // Its key holds no other request: a second refund finds nothing to take back.
    expect(takeBack(after, "key_b", { monthly: 0, purchased: 2 })).toBeNull();
  });

  it("never returns more than the key's bucket took, net of earlier refunds", () => {
    expect(takeBack(row, "key_a", { monthly: 3, purchased: 0 })).toBeNull();
    expect(takeBack(row, "key_a", { monthly: 0, purchased: 2 })).toBeNull();
    expect(takeBack(row, "key_unknown", { monthly: 0, purchased: 0 })).toBeNull();
  });

  it("a debit of no key comes out of the remainder, never out of a named key", () => {
    const after = takeBack(row, "", { monthly: 2, purchased: 0 }) as MinuteRow;
    expect(remainder(after)).toEqual(counts(1, 2, 2, 2, 0));
    expect(after.keys).toEqual(row.keys);
    // The remainder's monthly is spent: a further monthly refund of no key is refused, even
    // though key_a still holds monthly credits.
    expect(takeBack(after, "", { monthly: 1, purchased: 0 })).toBeNull();
  });

  it("a request refunded from its settled hour leaves the minute shown, never below zero", () => {
    const after = leaveMinute(row, "key_b", 5);
    expect(after.keys.key_b).toMatchObject({ requests: 0, credits: 0 });
    expect(after).toMatchObject({ requests: 5, credits: 7 });
    const again = leaveMinute(after, "key_b", 5);
    expect(again.keys.key_b).toMatchObject({ requests: 0, credits: 0 });
    expect(again).toMatchObject({ requests: 5, credits: 7 });
  });
});

describe("when a debit shares a write, and how the write is flushed", () => {
  const take = (flags: Partial<Record<"mustSettle" | "nearThreshold" | "crossesAlert", boolean>>) =>
    ({
      kind: "take",
      take: { monthly: 1, purchased: 0 },
      after: { monthly: 500, purchased: 0 },
      minute: 600,
      rate: null,
      mustSettle: false,
      nearThreshold: false,
      crossesAlert: false,
      ...flags,
    }) as Extract<DebitDecision, { kind: "take" }>;

  it("answers a take with what it charged and the balance after it, once written", () => {
    expect(debitAnswer(take({}))).toEqual({
      ok: true,
      charged: { monthly: 1, purchased: 0 },
      minute: 600,
      balance: { monthly: 500, purchased: 0, total: 500 },
      rate: null,
    });
  });

  it("joins only a debit that needs nothing but its minute's delta", () => {
    expect(joinsBatch(take({}))).toBe(true);
    expect(joinsBatch(take({ nearThreshold: true }))).toBe(false);
    expect(joinsBatch(take({ crossesAlert: true }))).toBe(false);
    expect(joinsBatch(take({ mustSettle: true }))).toBe(false);
  });

  it("LEDGER_GROUP_COMMIT: off, timer or microtask; anything else is adaptive", () => {
    expect(groupCommitMode("off")).toBe("off");
    expect(groupCommitMode("timer")).toBe("timer");
    expect(groupCommitMode("microtask")).toBe("microtask");
    expect(groupCommitMode(undefined)).toBe("adaptive");
    expect(groupCommitMode("on")).toBe("adaptive");
  });

  it("adaptive: a timer while batches hold several debits, a microtask for a lone caller, probing now and then", () => {
    expect(flushBy(0)).toBe("timer");
    expect(flushBy(LONE_BATCHES - 1)).toBe("timer");
    expect(flushBy(LONE_BATCHES + 1)).toBe("microtask");
    expect(flushBy(2 * LONE_BATCHES)).toBe("timer");
    expect(flushBy(2 * LONE_BATCHES + 1)).toBe("microtask");
  });

  it("adaptive: an object starts with a timer probe and leaves timers unless one gathers other calls' debits", () => {
    expect(flushBy(FIRST_LONE)).toBe("timer");
    // The probe waited for nothing: microtasks from the next batch on.
    let lone = loneAfter(FIRST_LONE, false);
    expect(flushBy(lone)).toBe("microtask");
    const flushes: string[] = [];
    for (let i = 0; i < 2 * LONE_BATCHES; i++) {
      flushes.push(flushBy(lone));
      lone = loneAfter(lone, false);
    }
    // One probe in every LONE_BATCHES batches.
    expect(flushes.filter((f) => f === "timer")).toHaveLength(2);
    // A probe that gathered debits of other calls: timers again until they stop paying.
    lone = loneAfter(lone, true);
    expect(lone).toBe(0);
    expect(flushBy(lone)).toBe("timer");
  });
});
