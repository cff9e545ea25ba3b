/**
 * How the account ledger commits a command: one synchronous transaction that runs the
 * command's apply step, then the follow-ups every balance change owes (the low-balance alert,
 * the balance projection, the end of a `credits.exhausted` episode), and refreshes memory from
 * what committed. The effects are flushed after the commit, by the caller's choice: waited for
 * (`run`) or left to the alarm (`mutate`). Nothing is delivered for a write that rolled back.
 */
import type { AlarmClock } from "./alarms";
import type { Effects } from "./domain/effects";
import { addEffects, noEffects } from "./domain/effects";
import { type Buckets, liveBalance, withTotal } from "./domain/rules";
import { balanceFollowUp, lowBalanceFollowUp } from "./follow-ups";
import type { LedgerMemory } from "./memory";
import type { OutboxRunner } from "./outbox-runner";
import { nextLeaseAlarm } from "./shards/recall";
import { clearExhausted, markExhausted } from "./store/exhaustion";
import { readStateRow } from "./store/state";
import type { Tx } from "./tx";

type Committed<R> = { result: R; fx: Effects };

export class LedgerTransactions {
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly m: LedgerMemory,
    private readonly outbox: OutboxRunner,
    private readonly alarms: AlarmClock,
    private readonly clock: () => number,
  ) {}

  /**
   * One mutation, ending with its follow-ups; memory re-reads what it committed. `rearm: false`
   * (a refund) never arms the alert. A rolled-back one throws, and its effects go with it.
   */
  transact<R>(fn: (tx: Tx) => R, rearm = true, now = this.clock()): Committed<R> {
    const sql = this.storage.sql;
    // Pending debits are written first: a command decides on committed storage.
    this.m.flush();
    const tx: Tx = { sql, now, open: this.m.open, fx: noEffects() };
    try {
      const out = this.storage.transactionSync(() => {
        const before = this.m.live();
        const result = fn(tx);
        const after = { ...tx, now: this.clock() };
        addEffects(tx.fx, lowBalanceFollowUp(after, rearm));
        // Not for a refund (the one mutation that does not re-arm): there is one per failed
        // upstream call, so it reaches D1 with the next change or checkpoint instead.
        if (rearm) addEffects(tx.fx, balanceFollowUp(after, before));
        // Credits again after a refusal: the next refusal opens a new episode.
        // Read only within an episode: no other mutation pays for it.
        const s = this.m.exhausted ? readStateRow(sql) : null;
        const credited = s !== null && withTotal(liveBalance(s, tx.open)).total > 0;
        if (credited) clearExhausted(sql);
        return { result, credited };
      });
      if (out.credited) this.m.exhausted = false;
      return { result: out.result, fx: tx.fx };
    } finally {
      this.m.reread();
    }
  }

  /**
   * A lease granted or closed (docs/ledger-shards.md): no low-balance or balance step of its
   * own (a lease moves credits, it spends none; `applyLeaseClose` follows what a shard spent),
   * and memory rebuilt, the open debits included (a close writes the shard's minute rows).
   */
  async leased<R>(fn: (tx: Tx) => R): Promise<R> {
    this.m.flush();
    const tx: Tx = { sql: this.storage.sql, now: this.clock(), open: this.m.open, fx: noEffects() };
    let result: R;
    try {
      result = this.storage.transactionSync(() => fn(tx));
    } finally {
      this.m.reload();
    }
    this.alarms.schedule(nextLeaseAlarm(this.storage.sql, this.clock()));
    await this.outbox.afterCommit(tx.fx);
    return result;
  }

  /** A mutation whose caller waits for its outbox items to be delivered. */
  async run<R>(fn: (tx: Tx) => R, now = this.clock()): Promise<R> {
    const { result, fx } = this.transact(fn, true, now);
    await this.outbox.afterCommit(fx);
    return result;
  }

  /** A mutation whose caller delivers nothing itself: its outbox items are left to the alarm. */
  mutate<R>(fn: (tx: Tx) => R, rearm = true, now = this.clock()): R {
    const { result, fx } = this.transact(fn, rearm, now);
    this.outbox.leaveToAlarm(fx);
    return result;
  }

  /**
   * The first refusal of an episode (called once the takes it was decided on are written): one
   * write, the event and the episode's mark; the reply is not held for its delivery, which the
   * alarm retries. Later refusals of the episode write nothing.
   */
  firstRefusal(accountId: string, balance: Buckets, cost: number, now: number): void {
    if (this.m.exhausted) return;
    const item = this.storage.transactionSync(() =>
      markExhausted(this.storage.sql, accountId, balance, cost, now),
    );
    this.m.exhausted = true;
    void this.outbox.afterCommit({ deliver: [item], alarms: [] });
  }
}
