/**
 * Where a proxied request's debit goes (docs/ledger-shards.md): the account's ledger, or, for
 * an account with `shards > 1`, one of its shard objects picked at random; a refund goes back
 * to the object that took the debit (the shard, which hands it to the bank once the lease it
 * was taken from is settled). Either way an isolate's concurrent debits of the same object
 * share its calls (debit-lanes.ts), unless `DEBIT_COALESCING` is `off`.
 */
import { ledgerFor } from "../ledger/client";
import { pickShard } from "../ledger/domain/leases";
import type { DebitCharge, DebitItem, DebitResult, RefundResult } from "../ledger/domain/types";
import { shardFor } from "../ledger/shards/client";
import type { ShardDebitResult } from "../ledger/shards/ledger-shard";
import type { Bindings } from "../platform/env";
import { laneDebit, laneHoldMs, type Senders } from "./debit-lanes";

export interface DebitTarget {
  debit(cost: number, ref: string, apiKeyId?: string): Promise<DebitResult>;
  /** Refunds the debit this target answered last (its lease, if a shard took it). */
  refund(ref: string, charge: DebitCharge): Promise<RefundResult>;
  /** A debit call that failed without an answer, reversed by its ref where it was sent. */
  reverse(ref: string, sentAt: number): Promise<RefundResult>;
}

export function debitTarget(
  env: Pick<
    Bindings,
    "LEDGER_SHARD" | "ACCOUNT_LEDGER" | "DEBIT_COALESCING" | "DEBIT_LANE_HOLD_MS"
  >,
  accountId: string,
  shards: number | undefined,
  /** The request's `waitUntil`: a call that carries other requests' debits outlives it. */
  keepAlive: (p: Promise<unknown>) => void,
): DebitTarget {
  // The request's stub, made when first used: a debit that queues in a lane and is answered
  // by another request's call never needs one.
  let stub: ReturnType<typeof ledgerFor> | undefined;
  const ledger = () => {
    stub ??= ledgerFor(env, accountId);
    return stub;
  };
  if (!shards || shards <= 1) {
    const senders = {
      one: (i: DebitItem) => ledger().debit(i.cost, i.ref, i.key),
      many: (items: DebitItem[]) => ledger().debitMany(items),
    };
    return {
      // Coalesced with this isolate's other debits of the account (debit-lanes.ts).
      debit: (cost, ref, key) =>
        env.DEBIT_COALESCING === "off"
          ? ledger().debit(cost, ref, key)
          : laneDebit(accountId, { cost, ref, key }, senders, keepAlive, {
              holdMs: laneHoldMs(env.DEBIT_LANE_HOLD_MS),
            }),
      refund: (ref, charge) => ledger().refund(ref, charge),
      // A fresh stub: one whose object was reset stays broken.
      reverse: (ref, sentAt) => ledgerFor(env, accountId).refund(ref, null, sentAt),
    };
  }
  const index = pickShard(shards, Math.random());
  const at = { accountId, shard: index, shards };
  let shardStub: ReturnType<typeof shardFor> | undefined;
  const shard = () => {
    shardStub ??= shardFor(env, accountId, index);
    return shardStub;
  };
  const shardSenders: Senders<ShardDebitResult> = {
    one: (i) => shard().debit(at, i.cost, i.ref, i.key),
    many: (items) => shard().debitMany(at, items),
  };
  let lease: string | null = null;
  return {
    debit: async (cost, ref, key) => {
      // Coalesced per shard: the lane of this account's shard `index`, in this isolate.
      const r =
        env.DEBIT_COALESCING === "off"
          ? await shardSenders.one({ cost, ref, key })
          : await laneDebit(`${accountId}#${index}`, { cost, ref, key }, shardSenders, keepAlive, {
              holdMs: laneHoldMs(env.DEBIT_LANE_HOLD_MS),
            });
      lease = r.lease;
      const { lease: _, ...result } = r;
      return result as DebitResult;
    },
    refund: (ref, charge) =>
      lease === null ? ledger().refund(ref, charge) : shard().refund(accountId, ref, charge, lease),
    reverse: (ref, sentAt) =>
      shardFor(env, accountId, index).refund(accountId, ref, null, null, sentAt),
  };
}
