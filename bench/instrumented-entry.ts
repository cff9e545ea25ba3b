/**
 * Bench-only entry: the real worker (`../src/index.ts`) with its D1 and Durable Object
 * bindings wrapped in counting proxies, so the benchmark can report Durable Object calls,
 * D1 statements and D1 rows read/written (from D1's own `meta`) per proxied request without
 * touching the production hot path. Inside the Durable Object, the storage API is counted
 * from outside the class: `SqlStorage.prototype.exec` (rows read/written from each cursor's
 * own `rowsRead`/`rowsWritten`), `transactionSync`, `transaction` and `setAlarm` are patched
 * on the runtime's prototypes, so any code that reaches `ctx.storage` is counted, however the
 * ledger class is written. The subclass below only gives us a first look at `ctx` (to find
 * the prototypes) and a point at the end of each call on the object where lazily consumed
 * cursors are read again.
 *
 * Never deployed: `bench/wrangler.instrumented.toml` bundles it for `npm run bench` only.
 * Counters live in module scope; locally the worker and its Durable Objects share one
 * isolate, so the DO's own traffic (storage, and D1 in `alarm()`) lands here too.
 *
 *   GET  /__bench/counters            → the counters as JSON
 *   POST /__bench/reset               → zero them
 *   GET  /__bench/do-size?account=ID  → `ctx.storage.sql.databaseSize` of that account's object
 */
import { DurableObject } from "cloudflare:workers";
import { authStats } from "../src/accounts/identity";
import worker, {
  AccountLedger as RealAccountLedger,
  LedgerShard as RealLedgerShard,
} from "../src/index";
import { ledgerFor } from "../src/ledger/client";
import type { Bindings } from "../src/platform/env";

type Origin = "worker" | "do";

interface D1Counts {
  /** Calls that reach D1: run/all/first/raw/exec, and one per batch. */
  roundTrips: number;
  /** Statements by kind (a batch counts each of its statements). */
  reads: number;
  writes: number;
  other: number;
  batches: number;
  /** From D1's result `meta` (what D1 bills); `exec()` reports none, see `execCalls`. */
  rowsRead: number;
  rowsWritten: number;
  /** `exec()` calls: D1 returns no row counts for them, so their rows are missing above. */
  execCalls: number;
  /** Statement text → count, to see exactly what ran. */
  bySql: Record<string, number>;
}

function emptyD1(): D1Counts {
  return {
    roundTrips: 0,
    reads: 0,
    writes: 0,
    other: 0,
    batches: 0,
    rowsRead: 0,
    rowsWritten: 0,
    execCalls: 0,
    bySql: {},
  };
}

/** What the Durable Objects did with their own storage (all objects of the class together). */
interface StorageCounts {
  /** `sql.exec` calls (statements run). */
  execs: number;
  /** From each cursor's own counters: what SQLite-backed Durable Objects are billed for. */
  rowsRead: number;
  rowsWritten: number;
  transactionSync: number;
  transaction: number;
  /** `storage.setAlarm` calls (each is billed as one row written). */
  setAlarm: number;
  /** `alarm()` invocations (billed as Durable Object requests). */
  alarms: number;
  /** Statement text → executions and rows. */
  bySql: Record<string, { n: number; rowsRead: number; rowsWritten: number }>;
}

function emptyStorage(): StorageCounts {
  return {
    execs: 0,
    rowsRead: 0,
    rowsWritten: 0,
    transactionSync: 0,
    transaction: 0,
    setAlarm: 0,
    alarms: 0,
    bySql: {},
  };
}

const counters = {
  /** Requests seen by this entry on proxied (/v1/*, not /v1/account*) paths. */
  proxiedRequests: 0,
  status: {} as Record<string, number>,
  doCalls: 0,
  doCallsByMethod: {} as Record<string, number>,
  /** Calls each object received ("ledger:<account>" or "shard:<account>:shard:<i>"), from the Worker or another object. */
  callsByObject: {} as Record<string, number>,
  /** Calls a shard made on its account's ledger (the bank): leases taken, returned, forwarded requests. */
  bankCallsFromShards: 0,
  d1: { worker: emptyD1(), do: emptyD1() } as Record<Origin, D1Counts>,
  storage: emptyStorage(),
  /** The auth module's own count of key lookups that reached D1 (cache misses). */
  authD1LookupsAtReset: authStats.d1Lookups,
};

function reset(): void {
  settleCursors();
  counters.proxiedRequests = 0;
  counters.status = {};
  counters.doCalls = 0;
  counters.doCallsByMethod = {};
  counters.callsByObject = {};
  counters.bankCallsFromShards = 0;
  counters.d1 = { worker: emptyD1(), do: emptyD1() };
  counters.storage = emptyStorage();
  counters.authD1LookupsAtReset = authStats.d1Lookups;
}

// ------------------------------------------------------------------ Durable Object storage

const sqlKey = (sql: string) => sql.replace(/\s+/g, " ").trim().slice(0, 160);

/**
 * Cursors whose counters may still grow: read again (the difference counted) at the end of
 * every call on the object and before the counters are reported. A cursor's counters grow
 * as it is consumed, so one consumed lazily, after `exec` returned, is still counted in full.
 * Dropped once no call is in flight (nothing left that could consume them).
 */
interface Tracked {
  cursor: SqlStorageCursor<Record<string, SqlStorageValue>>;
  key: string;
  read: number;
  written: number;
}
let tracked: Tracked[] = [];
let inFlight = 0;

function settleCursors(): void {
  const s = counters.storage;
  for (const t of tracked) {
    let read = t.read;
    let written = t.written;
    try {
      read = t.cursor.rowsRead;
      written = t.cursor.rowsWritten;
    } catch {
      // a cursor the runtime has let go of keeps the last counts we saw
    }
    const row = s.bySql[t.key] ?? { n: 0, rowsRead: 0, rowsWritten: 0 };
    row.rowsRead += read - t.read;
    row.rowsWritten += written - t.written;
    s.bySql[t.key] = row;
    s.rowsRead += read - t.read;
    s.rowsWritten += written - t.written;
    t.read = read;
    t.written = written;
  }
  if (inFlight === 0) tracked = [];
}

let storagePatched = false;

/** Patches the runtime's SqlStorage and DurableObjectStorage prototypes, once per isolate. */
function patchStorage(storage: DurableObjectStorage): void {
  if (storagePatched) return;
  storagePatched = true;
  const sqlProto = Object.getPrototypeOf(storage.sql) as SqlStorage;
  const exec = sqlProto.exec;
  sqlProto.exec = function (this: SqlStorage, query: string, ...bindings: unknown[]) {
    const cursor = exec.call(this, query, ...bindings);
    const key = sqlKey(query);
    counters.storage.execs++;
    const row = counters.storage.bySql[key] ?? { n: 0, rowsRead: 0, rowsWritten: 0 };
    row.n++;
    counters.storage.bySql[key] = row;
    tracked.push({ cursor, key, read: 0, written: 0 });
    return cursor;
  } as SqlStorage["exec"];
  const storageProto = Object.getPrototypeOf(storage) as DurableObjectStorage;
  const transactionSync = storageProto.transactionSync;
  storageProto.transactionSync = function <T>(this: DurableObjectStorage, fn: () => T): T {
    counters.storage.transactionSync++;
    return transactionSync.call(this, fn) as T;
  };
  const transaction = storageProto.transaction;
  storageProto.transaction = function <T>(
    this: DurableObjectStorage,
    fn: (txn: DurableObjectTransaction) => Promise<T>,
  ): Promise<T> {
    counters.storage.transaction++;
    return transaction.call(this, fn) as Promise<T>;
  };
  const setAlarm = storageProto.setAlarm;
  storageProto.setAlarm = function (
    this: DurableObjectStorage,
    ...args: Parameters<DurableObjectStorage["setAlarm"]>
  ) {
    counters.storage.setAlarm++;
    return setAlarm.apply(this, args);
  };
}

function kindOf(sql: string): "reads" | "writes" | "other" {
  const word = /^\s*(\w+)/.exec(sql)?.[1]?.toLowerCase() ?? "";
  if (word === "select" || word === "with") return "reads";
  if (word === "insert" || word === "update" || word === "delete" || word === "replace")
    return "writes";
  return "other";
}

function countStatement(origin: Origin, sql: string): void {
  const c = counters.d1[origin];
  c[kindOf(sql)]++;
  const key = sql.replace(/\s+/g, " ").slice(0, 160);
  c.bySql[key] = (c.bySql[key] ?? 0) + 1;
}

/** Real statement behind each wrapper, so `batch` can hand D1 its own objects. */
const realStatements = new WeakMap<object, { real: D1PreparedStatement; sql: string }>();

function countMeta(origin: Origin, result: { meta?: Partial<D1Meta> } | undefined): void {
  const c = counters.d1[origin];
  c.rowsRead += Number(result?.meta?.rows_read ?? 0);
  c.rowsWritten += Number(result?.meta?.rows_written ?? 0);
}

/**
 * `first()` and `raw()` do not hand back D1's `meta`, so here they are served by `all()` (one
 * round trip, same statement) and shaped like the originals. `raw()` builds each row from the
 * object's keys in order, as drizzle itself does for batch results: like drizzle's batch path,
 * it assumes distinct column names (true of every query on the proxied path today).
 */
function wrapStatement(
  origin: Origin,
  real: D1PreparedStatement,
  sql: string,
): D1PreparedStatement {
  const all = async <T = Record<string, unknown>>(): Promise<D1Result<T>> => {
    counters.d1[origin].roundTrips++;
    countStatement(origin, sql);
    const result = await real.all<T>();
    countMeta(origin, result);
    return result;
  };
  const wrapper = {
    bind: (...values: unknown[]) => wrapStatement(origin, real.bind(...values), sql),
    run: async () => {
      counters.d1[origin].roundTrips++;
      countStatement(origin, sql);
      const result = await real.run();
      countMeta(origin, result);
      return result;
    },
    all,
    first: async (column?: string) => {
      const row = (await all<Record<string, unknown>>()).results[0];
      if (column === undefined) return row ?? null;
      if (!row) return null;
      if (!(column in row)) throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${column})`);
      return row[column];
    },
    raw: async (options?: { columnNames?: boolean }) => {
      const rows = (await all<Record<string, unknown>>()).results;
      const arrays = rows.map((r) => Object.keys(r).map((k) => r[k]));
      if (options?.columnNames) return [Object.keys(rows[0] ?? {}), ...arrays];
      return arrays;
    },
  } as unknown as D1PreparedStatement;
  realStatements.set(wrapper, { real, sql });
  return wrapper;
}

function wrapD1(origin: Origin, db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare")
        return (sql: string) => wrapStatement(origin, target.prepare(sql), sql);
      if (prop === "batch")
        return (statements: D1PreparedStatement[]) => {
          const c = counters.d1[origin];
          c.roundTrips++;
          c.batches++;
          const reals = statements.map((s) => {
            const known = realStatements.get(s);
            if (!known) return s;
            countStatement(origin, known.sql);
            return known.real;
          });
          return target.batch(reals).then((results) => {
            for (const r of results) countMeta(origin, r);
            return results;
          });
        };
      if (prop === "exec")
        return (sql: string) => {
          counters.d1[origin].roundTrips++;
          counters.d1[origin].execCalls++;
          countStatement(origin, sql);
          return target.exec(sql);
        };
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Who calls: the Worker, or a shard calling its bank (counted apart: `bankCallsFromShards`). */
type Caller = "worker" | "shard";

function wrapStub<T extends object>(stub: T, object: string, caller: Caller): T {
  return new Proxy(stub, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof prop !== "string" || prop === "then" || prop === "id" || prop === "name")
        return value;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        counters.doCalls++;
        counters.doCallsByMethod[prop] = (counters.doCallsByMethod[prop] ?? 0) + 1;
        counters.callsByObject[object] = (counters.callsByObject[object] ?? 0) + 1;
        if (caller === "shard") counters.bankCallsFromShards++;
        return Reflect.apply(value, target, args);
      };
    },
  });
}

function wrapNamespace<T extends object>(ns: T, label: string, caller: Caller = "worker"): T {
  return new Proxy(ns, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "get" || prop === "getByName")
        return (...args: unknown[]) => {
          const id = args[0] as { name?: string; toString(): string } | string;
          const name = typeof id === "string" ? id : (id.name ?? id.toString());
          return wrapStub(Reflect.apply(value, target, args) as object, `${label}:${name}`, caller);
        };
      return value.bind(target);
    },
  });
}

const wrappedEnvs = new WeakMap<object, Bindings>();

/** The same env with DB and ACCOUNT_LEDGER counted; one wrapper per env object. */
function instrumentWorkerEnv(env: Bindings): Bindings {
  let wrapped = wrappedEnvs.get(env);
  if (!wrapped) {
    const db = wrapD1("worker", env.DB);
    const ledger = wrapNamespace(env.ACCOUNT_LEDGER, "ledger");
    const shards = wrapNamespace(env.LEDGER_SHARD, "shard");
    wrapped = new Proxy(env, {
      get(target, prop) {
        if (prop === "DB") return db;
        if (prop === "ACCOUNT_LEDGER") return ledger;
        if (prop === "LEDGER_SHARD") return shards;
        return Reflect.get(target, prop);
      },
    });
    wrappedEnvs.set(env, wrapped);
  }
  return wrapped;
}

/**
 * The real ledger, with its own env.DB counted separately (the alarm's cycle grants) and its
 * storage counted on the runtime's prototypes (patched before the real constructor runs, so
 * the schema check is counted too).
 */
export class AccountLedger extends RealAccountLedger {
  constructor(ctx: DurableObjectState, env: Bindings) {
    patchStorage(ctx.storage);
    const db = wrapD1("do", env.DB);
    inFlight++;
    try {
      super(
        ctx,
        new Proxy(env, {
          get: (target, prop) => (prop === "DB" ? db : Reflect.get(target, prop)),
        }),
      );
    } finally {
      inFlight--;
    }
  }

  /** Bench only: the object's SQLite size in bytes, as Cloudflare bills stored data. */
  __benchDatabaseSize(): number {
    return this.ctx.storage.sql.databaseSize;
  }
}

/**
 * The real shard, its storage counted with the ledger's (same prototypes) and its calls to the
 * bank counted as `bankCallsFromShards` (docs/ledger-shards.md).
 */
export class LedgerShard extends RealLedgerShard {
  constructor(ctx: DurableObjectState, env: Bindings) {
    patchStorage(ctx.storage);
    const ledger = wrapNamespace(env.ACCOUNT_LEDGER, "ledger", "shard");
    super(
      ctx,
      new Proxy(env, {
        get: (target, prop) => (prop === "ACCOUNT_LEDGER" ? ledger : Reflect.get(target, prop)),
      }),
    );
  }
}

/**
 * Every method of the real class (whatever it is called, RPC or internal), wrapped on the
 * subclass so that cursors still open are read again when the call ends; `alarm` is counted.
 * Generic on purpose: the ledger's methods may be renamed or reshaped, this stays the same.
 */
function wrapMethods(): void {
  const target = AccountLedger.prototype as unknown as Record<string, unknown>;
  const seen = new Set<string>(["constructor", "__benchDatabaseSize"]);
  for (
    let proto: object | null = RealAccountLedger.prototype;
    proto && proto !== DurableObject.prototype && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (seen.has(name)) continue;
      seen.add(name);
      const desc = Object.getOwnPropertyDescriptor(proto, name);
      if (!desc || typeof desc.value !== "function") continue;
      const fn = desc.value as (...a: unknown[]) => unknown;
      const wrapped = function (this: unknown, ...args: unknown[]) {
        if (name === "alarm") counters.storage.alarms++;
        inFlight++;
        const done = () => {
          inFlight--;
          settleCursors();
        };
        let result: unknown;
        try {
          result = fn.apply(this, args);
        } catch (err) {
          done();
          throw err;
        }
        if (result instanceof Promise) return result.finally(done);
        done();
        return result;
      };
      Object.defineProperty(target, name, { ...desc, value: wrapped });
    }
  }
}
wrapMethods();

function isProxiedPath(path: string): boolean {
  return path.startsWith("/v1/") && path !== "/v1/account" && !path.startsWith("/v1/account/");
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/counters") {
      settleCursors();
      return Response.json({
        ...counters,
        authD1Lookups: authStats.d1Lookups - counters.authD1LookupsAtReset,
      });
    }
    if (url.pathname === "/__bench/reset" && request.method === "POST") {
      reset();
      return Response.json({ ok: true });
    }
    if (url.pathname === "/__bench/do-size") {
      const account = url.searchParams.get("account");
      if (!account) return Response.json({ error: "account= required" }, { status: 400 });
      const stub = ledgerFor(env, account) as unknown as {
        __benchDatabaseSize(): Promise<number>;
      };
      return Response.json({ account, databaseSize: await stub.__benchDatabaseSize() });
    }
    const proxied = isProxiedPath(url.pathname);
    const response = await worker.fetch(request, instrumentWorkerEnv(env), ctx);
    if (proxied) {
      counters.proxiedRequests++;
      const key = String(response.status);
      counters.status[key] = (counters.status[key] ?? 0) + 1;
    }
    return response;
  },
  queue: worker.queue,
} satisfies ExportedHandler<Bindings>;
