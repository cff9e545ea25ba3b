/**
 * Coalesced debits: the debits one isolate sends to one account's ledger share Durable Object
 * calls. A debit with nothing in flight for its account is sent at once, alone (a lone request
 * waits for nothing); debits that arrive while a call is in flight queue, and when it returns
 * the first of them sends them all as one `debitMany`. The ledger still decides each debit on
 * its own, in the order of the call (money rules 1–3 unchanged), and answers each on its own.
 *
 * Who sends: a batch leaves from the request of its first debit, in that request's own context
 * (a Durable Object stub belongs to the request that made it), and the call is kept alive with
 * that request's `waitUntil`, so a client that hangs up does not strand the others. A call that
 * fails fails each of its debits with the same error, and each request reverses its own debit
 * by its ref, as with a call of one (proxy.ts).
 */
import type { DebitItem, DebitOutcome, DebitResult } from "../ledger/domain/types";

/** The most debits one call carries; more wait for the next. */
export const MAX_DEBITS_PER_CALL = 64;

type Send = (items: DebitItem[]) => Promise<DebitOutcome[]>;
type Turn = { lead: Waiter[] } | { outcome: DebitOutcome } | { error: unknown };

interface Waiter {
  item: DebitItem;
  settle(turn: Turn): void;
}

interface Lane {
  queue: Waiter[];
}

/** Lanes by account, for this isolate; a lane exists while a call of its account is in flight. */
const lanes = new Map<string, Lane>();

/**
 * The debit, alone or with the others queued for the same account. `send` is this request's
 * own call (its stub); `keepAlive` is its `waitUntil`.
 */
export async function laneDebit(
  accountId: string,
  item: DebitItem,
  send: Send,
  keepAlive: (p: Promise<unknown>) => void,
): Promise<DebitResult> {
  const lane = lanes.get(accountId);
  if (!lane) {
    lanes.set(accountId, { queue: [] });
    return lead(accountId, item, [], send, keepAlive);
  }
  const waiting = new Promise<Turn>((settle) => lane.queue.push({ item, settle }));
  // Kept alive while queued too: a request that leads must still be there to send.
  keepAlive(waiting);
  const turn = await waiting;
  if ("lead" in turn) return lead(accountId, item, turn.lead, send, keepAlive);
  if ("error" in turn) throw turn.error;
  return answer(turn.outcome);
}

/** Sends this debit and `others` in one call, hands the lane on, and answers everyone. */
async function lead(
  accountId: string,
  item: DebitItem,
  others: Waiter[],
  send: Send,
  keepAlive: (p: Promise<unknown>) => void,
): Promise<DebitResult> {
  const call = send([item, ...others.map((w) => w.item)]);
  // The hand-over rides on the call itself, kept alive past this request's own answer.
  const done = call.then(
    (outcomes) => {
      handOn(accountId);
      others.forEach((w, i) => {
        const outcome = outcomes[i + 1];
        w.settle(
          outcome ? { outcome } : { error: new Error("the ledger answered too few debits") },
        );
      });
    },
    (error: unknown) => {
      handOn(accountId);
      for (const w of others) w.settle({ error });
    },
  );
  keepAlive(done);
  const outcomes = await call;
  const own = outcomes[0];
  if (!own) throw new Error("the ledger answered no debit");
  return answer(own);
}

/** The next batch leaves with its first debit's request; none queued: the lane closes. */
function handOn(accountId: string): void {
  const lane = lanes.get(accountId);
  const batch = lane?.queue.splice(0, MAX_DEBITS_PER_CALL) ?? [];
  const [first, ...rest] = batch;
  if (!first) {
    lanes.delete(accountId);
    return;
  }
  first.settle({ lead: rest });
}

/** A debit's own answer, or its own failure as the error a call of one would have thrown. */
function answer(outcome: DebitOutcome): DebitResult {
  if ("result" in outcome) return outcome.result;
  throw Object.assign(new Error(outcome.failure.message), {
    retryable: outcome.failure.retryable,
  });
}
