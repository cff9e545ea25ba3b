/**
 * The write of request debits into the ring's minute rows (schema 10: one row per
 * account-minute, the account's sums in columns, each key's in the `keys` JSON). Two ways to the
 * same row, each one statement counted as one row written:
 * - the guessed row (the common one): the object remembers the row it last wrote as committed
 *   (`LastMinuteRow`), or, for a minute it has not written, guesses it has no row yet. It
 *   computes the row after the delta in JS and writes it whole with one statement whose text
 *   never changes (prepared once per object), guarded in SQL by the slot holding exactly the
 *   guessed row (or, guessed absent, an older minute or nothing);
 * - the merging UPSERT, when the guess was wrong (a refund rewrote the row, a restarted object
 *   in a minute it had written): the delta added to whatever the slot holds, in SQL. Always
 *   right; its text grows with the keys it names and SQLite parses the `keys` JSON per key.
 * A wrong guess writes nothing, so the guess can never put a wrong row in storage.
 */
import {
  addDelta,
  addToBatch,
  type Counts,
  keyPath,
  keysJson,
  type MinuteDelta,
  type MinuteRow,
  parseKeys,
  ZERO,
} from "../domain/minute-row";
import { type Buckets, slotOf } from "../domain/rules";

/** The fields of a minute row every reader takes, `keys` last. */
export const MINUTE_COLUMNS =
  "minute, requests, credits, debit_monthly, debit_purchased, refunded_monthly, refunded_purchased, keys";

export type StoredMinute = Omit<MinuteRow, "keys"> & { keys: string | null };

export function minuteRowOf(r: StoredMinute): MinuteRow {
  return { ...r, keys: parseKeys(r.keys) };
}

/** A row's six sums in the order every write binds them (`MINUTE_COLUMNS` between `minute` and `keys`). */
export function sumsOf(r: Omit<MinuteRow, "keys" | "minute">): number[] {
  return [
    r.requests,
    r.credits,
    r.debit_monthly,
    r.debit_purchased,
    r.refunded_monthly,
    r.refunded_purchased,
  ];
}

/** The ring's row of `minute` as stored, if its slot still holds that minute. */
export function readStoredMinute(sql: SqlStorage, minute: number): StoredMinute | null {
  return (
    sql
      .exec<StoredMinute>(
        `SELECT ${MINUTE_COLUMNS} FROM debit_minutes WHERE slot = ? AND minute = ?`,
        slotOf(minute),
        minute,
      )
      .toArray()[0] ?? null
  );
}

/** A minute row as a statement left it: the row, and its `keys` text exactly as stored. */
interface WrittenMinute {
  row: MinuteRow;
  keysText: string;
}

/**
 * The minute row this object last wrote, as committed. Memory only (a restarted object starts
 * without it). A write inside a transaction is staged, and becomes known only once the caller
 * says the transaction committed; a rollback forgets it.
 */
export class LastMinuteRow {
  private known: WrittenMinute | null = null;
  private staged: WrittenMinute | null = null;

  /**
   * What a starting (or rebuilt) object knows: the row its slot holds for `minute`, read once
   * (a lookup by primary key), so its first write is the guessed one, not a wrong guess.
   */
  seed(sql: SqlStorage, minute: number): void {
    const r = readStoredMinute(sql, minute);
    this.known = r ? { row: minuteRowOf(r), keysText: r.keys ?? "{}" } : null;
    this.staged = null;
  }

  /** The row of `minute` as last committed, or null: it has none yet, as far as we know. */
  guess(minute: number): WrittenMinute | null {
    return this.known?.row.minute === minute ? this.known : null;
  }

  stage(written: WrittenMinute): void {
    this.staged = written;
  }

  /** The transaction that wrote the staged row committed. */
  commit(): void {
    if (this.staged) this.known = this.staged;
    this.staged = null;
  }

  /** It rolled back: nothing is known. */
  forget(): void {
    this.known = null;
    this.staged = null;
  }
}

/** A Durable Object's statement takes at most 100 bound parameters: 7 + 4 per key. */
const KEYS_PER_STATEMENT = 23;

/**
 * The delta's per-key merge into the row's `keys`: `json_set(keys, path, [old + delta, …], …)`
 * for each named key, numbered parameters from `?8` on (path, requests, monthly, purchased).
 * Scalar JSON functions on the row itself: no row read beyond the UPSERT's own.
 */
function mergeKeys(keys: MinuteDelta["keys"]): { expr: string; args: SqlStorageValue[] } {
  const parts: string[] = [];
  const args: SqlStorageValue[] = [];
  for (const [keyId, k] of keys) {
    const [path, r, m, p] = [8, 9, 10, 11].map((i) => `?${i + args.length}`);
    const old = (i: number) => `IFNULL(json_extract(keys, ${path} || '[${i}]'), 0)`;
    parts.push(
      `${path}, json_array(${old(0)} + ${r}, ${old(1)} + ${m} + ${p}, ${old(2)} + ${m}, ${old(3)} + ${p}, ${old(4)}, ${old(5)})`,
    );
    args.push(keyPath(keyId), k.requests, k.monthly, k.purchased);
  }
  return { expr: parts.length ? `json_set(keys, ${parts.join(", ")})` : "keys", args };
}

/**
 * The write of any number of debits of one minute, whatever their keys: the minute's one row
 * in the ring (slot = minute of the day, the primary key of a WITHOUT ROWID table: no index to
 * write), counted as 1 row written and 0 read. A row still holding the same minute a day ago is
 * replaced (the caller has made sure that minute is settled: `ringNeedsSettling`). `last`
 * follows what was written (staged until the caller's transaction commits); without it (a
 * shard's report, written in a transaction of its own) the delta is merged.
 */
export function recordDebits(sql: SqlStorage, delta: MinuteDelta, last?: LastMinuteRow): void {
  if (!last) {
    mergeDelta(sql, delta);
    return;
  }
  const written = writeGuessed(sql, last.guess(delta.minute), delta) ?? mergeDelta(sql, delta);
  last.stage(written);
}

/**
 * The row after the delta, from the guessed row before it, written whole: an UPSERT (no row
 * read) whose update happens only if the slot holds the guessed row, column for column, or,
 * guessed absent (`known` null), an older minute, which it replaces. An insert happens only
 * into an empty slot: a known row is committed and of the current minute, and only rows two
 * days old are ever deleted, so its slot is never empty. Null: the guess was wrong, nothing
 * was written.
 */
function writeGuessed(
  sql: SqlStorage,
  known: WrittenMinute | null,
  delta: MinuteDelta,
): WrittenMinute | null {
  const before = known?.row ?? { ...ZERO, minute: delta.minute, keys: {} };
  const row = addDelta(before, delta);
  const keysText = keysJson(row.keys);
  const { rowsWritten } = sql.exec(
    `INSERT INTO debit_minutes (slot, minute, requests, credits, debit_monthly, debit_purchased,
       refunded_monthly, refunded_purchased, keys)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT(slot) DO UPDATE SET minute = excluded.minute, requests = excluded.requests,
       credits = excluded.credits, debit_monthly = excluded.debit_monthly,
       debit_purchased = excluded.debit_purchased, refunded_monthly = excluded.refunded_monthly,
       refunded_purchased = excluded.refunded_purchased, keys = excluded.keys
     WHERE CASE WHEN ?10 IS NULL THEN minute < ?2
       ELSE minute = ?2 AND requests = ?10 AND credits = ?11 AND debit_monthly = ?12
         AND debit_purchased = ?13 AND refunded_monthly = ?14 AND refunded_purchased = ?15
         AND keys = ?16 END`,
    slotOf(row.minute),
    row.minute,
    ...sumsOf(row),
    keysText,
    ...(known ? [...sumsOf(before), known.keysText] : [null, null, null, null, null, null, null]),
  );
  return rowsWritten === 1 ? { row, keysText } : null;
}

/**
 * The merging UPSERT, statement by statement when the delta names more keys than one can bind;
 * the row as the last one left it (RETURNING: no read).
 */
function mergeDelta(sql: SqlStorage, delta: MinuteDelta): WrittenMinute {
  const all = [...delta.keys];
  let stored: StoredMinute | undefined;
  for (let i = 0; i === 0 || i < all.length; i += KEYS_PER_STATEMENT) {
    const keys = new Map(all.slice(i, i + KEYS_PER_STATEMENT));
    // The account's sums ride with the first statement; the others add keys only.
    const sums = i === 0 ? delta : { requests: 0, monthly: 0, purchased: 0 };
    stored = upsertMinute(sql, delta.minute, sums, keys);
  }
  if (!stored) throw new Error("unreachable: an UPSERT with RETURNING returns its row");
  return { row: minuteRowOf(stored), keysText: stored.keys ?? "{}" };
}

function upsertMinute(
  sql: SqlStorage,
  minute: number,
  sums: Pick<MinuteDelta, "requests" | "monthly" | "purchased">,
  keys: MinuteDelta["keys"],
): StoredMinute | undefined {
  const fresh: Record<string, Counts> = {};
  for (const [keyId, k] of keys) {
    fresh[keyId] = {
      requests: k.requests,
      credits: k.monthly + k.purchased,
      debit_monthly: k.monthly,
      debit_purchased: k.purchased,
      refunded_monthly: 0,
      refunded_purchased: 0,
    };
  }
  const merge = mergeKeys(keys);
  const same = "minute = excluded.minute";
  const add = (c: string) =>
    `${c} = CASE WHEN ${same} THEN ${c} + excluded.${c} ELSE excluded.${c} END`;
  const keep = (c: string) => `${c} = CASE WHEN ${same} THEN ${c} ELSE 0 END`;
  return sql
    .exec<StoredMinute>(
      `INSERT INTO debit_minutes (slot, minute, requests, credits, debit_monthly, debit_purchased, keys)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT(slot) DO UPDATE SET
       ${["requests", "credits", "debit_monthly", "debit_purchased"].map(add).join(", ")},
       ${keep("refunded_monthly")}, ${keep("refunded_purchased")},
       keys = CASE WHEN ${same} THEN ${merge.expr} ELSE excluded.keys END,
       minute = excluded.minute
     RETURNING ${MINUTE_COLUMNS}`,
      slotOf(minute),
      minute,
      sums.requests,
      sums.monthly + sums.purchased,
      sums.monthly,
      sums.purchased,
      keysJson(fresh),
      ...merge.args,
    )
    .toArray()[0];
}

/**
 * Whether `recordDebits` of this delta changes storage with at most one statement (the guessed
 * write, or, when that wrote nothing, one merging UPSERT): atomic on its own, so it needs no
 * transaction around it (a savepoint and its release cost about as much as the write).
 */
export function writtenInOneStatement(delta: MinuteDelta): boolean {
  return delta.keys.size <= KEYS_PER_STATEMENT;
}

/** One debit's write (`recordDebits` of a batch of one): the debit paths that do not batch. */
export function recordDebit(
  sql: SqlStorage,
  minute: number,
  keyId: string,
  take: Buckets,
  last: LastMinuteRow,
): void {
  const batch = new Map<number, MinuteDelta>();
  addToBatch(batch, minute, keyId, take);
  for (const delta of batch.values()) recordDebits(sql, delta, last);
}
