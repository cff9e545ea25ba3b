/**
 * The `credits.exhausted` episode: set by the first refusal for lack of credits, cleared by the
 * next change that leaves the account with credits. Kept in `meta` (no schema change) and
 * mirrored in the object's memory, so only the first refusal of an episode writes anything:
 * the later ones read the memory and write nothing.
 */
import type { Buckets } from "../domain/rules";
import type { OutboxItem } from "../domain/types";
import { writeOutbox } from "./projections";

const KEY = "credits_exhausted";

/** Whether the account is in an episode already (its first refusal sent the event). */
export function readExhausted(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM meta WHERE key = ?", KEY).toArray().length > 0;
}

/**
 * Opens an episode and writes its event to the outbox, in the caller's transaction. The ref is
 * the refusal's time: one event per episode, and a replay of the same item is one delivery.
 */
export function markExhausted(
  sql: SqlStorage,
  accountId: string,
  balance: Buckets,
  cost: number,
  now: number,
): OutboxItem {
  const item: OutboxItem = {
    type: "event",
    event: "credits.exhausted",
    ref: `credits.exhausted:${now}`,
    account_id: accountId,
    balance_total: balance.monthly + balance.purchased,
    cost,
  };
  sql.exec(
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    KEY,
    new Date(now).toISOString(),
  );
  return writeOutbox(sql, item, now);
}

/** Ends the episode: the next refusal is a new one. */
export function clearExhausted(sql: SqlStorage): void {
  sql.exec("DELETE FROM meta WHERE key = ?", KEY);
}
