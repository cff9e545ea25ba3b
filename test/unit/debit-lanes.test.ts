/**
 * The lane of coalesced debits (src/gateway/debit-lanes.ts) on its own: who sends, what a call
 * carries, and how a lane recovers from a call that fails. `send` is the lane's own parameter
 * (the request's stub calls in the gateway: `debit` alone, `debitMany` for several); here it
 * records the calls and answers them.
 */
import { describe, expect, it, vi } from "vitest";
import {
  LANE_STUCK_MS,
  LANE_WAIT_MS,
  laneDebit,
  laneHoldMs,
  MAX_DEBITS_PER_CALL,
  type Senders,
} from "../../src/gateway/debit-lanes";
import type { DebitItem, DebitOutcome, DebitResult } from "../../src/ledger/domain/types";

const ok = (n: number): DebitResult => ({
  ok: true,
  charged: { monthly: 0, purchased: n },
  minute: 0,
  balance: { monthly: 0, purchased: 0, total: 0 },
  rate: null,
});

/** A ledger that answers each call once `release` is called, each debit with its cost. */
function ledger() {
  const calls: DebitItem[][] = [];
  /** Which call each was: `one` (the plain debit) or `many`. */
  const kinds: Array<keyof Senders> = [];
  const pending: Array<() => void> = [];
  const many = (items: DebitItem[]) => {
    calls.push(items);
    kinds.push("many");
    return new Promise<DebitOutcome[]>((resolve) =>
      pending.push(() => resolve(items.map((i) => ({ result: ok(i.cost) })))),
    );
  };
  const one = (item: DebitItem) => {
    calls.push([item]);
    kinds.push("one");
    return new Promise<DebitResult>((resolve) => pending.push(() => resolve(ok(item.cost))));
  };
  const release = async () => {
    for (let i = 0; i < 20 && pending.length === 0; i++) await Promise.resolve();
    pending.shift()?.();
  };
  const send: Senders = { one, many };
  return { calls, kinds, send, release };
}

const keep = () => {};
const tick = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("coalesced debits, one lane", () => {
  it("a lone debit is sent at once, alone; those that arrive meanwhile leave together, in order, with the first of them", async () => {
    const l = ledger();
    const first = laneDebit("acct_a", { cost: 1, ref: "r1" }, l.send, keep);
    const rest = [2, 3, 4].map((c) => laneDebit("acct_a", { cost: c, ref: `r${c}` }, l.send, keep));
    await tick();
    expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["r1"]]);
    await l.release();
    expect(await first).toMatchObject({ ok: true, charged: { purchased: 1 } });
    await tick();
    expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["r1"], ["r2", "r3", "r4"]]);
    // Alone, the plain debit (as with coalescing off); several, one debitMany.
    expect(l.kinds).toEqual(["one", "many"]);
    await l.release();
    const answers = await Promise.all(rest);
    expect(answers.map((a) => (a.ok ? a.charged.purchased : -1))).toEqual([2, 3, 4]);
    // Another account's debit never waits for this one's call.
    const other = ledger();
    const b = laneDebit("acct_b", { cost: 5, ref: "b1" }, other.send, keep);
    await tick();
    expect(other.calls).toHaveLength(1);
    await other.release();
    await b;
  });

  it(`a call carries at most ${MAX_DEBITS_PER_CALL} debits; the rest leave with the next`, async () => {
    const l = ledger();
    const first = laneDebit("acct_c", { cost: 1, ref: "c0" }, l.send, keep);
    const queued = Array.from({ length: MAX_DEBITS_PER_CALL + 6 }, (_, i) =>
      laneDebit("acct_c", { cost: 1, ref: `c${i + 1}` }, l.send, keep),
    );
    await l.release();
    await first;
    await l.release();
    await l.release();
    await Promise.all(queued);
    expect(l.calls.map((c) => c.length)).toEqual([1, MAX_DEBITS_PER_CALL, 6]);
  });

  it("a call that fails, even before it is under way, fails each of its debits, and the lane goes on", async () => {
    let fail = true;
    const l = ledger();
    const lost = () => {
      throw Object.assign(new Error("Network connection lost."), { retryable: true });
    };
    const send: Senders = {
      one: (item) => (fail ? lost() : l.send.one(item)),
      many: (items) => (fail ? lost() : l.send.many(items)),
    };
    const a = laneDebit("acct_d", { cost: 1, ref: "d1" }, send, keep);
    await expect(a).rejects.toMatchObject({ retryable: true });
    fail = false;
    const b = laneDebit("acct_d", { cost: 2, ref: "d2" }, send, keep);
    await l.release();
    expect(await b).toMatchObject({ ok: true, charged: { purchased: 2 } });
  });

  it("a lone call does not keep its request alive (waitUntil); a call that carries others' debits does", async () => {
    const l = ledger();
    const kept: Promise<unknown>[] = [];
    const keepAlive = (p: Promise<unknown>) => void kept.push(p);
    const first = laneDebit("acct_k", { cost: 1, ref: "k1" }, l.send, keepAlive);
    await tick();
    expect(kept).toHaveLength(0);
    // Queued requests keep themselves alive while they wait (one each).
    const rest = [2, 3, 4].map((c) =>
      laneDebit("acct_k", { cost: c, ref: `k${c}` }, l.send, keepAlive),
    );
    await tick();
    expect(kept).toHaveLength(3);
    await l.release();
    await first;
    await tick();
    // k2 sends k3 and k4 with its own: their answers ride on its call, kept alive.
    expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["k1"], ["k2", "k3", "k4"]]);
    expect(kept).toHaveLength(4);
    await l.release();
    await Promise.all(rest);
  });

  it(`a lane whose call has been out ${LANE_STUCK_MS} ms is presumed dead: the next debit leads a fresh lane with the queue, and the late answer sends nothing twice`, async () => {
    let now = 1_000_000;
    const clock = () => now;
    const l = ledger();
    // The first call never answers (its leader's request went away mid-call) until the end.
    const lost = laneDebit("acct_s", { cost: 1, ref: "s1" }, l.send, keep, { clock });
    const queued = [2, 3].map((c) =>
      laneDebit("acct_s", { cost: c, ref: `s${c}` }, l.send, keep, { clock }),
    );
    await tick();
    now += LANE_STUCK_MS; // not yet presumed dead: this one queues too
    const queuedToo = laneDebit("acct_s", { cost: 4, ref: "s4" }, l.send, keep, { clock });
    await tick();
    expect(l.calls).toHaveLength(1);
    now += 1;
    const healer = laneDebit("acct_s", { cost: 5, ref: "s5" }, l.send, keep, { clock });
    await tick();
    expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["s1"], ["s5", "s2", "s3", "s4"]]);
    l.calls.length = 0;
    // The lost call's answer arrives late: its lane's queue went with the fresh lane, so it
    // hands nothing on. Then the fresh lane's call answers everyone it carried.
    await l.release();
    await l.release();
    expect(await lost).toMatchObject({ ok: true, charged: { purchased: 1 } });
    const answers = await Promise.all([...queued, queuedToo, healer]);
    expect(answers.map((a) => (a.ok ? a.charged.purchased : -1))).toEqual([2, 3, 4, 5]);
    await tick();
    expect(l.calls).toHaveLength(0);
    // The lane closed: the next debit is sent at once, alone.
    const after = laneDebit("acct_s", { cost: 6, ref: "s6" }, l.send, keep, { clock });
    await tick();
    expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["s6"]]);
    await l.release();
    await after;
  });

  it("a request handed the lead holds it holdMs: the debits that queue meanwhile leave with it; a lone debit never waits", async () => {
    vi.useFakeTimers();
    try {
      const l = ledger();
      const hold = { holdMs: 1 };
      const kept: Promise<unknown>[] = [];
      const keep = (p: Promise<unknown>) => void kept.push(p);
      const first = laneDebit("acct_h", { cost: 1, ref: "h1" }, l.send, keep, hold);
      await tick();
      // Nothing in flight: sent at once, no timer.
      expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["h1"]]);
      const queued = [2, 3].map((c) =>
        laneDebit("acct_h", { cost: c, ref: `h${c}` }, l.send, keep, hold),
      );
      await tick();
      await l.release();
      await first;
      await tick();
      // h2 holds the lead: nothing sent yet, and h4, arriving now, joins its call. The hold is
      // kept alive as the waits were (h2's and h3's, then the hold).
      expect(l.calls).toHaveLength(1);
      expect(kept).toHaveLength(3);
      const late = laneDebit("acct_h", { cost: 4, ref: "h4" }, l.send, keep, hold);
      await tick();
      expect(l.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["h1"], ["h2", "h3", "h4"]]);
      await l.release();
      const answers = await Promise.all([...queued, late]);
      expect(answers.map((a) => (a.ok ? a.charged.purchased : -1))).toEqual([2, 3, 4]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("the hold is the configured whole number of ms up to 50, else 1", () => {
    expect(laneHoldMs("0")).toBe(0);
    expect(laneHoldMs("5")).toBe(5);
    expect(laneHoldMs("50")).toBe(50);
    for (const bad of [undefined, "", " ", "-1", "0.5", "51", "soon"])
      expect(laneHoldMs(bad)).toBe(1);
  });

  it("a queued debit that waited out its timer fails, and no later call carries it", async () => {
    vi.useFakeTimers();
    try {
      const l = ledger();
      const first = laneDebit("acct_w", { cost: 1, ref: "w1" }, l.send, keep);
      const expired = laneDebit("acct_w", { cost: 2, ref: "w2" }, l.send, keep);
      const failedAs = expect(expired).rejects.toMatchObject({ retryable: true });
      await tick();
      await vi.advanceTimersByTimeAsync(LANE_WAIT_MS);
      await failedAs;
      const later = laneDebit("acct_w", { cost: 3, ref: "w3" }, l.send, keep);
      await l.release();
      await first;
      await tick();
      // w2's request answered 503 and reversed its ref: its debit is never sent after that.
      expect(l.calls.map((c) => c.map((i) => i.ref))).toEqual([["w1"], ["w3"]]);
      await l.release();
      expect(await later).toMatchObject({ ok: true, charged: { purchased: 3 } });
    } finally {
      vi.useRealTimers();
    }
  });

  it("a debit whose own take failed in a shared call fails alone, as the error a call of one would throw", async () => {
    const send: Senders = {
      one: async (i) => ok(i.cost),
      many: async (items) =>
        items.map((i) =>
          i.ref === "bad"
            ? { failure: { message: "LedgerWriteFailed: nothing was charged", retryable: true } }
            : { result: ok(i.cost) },
        ),
    };
    const first = laneDebit("acct_e", { cost: 1, ref: "e1" }, send, keep);
    const bad = laneDebit("acct_e", { cost: 1, ref: "bad" }, send, keep);
    const good = laneDebit("acct_e", { cost: 3, ref: "e3" }, send, keep);
    await first;
    await expect(bad).rejects.toMatchObject({ retryable: true });
    expect(await good).toMatchObject({ ok: true, charged: { purchased: 3 } });
  });
});
