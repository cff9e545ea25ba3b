/**
 * Bench-only entry: the real worker (`../src/index.ts`) with its D1 and Durable Object
 * bindings wrapped in counting proxies, so the benchmark can report Durable Object calls,
 * D1 reads and D1 writes per proxied request without touching the production hot path.
 *
 * Never deployed: `bench/wrangler.instrumented.toml` bundles it for `npm run bench` only.
 * Counters live in module scope; locally the worker and its Durable Objects share one
 * isolate, so the DO's own D1 traffic (the usage flush in `alarm()`) lands here too.
 *
 *   GET  /__bench/counters  → the counters as JSON
 *   POST /__bench/reset     → zero them
 */
import type { Bindings } from "../src/env";
import { authStats } from "../src/gateway/identity";
import worker, { AccountLedger as RealAccountLedger } from "../src/index";

type Origin = "worker" | "do";

interface D1Counts {
  /** Calls that reach D1: run/all/first/raw/exec, and one per batch. */
  roundTrips: number;
  /** Statements by kind (a batch counts each of its statements). */
  reads: number;
  writes: number;
  other: number;
  batches: number;
  /** Statement text → count, to see exactly what ran. */
  bySql: Record<string, number>;
}

function emptyD1(): D1Counts {
  return { roundTrips: 0, reads: 0, writes: 0, other: 0, batches: 0, bySql: {} };
}

const counters = {
  /** Requests seen by this entry on proxied (/v1/*, not /v1/account*) paths. */
  proxiedRequests: 0,
  status: {} as Record<string, number>,
  doCalls: 0,
  doCallsByMethod: {} as Record<string, number>,
  d1: { worker: emptyD1(), do: emptyD1() } as Record<Origin, D1Counts>,
  /** The auth module's own count of key lookups that reached D1 (cache misses). */
  authD1LookupsAtReset: authStats.d1Lookups,
};

function reset(): void {
  counters.proxiedRequests = 0;
  counters.status = {};
  counters.doCalls = 0;
  counters.doCallsByMethod = {};
  counters.d1 = { worker: emptyD1(), do: emptyD1() };
  counters.authD1LookupsAtReset = authStats.d1Lookups;
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

function wrapStatement(
  origin: Origin,
  real: D1PreparedStatement,
  sql: string,
): D1PreparedStatement {
  const run =
    (name: "run" | "all" | "first" | "raw") =>
    (...args: unknown[]) => {
      counters.d1[origin].roundTrips++;
      countStatement(origin, sql);
      return (real[name] as (...a: unknown[]) => unknown).apply(real, args);
    };
  const wrapper = {
    bind: (...values: unknown[]) => wrapStatement(origin, real.bind(...values), sql),
    run: run("run"),
    all: run("all"),
    first: run("first"),
    raw: run("raw"),
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
          return target.batch(reals);
        };
      if (prop === "exec")
        return (sql: string) => {
          counters.d1[origin].roundTrips++;
          countStatement(origin, sql);
          return target.exec(sql);
        };
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function wrapStub<T extends object>(stub: T): T {
  return new Proxy(stub, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof prop !== "string" || prop === "then" || prop === "id" || prop === "name")
        return value;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        counters.doCalls++;
        counters.doCallsByMethod[prop] = (counters.doCallsByMethod[prop] ?? 0) + 1;
        return Reflect.apply(value, target, args);
      };
    },
  });
}

function wrapNamespace<T extends object>(ns: T): T {
  return new Proxy(ns, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "get" || prop === "getByName")
        return (...args: unknown[]) => wrapStub(Reflect.apply(value, target, args) as object);
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
    const ledger = wrapNamespace(env.ACCOUNT_LEDGER);
    wrapped = new Proxy(env, {
      get(target, prop) {
        if (prop === "DB") return db;
        if (prop === "ACCOUNT_LEDGER") return ledger;
        return Reflect.get(target, prop);
      },
    });
    wrappedEnvs.set(env, wrapped);
  }
  return wrapped;
}

/** The real ledger, with its own env.DB counted separately (the alarm's usage flush). */
export class AccountLedger extends RealAccountLedger {
  constructor(ctx: DurableObjectState, env: Bindings) {
    const db = wrapD1("do", env.DB);
    super(
      ctx,
      new Proxy(env, {
        get: (target, prop) => (prop === "DB" ? db : Reflect.get(target, prop)),
      }),
    );
  }
}

function isProxiedPath(path: string): boolean {
  return path.startsWith("/v1/") && path !== "/v1/account" && !path.startsWith("/v1/account/");
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/counters") {
      return Response.json({
        ...counters,
        authD1Lookups: authStats.d1Lookups - counters.authD1LookupsAtReset,
      });
    }
    if (url.pathname === "/__bench/reset" && request.method === "POST") {
      reset();
      return Response.json({ ok: true });
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
