// @ts-check
/**
 * Optional persistence of a server's whole state to one JSON file (`persistPath`), so a
 * restarted server answers for the customers, cards, invoices, subscriptions, prices, events
 * and idempotency keys it held before. Loaded once before listening; saved (debounced, write
 * to a temporary file then rename, so a crash leaves the old file or the new one, never half
 * of one) after requests and webhook deliveries, and flushed by close(). Webhook deliveries
 * still queued at shutdown are not replayed after a restart (Stripe would retry them).
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";

/** @typedef {import("./lib.mjs").State} State */

const FORMAT = "tollgate-local-stripe-state";
const VERSION = 1;
const SAVE_DELAY_MS = 100;
/**
 * What a restart does not need: the request log (up to 20,000 entries, for tests), delivery
 * records and injected faults. Left out, the file stays the size of the objects themselves.
 */
const TRANSIENT = new Set(["requests", "webhookDeliveries", "faults"]);

/**
 * Every lasting field of the state, Maps as `{ $map: [[key, value], ...] }` (insertion order, which
 * is list order), arrays as they are. Values are JSON-shaped API objects.
 * @param {State} state
 */
export function serializeState(state) {
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const [name, value] of Object.entries(state)) {
    if (TRANSIENT.has(name)) continue;
    if (value instanceof Map) fields[name] = { $map: [...value.entries()] };
    else if (value instanceof Set) fields[name] = { $set: [...value.values()] };
    else fields[name] = value;
  }
  return { format: FORMAT, version: VERSION, saved_at: new Date().toISOString(), state: fields };
}

/**
 * Fills `state` (in place: callers hold references to its Maps) from serialized fields.
 * Fields the file lacks stay empty; fields the state no longer has are ignored.
 * @param {State} state
 * @param {unknown} data
 * @param {string} source For error messages.
 */
export function restoreState(state, data, source) {
  const doc = /** @type {any} */ (data);
  if (!doc || doc.format !== FORMAT || doc.version !== VERSION || typeof doc.state !== "object") {
    throw new Error(
      `${source} is not a local Stripe server state file (format ${FORMAT} v${VERSION}); delete it to start empty.`,
    );
  }
  const target = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (state));
  for (const [name, current] of Object.entries(target)) {
    const saved = doc.state[name];
    if (saved === undefined) continue;
    if (current instanceof Map && Array.isArray(saved?.$map)) {
      current.clear();
      for (const [key, value] of saved.$map) current.set(key, value);
    } else if (current instanceof Set && Array.isArray(saved?.$set)) {
      current.clear();
      for (const value of saved.$set) current.add(value);
    } else if (Array.isArray(current) && Array.isArray(saved)) {
      current.length = 0;
      current.push(...saved);
    }
  }
  // A request that was still executing when the old process stopped never finished; Stripe
  // lets its key be retried, so forget it rather than answer 409 for 24 hours.
  for (const [key, record] of state.idempotency) {
    if (record.phase !== "done") state.idempotency.delete(key);
  }
}

/**
 * Loads `file` into `state` if it exists and returns a saver for it.
 * @param {State} state
 * @param {string} file
 * @param {(message: string) => void} log
 */
export function persistState(state, file, log) {
  if (existsSync(file)) {
    let data;
    try {
      data = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(
        `cannot read the local Stripe server state ${file} (${err instanceof Error ? err.message : String(err)}); delete it to start empty.`,
      );
    }
    restoreState(state, data, file);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  let dirty = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** @type {Promise<void>} */
  let chain = Promise.resolve();

  const write = () => {
    chain = chain.then(async () => {
      if (!dirty) return;
      dirty = false;
      try {
        const text = JSON.stringify(serializeState(state));
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(tmp, text);
        await rename(tmp, file);
      } catch (err) {
        dirty = true;
        log(`saving state to ${file} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    return chain;
  };

  return {
    /** Marks the state changed; it is written shortly after. */
    changed() {
      dirty = true;
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        void write();
      }, SAVE_DELAY_MS);
      timer.unref();
    },
    /** Writes now if anything changed since the last save. */
    flush() {
      if (timer) clearTimeout(timer);
      timer = null;
      return write();
    },
  };
}
