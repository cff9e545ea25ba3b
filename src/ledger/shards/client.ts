import type { Bindings } from "../../platform/env";

/** Shard `index` of an account (docs/ledger-shards.md): one object per (account, index). */
export function shardFor(env: Pick<Bindings, "LEDGER_SHARD">, accountId: string, index: number) {
  return env.LEDGER_SHARD.get(env.LEDGER_SHARD.idFromName(`${accountId}:shard:${index}`));
}
