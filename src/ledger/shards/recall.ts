/**
 * The bank's recall of its shards' leases (docs/ledger-shards.md): each shard holding an open
 * lease is asked to `surrender` it (frozen at once, its report answered) and the bank settles
 * it with `close`. A shard that cannot be reached keeps its lease (held, never lost: it can no
 * longer spend it once expired) and is asked again `RECALL_RETRY_MS` later.
 */
import type { Bindings } from "../../platform/env";
import { accountWide, type LeaseReport, RECALL_RETRY_MS } from "../domain/leases";
import type { Buckets } from "../domain/rules";
import type { DebitResult } from "../domain/types";
import { openLeases } from "../store/leases";
import { readStateRow } from "../store/state";
import { shardFor } from "./client";

/** Recalls every open lease, or only those expired by `expiredBy`; returns how many closed. */
export async function recallLeases(
  env: Pick<Bindings, "LEDGER_SHARD">,
  sql: SqlStorage,
  expiredBy: number | undefined,
  close: (input: { id: string; report: LeaseReport }) => Promise<unknown>,
): Promise<number> {
  const accountId = readStateRow(sql)?.account_id;
  if (!accountId) return 0;
  const due = openLeases(sql).filter((l) => expiredBy === undefined || l.expires_at <= expiredBy);
  const done = await Promise.allSettled(
    due.map(async (l) => {
      const report = await shardFor(env, accountId, l.shard).surrender(l.id);
      await close({ id: l.id, report });
    }),
  );
  for (const d of done) if (d.status === "rejected") console.warn("lease recall", String(d.reason));
  return done.filter((d) => d.status === "fulfilled").length;
}

/** When the bank's alarm must next look at its leases: the first expiry, or a retry. */
export function nextLeaseAlarm(sql: SqlStorage, now: number): number | null {
  const first = openLeases(sql)[0];
  if (!first) return null;
  return first.expires_at > now ? first.expires_at : now + RECALL_RETRY_MS;
}

/**
 * Whether the whole account cannot pay `cost`: the bank is short and no lease is open. Read
 * synchronously, so it is one instant's truth (a lease closing later cannot slip in between).
 */
export function wholeAccountShort(sql: SqlStorage, bank: Buckets, cost: number): boolean {
  return bank.monthly + bank.purchased < cost && openLeases(sql).length === 0;
}

/**
 * The account's buckets as its people and operators see them: the ledger's own plus every open
 * lease's grant (what a shard spent of one shows once the lease is back, within 30 s).
 */
export function withLeased(sql: SqlStorage, bank: Buckets): Buckets {
  return accountWide(bank, openLeases(sql));
}

/** How many rounds of recall a forwarded request waits at most before it is refused. */
const RECALL_ROUNDS = 8;

/**
 * A request a shard could not cover, decided by the bank: while it is short and leases are
 * open, they are recalled and the request decided again, so it is refused only when the whole
 * account cannot pay (money rules 1 and 2).
 */
export async function debitRecalling(
  debit: () => Promise<DebitResult>,
  short: () => boolean,
  recall: () => Promise<number>,
): Promise<DebitResult> {
  for (let round = 0; ; round++) {
    const r = await debit();
    if (r.ok || r.reason !== "insufficient_credits" || round === RECALL_ROUNDS || short()) return r;
    await recall();
  }
}
