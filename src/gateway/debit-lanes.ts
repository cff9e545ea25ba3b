/**
 * Coalesced debits: the debits one isolate sends to one account's ledger share Durable Object
 * calls. A debit with nothing in flight for its account is sent at once, alone, as the plain
 * `debit` (a lone request waits for nothing and pays nothing for the lanes: with 1,000
 * accounts almost every debit is alone, and as a `debitMany` of one the lanes cost that load
 * 12% more CPU a request than coalescing off; as `debit`, 3.5% less: docs/performance.md);
 * debits that arrive while a call is in flight queue, and when it returns the first of them
 * sends them all as one `debitMany`. The ledger still decides each debit on its own, in the
 * order of the call (money rules 1–3 unchanged), and answers each on its own.
 *
 * A request handed the lead holds it `holdMs` (1 ms by default) before it sends, so the debits
 * that arrive meanwhile leave with it: the lead is handed on only while the account has a
 * queue, so a lone debit never waits. A Durable Object call costs this runtime about as much
 * CPU as a whole proxied request, and the hold made the calls of the bench's hot account 60%
 * larger (12.7 debits a call instead of 7.9) for 4–10% less CPU a request; 2 ms made them
 * larger still but left the load's 32 connections waiting (docs/performance.md).
 *
 * Who sends: a batch leaves from the request of its first debit, in that request's own context
 * (a Durable Object stub belongs to the request that made it). A call that carries other
 * requests' debits is kept alive with the sender's `waitUntil`, so a client that hangs up does
 * not strand them; a lone call is not (a `waitUntil` has its cost: docs/performance.md, on
 * the 1,000-account load), and its lane heals instead: a lane whose call
 * or hand-over has been out for `LANE_STUCK_MS` is presumed dead (its sender's request went
 * away), and the account's next debit leads a fresh lane with the dead one's queue (queued
 * debits were never sent, so none is sent twice). A call that fails fails each of its debits
 * with the same error, and each request reverses its own debit by its ref, as with a call of
 * one (proxy.ts).
 */
import type { DebitItem, DebitOutcome, DebitResult } from "../ledger/domain/types";
import { wholeMs } from "../platform/vars";

/** The most debits one call carries; more wait for the next. */
export const MAX_DEBITS_PER_CALL = 64;

/**
 * How long a queued debit waits for its call before its request gives up (503, its debit
 * reversed by its ref, as a call that never answered). The timer is also what the request
 * waits on in its own context: the runtime cancels a request that waits on nothing of its own
 * as hung, and a promise another request settles is not its own.
 */
export const LANE_WAIT_MS = 10_000;

/**
 * A lane whose call (or hand-over) has been out this long is presumed dead. Presuming wrongly
 * costs one more concurrent call of the account, never a debit sent twice.
 */
export const LANE_STUCK_MS = 2_000;

/** How long a request handed the lead waits for more debits before it sends (`holdMs`). */
export const LANE_HOLD_MS = 1;

/** `DEBIT_LANE_HOLD_MS` when it is a whole number of ms up to 50, else the default. */
export function laneHoldMs(configured: string | undefined): number {
  return wholeMs(configured, LANE_HOLD_MS, { max: 50 });
}

export interface LaneOptions {
  /** For tests. */
  clock?: () => number;
  /** How long a request handed the lead waits before it sends; 0 sends at once. */
  holdMs?: number;
}

/**
 * This request's own calls: one debit (`debit`), or several in one call (`debitMany`). `R`: what
 * the object answers per debit (a shard's names the lease it was taken from).
 */
export interface Senders<R extends DebitResult = DebitResult> {
  one(item: DebitItem): Promise<R>;
  many(items: DebitItem[]): Promise<DebitOutcome<R>[]>;
}
// Lanes hold any object's debits; each lane's are of one object, so of one result type.
type Turn = { lead: Waiter[] } | { outcome: DebitOutcome<DebitResult> } | { error: unknown };

interface Waiter {
  item: DebitItem;
  /** Answered, expired or handed the lead: it joins no batch after that. */
  settled: boolean;
  settle(turn: Turn): void;
}

interface Lane {
  queue: Waiter[];
  /** When its current call was sent, or the lead handed on. */
  since: number;
}

/** Lanes by account, for this isolate; a lane exists while a call of its account is in flight. */
const lanes = new Map<string, Lane>();

/**
 * The debit, alone or with the others queued for the same account. `send` is this request's
 * own call (its stub); `keepAlive` is its `waitUntil`.
 */
export async function laneDebit<R extends DebitResult>(
  accountId: string,
  item: DebitItem,
  send: Senders<R>,
  keepAlive: (p: Promise<unknown>) => void,
  { clock = Date.now, holdMs = 0 }: LaneOptions = {},
): Promise<R> {
  const lane = lanes.get(accountId);
  if (!lane || clock() - lane.since > LANE_STUCK_MS) {
    // Nothing in flight, or what is in flight presumed dead: a fresh lane, with its queue.
    const fresh: Lane = { queue: lane ? lane.queue.splice(0) : [], since: clock() };
    lanes.set(accountId, fresh);
    const others = takeFrom(fresh.queue, MAX_DEBITS_PER_CALL - 1);
    return lead(accountId, fresh, item, others, send, keepAlive, clock);
  }
  const turn = await queued(lane, item, keepAlive);
  if ("lead" in turn) {
    const others = turn.lead;
    if (holdMs > 0 && others.length < MAX_DEBITS_PER_CALL - 1) {
      // Its own timer, in its own request: the debits that queue meanwhile join this call. Kept
      // alive like the wait before it: the debits it now carries must leave even if this
      // request's client hangs up during the hold.
      const held = new Promise((resume) => setTimeout(resume, holdMs));
      keepAlive(held);
      await held;
      others.push(...takeFrom(lane.queue, MAX_DEBITS_PER_CALL - 1 - others.length));
    }
    return lead(accountId, lane, item, others, send, keepAlive, clock);
  }
  if ("error" in turn) throw turn.error;
  // Answered by another request's call of the same lane, so of the same object: its `R`.
  return answer(turn.outcome as DebitOutcome<R>);
}

/** Waits in the lane for an answer or the lead, at most `LANE_WAIT_MS`. */
function queued(
  lane: Lane,
  item: DebitItem,
  keepAlive: (p: Promise<unknown>) => void,
): Promise<Turn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waiter: Waiter = { item, settled: false, settle: () => {} };
  const answered = new Promise<Turn>((settle) => {
    waiter.settle = (turn) => {
      waiter.settled = true;
      clearTimeout(timer);
      settle(turn);
    };
  });
  const expired = new Promise<Turn>((settle) => {
    timer = setTimeout(() => {
      // Not sent yet: no batch takes it now (`takeFrom`). Sent: the ledger may have taken it;
      // the request's reversal by ref gives it back or voids it (proxy.ts), as for any
      // unanswered call.
      waiter.settled = true;
      settle({ error: failure("the shared ledger call did not answer in time", true) });
    }, LANE_WAIT_MS);
  });
  lane.queue.push(waiter);
  // The race stays: one promise settled by either (the answer or the timer) made the request's
  // code after the lane run as another request's (bench:ab, hot account: "Cannot perform I/O
  // on behalf of a different request" on its upstream fetch, then lanes stuck).
  const turn = Promise.race([answered, expired]);
  // A request handed the lead must still be there to send, even if its client hung up; and
  // without it, workerd ran the lead on outside this request (I/O "on behalf of a different
  // request": docs/performance.md).
  keepAlive(turn);
  return turn;
}

/** Up to `n` waiters from the front of the queue, skipping those already settled. */
function takeFrom(queue: Waiter[], n: number): Waiter[] {
  const out: Waiter[] = [];
  while (out.length < n) {
    const w = queue.shift();
    if (!w) break;
    if (!w.settled) out.push(w);
  }
  return out;
}

/** Sends this debit and `others` in one call, hands the lane on, and answers everyone. */
async function lead<R extends DebitResult>(
  accountId: string,
  lane: Lane,
  item: DebitItem,
  others: Waiter[],
  send: Senders<R>,
  keepAlive: (p: Promise<unknown>) => void,
  clock: () => number,
): Promise<R> {
  lane.since = clock();
  if (others.length === 0) return alone(accountId, lane, item, send, clock);
  // A call that throws before it is under way is a failed call too: the lane is handed on.
  const call = (async () => send.many([item, ...others.map((w) => w.item)]))();
  // The hand-over rides on the call itself.
  const done = call.then(
    (outcomes) => {
      handOn(accountId, lane, clock);
      others.forEach((w, i) => {
        const outcome = outcomes[i + 1];
        w.settle(
          outcome ? { outcome } : { error: new Error("the ledger answered too few debits") },
        );
      });
    },
    (error: unknown) => {
      handOn(accountId, lane, clock);
      for (const w of others) w.settle({ error });
    },
  );
  // Other requests' answers ride on this call: kept past this request's own answer.
  if (others.length > 0) keepAlive(done);
  const outcomes = await call;
  const own = outcomes[0];
  if (!own) throw new Error("the ledger answered no debit");
  return answer(own);
}

/**
 * A lead with nothing queued behind it: the plain `debit`, as with coalescing off (a call of
 * many costs the object and the isolate more per debit: docs/performance.md). Its errors are
 * the call's own.
 */
async function alone<R extends DebitResult>(
  accountId: string,
  lane: Lane,
  item: DebitItem,
  send: Senders<R>,
  clock: () => number,
): Promise<R> {
  try {
    return await send.one(item);
  } finally {
    handOn(accountId, lane, clock);
  }
}

/** The next batch leaves with its first debit's request; none queued: the lane closes. */
function handOn(accountId: string, lane: Lane, clock: () => number): void {
  const [first, ...rest] = takeFrom(lane.queue, MAX_DEBITS_PER_CALL);
  if (!first) {
    // A lane presumed dead and replaced leaves its successor alone.
    if (lanes.get(accountId) === lane) lanes.delete(accountId);
    return;
  }
  lane.since = clock();
  first.settle({ lead: rest });
}

/** A debit's own answer, or its own failure as the error a call of one would have thrown. */
function answer<R extends DebitResult>(outcome: DebitOutcome<R>): R {
  if ("result" in outcome) return outcome.result;
  throw failure(outcome.failure.message, outcome.failure.retryable);
}

/** An error the gateway reads as a call of one's (`durableObjectFailure`: retryable → 503). */
function failure(message: string, retryable: boolean): Error {
  return Object.assign(new Error(message), { retryable });
}
