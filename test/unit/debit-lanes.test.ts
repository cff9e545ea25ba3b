/**
 * The lane of coalesced debits (src/gateway/debit-lanes.ts) on its own: who sends, what a call
 * carries, and how a lane recovers from a call that fails. `send` is the lane's own parameter
 * (the request's stub call in the gateway); here it records the calls and answers them.
 */
import { describe, expect, it } from "vitest";
import { laneDebit, MAX_DEBITS_PER_CALL } from "../../src/gateway/debit-lanes";
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
  const pending: Array<() => void> = [];
  const send = (items: DebitItem[]) => {
    calls.push(items);
    return new Promise<DebitOutcome[]>((resolve) =>
      pending.push(() => resolve(items.map((i) => ({ result: ok(i.cost) })))),
    );
  };
  const release = async () => {
    for (let i = 0; i < 20 && pending.length === 0; i++) await Promise.resolve();
    pending.shift()?.();
  };
  return { calls, send, release };
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
    const send = (items: DebitItem[]) => {
      if (fail) throw Object.assign(new Error("Network connection lost."), { retryable: true });
      return l.send(items);
    };
    const a = laneDebit("acct_d", { cost: 1, ref: "d1" }, send, keep);
    await expect(a).rejects.toMatchObject({ retryable: true });
    fail = false;
    const b = laneDebit("acct_d", { cost: 2, ref: "d2" }, send, keep);
    await l.release();
    expect(await b).toMatchObject({ ok: true, charged: { purchased: 2 } });
  });

  it("a debit whose own take failed in a shared call fails alone, as the error a call of one would throw", async () => {
    const send = async (items: DebitItem[]): Promise<DebitOutcome[]> =>
      items.map((i) =>
        i.ref === "bad"
          ? { failure: { message: "LedgerWriteFailed: nothing was charged", retryable: true } }
          : { result: ok(i.cost) },
      );
    const first = laneDebit("acct_e", { cost: 1, ref: "e1" }, send, keep);
    const bad = laneDebit("acct_e", { cost: 1, ref: "bad" }, send, keep);
    const good = laneDebit("acct_e", { cost: 3, ref: "e3" }, send, keep);
    await first;
    await expect(bad).rejects.toMatchObject({ retryable: true });
    expect(await good).toMatchObject({ ok: true, charged: { purchased: 3 } });
  });
});
