// @ts-check
/**
 * Building blocks of the benchmark (bench/run.mjs) and of ad-hoc profiling scripts: the
 * bundle build, the upstream stub process, the gateway and the bare Worker on the Miniflare
 * API, D1 migrations, accounts through the admin API, autocannon load and the counters of
 * the instrumented build. Everything listens on and talks to 127.0.0.1 only.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { Miniflare } from "miniflare";

export const benchDir = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(benchDir, "..");
const wranglerBin = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");

export const ADMIN_TOKEN = "bench-admin-token";
export const BODY = JSON.stringify({
  title: "Wireless earbuds with charging case",
  description: "Bluetooth 5.3 in-ear headphones",
});
const JSON_HEADERS = { "content-type": "application/json" };

// ------------------------------------------------------------------------------ machine

export function machine() {
  const cpuinfo = safeRead("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "?";
  const mhz = /^cpu MHz\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
  const nproc =
    spawnSync("nproc", { encoding: "utf8" }).stdout?.trim() || String(os.availableParallelism());
  return {
    nproc: Number(nproc),
    cpu_model: model,
    cpu_mhz: mhz ? Number(mhz) : null,
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    workerd: pkgVersion("workerd") ?? pkgVersion("@cloudflare/workerd-linux-64"),
    miniflare: pkgVersion("miniflare"),
    wrangler: pkgVersion("wrangler"),
    autocannon: pkgVersion("autocannon"),
  };
}

/** Which source was built: HEAD and whether the working tree differs (read-only git). */
export function sourceInfo() {
  const git = (/** @type {string[]} */ args) =>
    spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? "";
  const head = git(["rev-parse", "--short", "HEAD"]);
  const changed = git(["status", "--porcelain", "--", "src", "wrangler.toml", "migrations"])
    .split("\n")
    .filter(Boolean).length;
  return { commit: head || null, changed_source_files: changed };
}

export function pkgVersion(/** @type {string} */ name) {
  const file = path.join(root, "node_modules", name, "package.json");
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).version : null;
}

export function safeRead(/** @type {string} */ file) {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** Filesystem type and device holding `dir`, from /proc/mounts (longest mount prefix). */
export function filesystemOf(/** @type {string} */ dir) {
  let best = { mount: "/", type: "?", device: "?" };
  for (const line of safeRead("/proc/mounts").split("\n")) {
    const [device, mount, type] = line.split(" ");
    if (!device || !mount || !type) continue;
    const inside = dir === mount || dir.startsWith(mount.endsWith("/") ? mount : `${mount}/`);
    if (inside && mount.length >= best.mount.length) best = { mount, type, device };
  }
  return best;
}

// ------------------------------------------------------------------------------ build

/** `wrangler deploy --dry-run --outdir`: the bundle `wrangler deploy` would upload. */
export function build(
  /** @type {string} */ configPath,
  /** @type {string} */ outDir,
  /** @type {string} */ cwd,
) {
  const res = spawnSync(
    process.execPath,
    [wranglerBin, "deploy", "--dry-run", "--outdir", outDir, "--config", configPath],
    {
      cwd,
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
    },
  );
  if (res.status !== 0)
    throw new Error(
      `wrangler deploy --dry-run failed (${configPath}):\n${res.stdout}\n${res.stderr}`,
    );
  const js = readdirSync(outDir).find((f) => f.endsWith(".js"));
  if (!js) throw new Error(`no .js bundle in ${outDir}`);
  return path.join(outDir, js);
}

/** Compatibility date, flags and [vars] from wrangler.toml (flat keys and strings only). */
export function readWranglerToml(/** @type {string} */ dir = root) {
  const text = readFileSync(path.join(dir, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(text)?.[1];
  const flags = [
    ...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(text)?.[1]?.matchAll(/"([^"]+)"/g) ?? []),
  ].map((m) => m[1] ?? "");
  /** @type {Record<string, string>} */
  const vars = {};
  const section = /^\[vars\]\s*$([\s\S]*?)(?=^\[)/m.exec(text)?.[1] ?? "";
  for (const m of section.matchAll(/^([A-Z0-9_]+)\s*=\s*"([^"]*)"/gm))
    vars[m[1] ?? ""] = m[2] ?? "";
  if (!date) throw new Error("wrangler.toml has no compatibility_date");
  return { compatibilityDate: date, compatibilityFlags: flags, vars };
}

// ------------------------------------------------------------------------------ processes

/** The upstream stub in its own process, so it never shares an event loop with autocannon. */
export async function startUpstream() {
  const child = spawn(process.execPath, [path.join(benchDir, "upstream.mjs")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const line = buf.split("\n")[0];
      if (buf.includes("\n") && line) resolve(JSON.parse(line).port);
    });
    child.once("exit", (code) => reject(new Error(`upstream stub exited (${code})`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(undefined);
        child.once("exit", () => resolve(undefined));
        child.kill("SIGTERM");
      }),
  };
}

/** Keeps the last lines workerd printed, shown only if something fails. */
export function stdioSink() {
  /** @type {string[]} */
  const lines = [];
  return {
    lines,
    /** @param {import("node:stream").Readable} stdout @param {import("node:stream").Readable} stderr */
    handle(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.on("data", (d) => {
          lines.push(...String(d).split("\n").filter(Boolean));
          if (lines.length > 200) lines.splice(0, lines.length - 200);
        });
      }
    },
  };
}

/**
 * The gateway (or its instrumented build) on the Miniflare API with wrangler.toml's bindings.
 * `vars` override wrangler.toml's (the hot account with group commit off: `LEDGER_GROUP_COMMIT`).
 * @param {{ scriptPath: string, persistRoot: string, upstreamUrl: string,
 *           toml: ReturnType<typeof readWranglerToml>, sink: ReturnType<typeof stdioSink>,
 *           vars?: Record<string, string>, inspectorPort?: number }} o
 */
export async function startGateway(o) {
  const before = workerdChildren();
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    cf: false,
    ...(o.inspectorPort ? { inspectorPort: o.inspectorPort } : {}),
    // Every plugin's state (Durable Objects, D1, queues, cache) under one root we chose.
    defaultPersistRoot: o.persistRoot,
    durableObjectsPersist: path.join(o.persistRoot, "do"),
    d1Persist: path.join(o.persistRoot, "d1"),
    handleRuntimeStdio: o.sink.handle,
    // Same worker name for the timed and the instrumented builds: they share the state.
    name: "tollgate",
    // The bundle given as its one module, not walked from a path: a library's optional
    // `await import("effect")` (hono-openapi's resolvers) has no module, and Miniflare refuses
    // a graph with an unresolved import although the code never reaches it.
    modulesRoot: path.dirname(o.scriptPath),
    modules: [
      { type: "ESModule", path: o.scriptPath, contents: readFileSync(o.scriptPath, "utf8") },
    ],
    compatibilityDate: o.toml.compatibilityDate,
    compatibilityFlags: o.toml.compatibilityFlags,
    bindings: {
      ...o.toml.vars,
      ...o.vars,
      UPSTREAM_URL: o.upstreamUrl,
      ADMIN_TOKEN,
      // STRIPE_SECRET_KEY unset: account creation makes no Stripe call (test-mode keys).
    },
    durableObjects: {
      ACCOUNT_LEDGER: { className: "AccountLedger", useSQLite: true },
      LEDGER_SHARD: { className: "LedgerShard", useSQLite: true },
    },
    d1Databases: { DB: "tollgate-bench" },
    queueProducers: {
      RECHARGE_QUEUE: { queueName: "tollgate-recharge" },
      REFUND_QUEUE: { queueName: "tollgate-refund" },
      WEBHOOK_QUEUE: { queueName: "tollgate-webhooks" },
    },
    queueConsumers: {
      "tollgate-recharge": {
        maxBatchSize: 1,
        maxBatchTimeout: 1,
        maxRetries: 5,
        deadLetterQueue: "tollgate-recharge-dlq",
      },
      "tollgate-recharge-dlq": { maxBatchSize: 1, maxBatchTimeout: 1 },
    },
    email: { send_email: [{ name: "EMAIL" }] },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { mf, url, pid: newWorkerdPid(before) };
}

/** @param {string} scriptPath @param {string} upstreamUrl @param {ReturnType<typeof readWranglerToml>} toml @param {ReturnType<typeof stdioSink>} sink */
export async function startBare(scriptPath, upstreamUrl, toml, sink) {
  const before = workerdChildren();
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    cf: false,
    handleRuntimeStdio: sink.handle,
    name: "passthrough",
    modules: true,
    scriptPath,
    compatibilityDate: toml.compatibilityDate,
    compatibilityFlags: toml.compatibilityFlags,
    bindings: { UPSTREAM_URL: upstreamUrl },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { mf, url, pid: newWorkerdPid(before) };
}

/** Applies migrations/*.sql in order (statements split on drizzle's breakpoints). */
export async function applyMigrations(/** @type {Miniflare} */ mf) {
  const db = await mf.getD1Database("DB");
  const dir = path.join(root, "migrations");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  await db
    .prepare(
      "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)",
    )
    .run();
  for (const file of files) {
    const done = await db.prepare("SELECT 1 FROM d1_migrations WHERE name = ?").bind(file).first();
    if (done) continue;
    const statements = readFileSync(path.join(dir, file), "utf8")
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter(Boolean);
    await db.batch([
      ...statements.map((s) => db.prepare(s)),
      db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(file),
    ]);
  }
  return files;
}

// ------------------------------------------------------------------------------ accounts

/** @param {string} base @param {string} pathname @param {unknown} body */
export async function admin(base, pathname, body, method = "POST") {
  const res = await fetch(`${base}${pathname}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, ...JSON_HEADERS },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/**
 * The largest share of the calls any one object received, among all objects called.
 * @param {Record<string, number>} byObject
 */
export function largestShare(byObject) {
  const calls = Object.values(byObject ?? {});
  const total = calls.reduce((a, b) => a + b, 0);
  return total ? Math.round((Math.max(...calls) / total) * 1000) / 1000 : 0;
}

/**
 * A hot account (as `createHotAccount`) whose requests spread over `shards` escrow shards
 * (docs/ledger-shards.md): `PATCH /admin/accounts/:id {"shards": n}`.
 * @param {string} base @param {number} keys @param {number} shards
 */
export async function createShardedAccount(base, keys, shards) {
  const hot = await createHotAccount(base, keys);
  await admin(base, `/admin/accounts/${hot.id}`, { shards }, "PATCH");
  return hot;
}

/**
 * One hot account with a balance it cannot exhaust, no rate limit to speak of (an operator
 * override: rate limits are per account, and a pro account stops at 50 req/s), and `keys`
 * API keys (at most 20), so the isolates' key caches see more than one key.
 * @param {string} base @param {number} keys
 */
export async function createHotAccount(base, keys) {
  const hot = await admin(base, "/admin/accounts", {
    email: "hot@bench.local",
    plan: "pro",
    complimentary: true,
  });
  await admin(base, `/admin/accounts/${hot.id}/credits`, {
    purchased: 100_000_000,
    reason: "benchmark: a balance the hot account cannot run out of",
  });
  await admin(base, `/admin/accounts/${hot.id}`, { rate_limit_per_minute: 1_000_000_000 }, "PATCH");
  /** @type {string[]} */
  const list = [hot.api_key];
  while (list.length < keys) {
    const res = await fetch(`${base}/v1/account/keys`, {
      method: "POST",
      headers: { Authorization: `Bearer ${hot.api_key}`, ...JSON_HEADERS },
      body: JSON.stringify({ name: `bench-${list.length}` }),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST /v1/account/keys: ${res.status} ${text}`);
    list.push(JSON.parse(text).key);
  }
  return { id: /** @type {string} */ (hot.id), keys: list };
}

/**
 * `n` accounts on the pro plan (8,000 monthly credits), one key each, created through the
 * admin API 32 at a time. Returns their keys.
 * @param {string} base @param {number} n
 */
export async function createAccounts(base, n) {
  /** @type {string[]} */
  const keys = new Array(n);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const acct = await admin(base, "/admin/accounts", {
        email: `b${i}@bench.local`,
        plan: "pro",
        complimentary: true,
      });
      keys[i] = acct.api_key;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return keys;
}

/**
 * A fresh directory for a gateway's state: on tmpfs (`/dev/shm`) or disk (`/var/tmp`).
 * @param {string} state @param {string} prefix
 */
export function freshStateDir(state, prefix) {
  return mkdtempSync(path.join(state === "tmpfs" ? "/dev/shm" : "/var/tmp", prefix));
}

/**
 * A load target's accounts on a gateway: "hot" is one account with 16 keys, "many" `n`
 * accounts with a key each. Returns the keys.
 * @param {string} base @param {string} target @param {number} n
 */
export async function keysFor(base, target, n) {
  return target === "hot" ? (await createHotAccount(base, 16)).keys : createAccounts(base, n);
}

// ------------------------------------------------------------------------------ load

/**
 * One proxied request per key, `connections` at a time, untimed: every account's Durable
 * Object is in memory afterwards. Throws on any answer but 200.
 * @param {string} base @param {string[]} keys @param {number} connections
 */
export async function touchEach(base, keys, connections) {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= keys.length) return;
      const res = await fetch(`${base}/v1/classify`, {
        method: "POST",
        headers: { ...JSON_HEADERS, authorization: `Bearer ${keys[i]}` },
        body: BODY,
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`touch: POST /v1/classify answered ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
}

/**
 * A load target; `pid` is the server process whose CPU time is charged to it.
 * @typedef {{ name: string, url: string, keys?: string[], key?: string, pid?: number }} Target
 * @typedef {{ rps: number, p50: number, p99: number, requests: number, errors: number,
 *             timeouts: number, non2xx: number, status: Record<string, number>, seconds: number,
 *             server_cpu_us_per_req: number | null, other_cores: number }} RoundResult
 */

/** @param {Target} target @param {{ duration?: number, amount?: number, connections?: number }} run */
export function load(target, run) {
  const headers = { ...JSON_HEADERS };
  if (target.key) Object.assign(headers, { authorization: `Bearer ${target.key}` });
  /** @type {Record<string, any>} */
  const opts = {
    url: `${target.url}/v1/classify`,
    method: "POST",
    body: BODY,
    headers,
    connections: run.connections ?? 32,
    timeout: 10,
    ...(run.amount ? { amount: run.amount } : { duration: run.duration }),
  };
  const keys = target.keys;
  if (keys && keys.length > 0) {
    // Every connection walks all keys, each from its own offset: prebuilt requests, no
    // per-request setup cost in the load generator, no lockstep on one account.
    const requests = keys.map((k) => ({
      headers: { ...JSON_HEADERS, authorization: `Bearer ${k}` },
    }));
    opts.requests = requests;
    let client = 0;
    opts.setupClient = (/** @type {any} */ c) => {
      const offset = Math.floor(
        ((client++ % (run.connections ?? 32)) * keys.length) / (run.connections ?? 32),
      );
      c.setRequests(
        [...requests.slice(offset), ...requests.slice(0, offset)].map((r) => ({ ...r })),
      );
    };
  }
  const span = cpuSpan(target.pid);
  return new Promise((resolve, reject) => {
    autocannon(opts, (/** @type {Error | null} */ err, /** @type {any} */ result) => {
      if (err) return reject(err);
      const cpu = span();
      /** @type {Record<string, number>} */
      const status = {};
      for (const [code, v] of Object.entries(
        /** @type {Record<string, { count: number }>} */ (result.statusCodeStats ?? {}),
      ))
        status[code] = Number(v.count);
      resolve(
        /** @type {RoundResult} */ ({
          rps: result.requests.total / result.duration,
          p50: result.latency.p50,
          p99: result.latency.p99,
          requests: result.requests.total,
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          status,
          seconds: result.duration,
          server_cpu_us_per_req:
            target.pid && result.requests.total > 0
              ? (cpu.server_cpu_s * 1e6) / result.requests.total
              : null,
          other_cores: cpu.other_cores,
        }),
      );
    });
  });
}

export const median = (/** @type {number[]} */ xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

/** @param {RoundResult[]} rounds */
export function summarize(rounds) {
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50_ms: median(rounds.map((r) => r.p50)),
    p99_ms: median(rounds.map((r) => r.p99)),
    rps_rounds: rounds.map((r) => Math.round(r.rps)),
    requests: rounds.reduce((a, r) => a + r.requests, 0),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    timeouts: rounds.reduce((a, r) => a + r.timeouts, 0),
    non2xx: rounds.reduce((a, r) => a + r.non2xx, 0),
    status: rounds.reduce((/** @type {Record<string, number>} */ acc, r) => {
      for (const [code, n] of Object.entries(r.status)) acc[code] = (acc[code] ?? 0) + n;
      return acc;
    }, {}),
    /** Server CPU per request: less sensitive to other load on the machine than req/s. */
    server_cpu_us_per_req: rounds.every((r) => r.server_cpu_us_per_req !== null)
      ? median(rounds.map((r) => r.server_cpu_us_per_req ?? 0))
      : null,
    /** Cores used by processes outside the benchmark while this target ran (median). */
    other_cores: median(rounds.map((r) => r.other_cores)),
  };
}

// ------------------------------------------------------------------------------ counting

/** @param {string} base */
export async function counters(base) {
  const res = await fetch(`${base}/__bench/counters`);
  if (!res.ok) throw new Error(`counters: ${res.status} ${await res.text()}`);
  return /** @type {Promise<any>} */ (res.json());
}

/** @param {string} base */
export async function resetCounters(base) {
  const res = await fetch(`${base}/__bench/reset`, { method: "POST" });
  await res.arrayBuffer();
}

/**
 * Fixed number of proxied requests against the instrumented build, counters reset first.
 * Everything is per proxied request except what says `window` (the Durable Objects' own
 * D1 traffic: their alarms, not per request).
 * @param {string} base @param {Target} target @param {number} amount @param {number} connections
 */
export async function countRun(base, target, amount, connections) {
  await resetCounters(base);
  const started = Date.now();
  const r = await load({ ...target, url: base }, { amount, connections });
  const seconds = (Date.now() - started) / 1000;
  // A cursor's counters are read when the call on the object ends; give the last ones a tick.
  await new Promise((res) => setTimeout(res, 50));
  const c = await counters(base);
  const n = c.proxiedRequests || 1;
  const per = (/** @type {number} */ x) => Math.round((x / n) * 1000) / 1000;
  const st = c.storage;
  return {
    requests: c.proxiedRequests,
    seconds: Math.round(seconds * 100) / 100,
    status: c.status,
    non2xx: r.non2xx,
    errors: r.errors,
    do_calls_per_request: per(c.doCalls),
    do_calls_by_method: c.doCallsByMethod,
    sqlite_rows_read_per_request: per(st.rowsRead),
    sqlite_rows_written_per_request: per(st.rowsWritten),
    sqlite_statements_per_request: per(st.execs),
    transaction_sync_per_request: per(st.transactionSync),
    alarms_set_per_request: per(st.setAlarm),
    alarm_invocations_window: st.alarms,
    d1_rows_read_per_request: per(c.d1.worker.rowsRead),
    d1_rows_written_per_request: per(c.d1.worker.rowsWritten),
    d1_reads_per_request: per(c.d1.worker.reads),
    d1_writes_per_request: per(c.d1.worker.writes),
    d1_round_trips_per_request: per(c.d1.worker.roundTrips),
    auth_d1_lookups: c.authD1Lookups,
    // Escrow shards (docs/ledger-shards.md): calls each object received, and the shards' calls
    // on their bank (leases taken and returned, requests forwarded near zero).
    calls_by_object: c.callsByObject,
    largest_object_share: largestShare(c.callsByObject),
    bank_calls_from_shards_per_request: per(c.bankCallsFromShards),
    storage: st,
    d1_worker: c.d1.worker,
    d1_from_do: c.d1.do,
  };
}

/**
 * `ctx.storage.sql.databaseSize` of one account's Durable Object (instrumented build only).
 * @param {string} base @param {string} accountId
 */
export async function databaseSize(base, accountId) {
  const res = await fetch(`${base}/__bench/do-size?account=${encodeURIComponent(accountId)}`);
  if (!res.ok) throw new Error(`do-size: ${res.status} ${await res.text()}`);
  const body = /** @type {{ databaseSize: number }} */ (await res.json());
  return body.databaseSize;
}

// ------------------------------------------------------------------------------ CPU

/** Kernel clock ticks per second (`getconf CLK_TCK`), for /proc CPU times. */
export const CLK_TCK =
  Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

/** [ppid, comm, utime + stime ticks] of a process, or null when it is gone. */
function procStat(/** @type {number} */ pid) {
  const text = safeRead(`/proc/${pid}/stat`);
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const comm = text.slice(text.indexOf("(") + 1, close);
  const f = text.slice(close + 2).split(" ");
  return { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) };
}

function allPids() {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** workerd processes started by this process (Miniflare spawns one per instance). */
function workerdChildren() {
  return new Set(
    allPids().filter((pid) => {
      const st = procStat(pid);
      return st?.ppid === process.pid && st.comm === "workerd";
    }),
  );
}

function newWorkerdPid(/** @type {Set<number>} */ before) {
  const fresh = [...workerdChildren()].filter((p) => !before.has(p));
  return fresh.length === 1 ? fresh[0] : undefined;
}

/** This process and every process below it. */
function ownTree() {
  const stats = new Map(allPids().map((pid) => [pid, procStat(pid)]));
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, st] of stats) {
      if (st && !mine.has(pid) && mine.has(st.ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  let ticks = 0;
  for (const pid of mine) ticks += stats.get(pid)?.ticks ?? 0;
  return ticks;
}

/** Busy ticks of the whole machine (all cores), from the `cpu` line of /proc/stat. */
function machineBusyTicks() {
  const f = (/^cpu\s+(.+)$/m.exec(safeRead("/proc/stat"))?.[1] ?? "").split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}

/**
 * CPU used during a span: by one server process (`pid`), by this benchmark's whole process
 * tree, and by everything else on the machine (other people's tests show up there).
 * @param {number | undefined} pid
 */
export function cpuSpan(pid) {
  const t0 = process.hrtime.bigint();
  const busy0 = machineBusyTicks();
  const ours0 = ownTree();
  const server0 = pid ? (procStat(pid)?.ticks ?? 0) : 0;
  return () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const busy = machineBusyTicks() - busy0;
    const ours = ownTree() - ours0;
    const server = pid ? (procStat(pid)?.ticks ?? 0) - server0 : 0;
    return {
      seconds,
      /** CPU seconds used by the server process. */
      server_cpu_s: server / CLK_TCK,
      /** Cores' worth of CPU used by processes outside the benchmark. */
      other_cores: Math.max(0, busy - ours) / CLK_TCK / seconds,
    };
  };
}
