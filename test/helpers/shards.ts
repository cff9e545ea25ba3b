/**
 * An account with escrow shards, straight on the objects' RPC (docs/ledger-shards.md): its
 * bank (the `AccountLedger`, funded through `adjust`) and its `LedgerShard` objects, real.
 */
import { env } from "cloudflare:workers";
import { ledgerFor } from "../../src/ledger/client";
import { shardFor } from "../../src/ledger/shards/client";

export async function shardedAccount(monthly: number, purchased: number, shards = 4) {
  const accountId = `acct_${crypto.randomUUID()}`;
  const bank = ledgerFor(env, accountId);
  await bank.init({ accountId, plan: "free" });
  const b = await bank.balance();
  await bank.adjust({
    ref: `adj_${crypto.randomUUID()}`,
    monthly: monthly - b.monthly,
    purchased: purchased - b.purchased,
    reason: "test",
  });
  // The bank's per-account rate limit applies to the requests it decides itself.
  await bank.setLimits({ rateLimitPerMinute: 1_000_000 });
  /** A fresh stub each time: one whose object was reset stays broken. */
  const shard = (i: number) => shardFor(env, accountId, i);
  const at = (i: number) => ({ accountId, shard: i, shards });
  const debit = (i: number, cost = 1, key = "key_a") =>
    shard(i).debit(at(i), cost, `dbt_${crypto.randomUUID()}`, key);
  return { accountId, bank, shard, at, debit, shards };
}
