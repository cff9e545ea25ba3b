// @ts-check
/**
 * `npm run bench`: the gateway's local throughput and latency against its floors, and the
 * Durable Object and D1 calls each proxied request makes.
 *
 * One run, for each place state can live (disk, then tmpfs):
 *   (a) the upstream stub (bench/upstream.mjs) directly;
 *   (b) a bare pass-through Worker (bench/passthrough-worker.mjs) on the same runtime;
 *   (c) the gateway, one hot account: POST /v1/classify with the account's BENCH_HOT_KEYS
 *       keys (rate limits are per account, so an operator override lifts the account's);
 *       every request goes through the same Durable Object;
 *   (c') the same hot account on a gateway with group commit and coalescing off
 *       (`LEDGER_GROUP_COMMIT=off`, `DEBIT_COALESCING=off`: one ledger call and one write per
 *       request), the A/B of issue 23's group commit and the gateway's coalesced debits;
 *   (d) the gateway, 1,000 accounts (one key each, rotated per request), their objects in
 *       memory (each account touched, untimed, just before the load);
 *   (d″) the same 1,000 accounts after 15 s idle: every object is started within the load.
 * Targets are loaded with autocannon in alternating rounds (rotating order); the table shows
 * medians over rounds, the server process's CPU per request (steadier than req/s when other
 * work shares the machine) and how many cores other processes used meanwhile. The gateway is
 * the bundle of `wrangler deploy --dry-run` run on the Miniflare API (not `wrangler dev`,
 * whose proxy costs ~4x). Afterwards the same state is opened by an instrumented build
 * (bench/instrumented-entry.ts) that counts Durable Object calls and D1 reads/writes for a
 * fixed number of proxied requests; timings never come from that build.
 *
 * Env: BENCH_SECONDS (4), BENCH_ROUNDS (5), BENCH_CONNECTIONS (32), BENCH_ACCOUNTS (1000),
 * BENCH_HOT_KEYS (16), BENCH_COUNT_REQUESTS (2000), BENCH_STATE ("disk,tmpfs"),
 * BENCH_DISK_DIR (/var/tmp), BENCH_WARMUP_SECONDS (1), BENCH_COUNT_STATES ("last"; "all"
 * counts in every state set), BENCH_WAIT_ALARM (unset; 1 waits 35 s after counting for the
 * Durable Objects' alarms and reports their D1 writes), BENCH_ONLY_COUNT (unset; 1 skips
 * the timed rounds: only the instrumented count and the storage run, on fresh state in the
 * last BENCH_STATE), BENCH_STORAGE_REQUESTS (20000: proxied requests on one fresh account,
 * with the Durable Object's `databaseSize` read before and after), BENCH_GROUP_COMMIT (unset:
 * the ledger's default; "timer" or "microtask" pick group commit's flush for (c), (d) and the
 * storage run), BENCH_UPDATE (unset; 1 is the same as `--update`), BENCH_TARGETS (unset: all;
 * a comma-separated subset of direct, bare, gateway_hot, gateway_hot_off, gateway_1k,
 * gateway_1k_cold to time, bare always among them).
 * Everything listens on and talks to 127.0.0.1 only; state directories are deleted after.
 *
 * Output: a table on stdout, and bench/results/local/latest.{json,md} (gitignored), or with
 * `npm run bench -- --update` the committed bench/results/latest.{json,md}.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  applyMigrations,
  BODY,
  benchDir,
  build,
  counters,
  countRun,
  createAccounts,
  createHotAccount,
  createShardedAccount,
  databaseSize,
  filesystemOf,
  load,
  machine,
  median,
  readWranglerToml,
  resetCounters,
  root,
  sourceInfo,
  startBare,
  startGateway,
  startUpstream,
  stdioSink,
  summarize,
  touchEach,
} from "./lib.mjs";

/** @typedef {import("./lib.mjs").Target} Target @typedef {import("./lib.mjs").RoundResult} RoundResult */

const update = process.argv.includes("--update") || process.env.BENCH_UPDATE === "1";
/** Committed results only on request; everyday runs stay out of git. */
const resultsDir = update
  ? path.join(benchDir, "results")
  : path.join(benchDir, "results", "local");

const num = (/** @type {string} */ name, /** @type {number} */ fallback) => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const config = {
  seconds: num("BENCH_SECONDS", 4),
  rounds: Math.round(num("BENCH_ROUNDS", 5)),
  connections: Math.round(num("BENCH_CONNECTIONS", 32)),
  accounts: Math.round(num("BENCH_ACCOUNTS", 1000)),
  countRequests: Math.round(num("BENCH_COUNT_REQUESTS", 2000)),
  hotKeys: Math.round(num("BENCH_HOT_KEYS", 16)),
  warmupSeconds: num("BENCH_WARMUP_SECONDS", 1),
  states: (process.env.BENCH_STATE ?? "disk,tmpfs")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
  diskDir: process.env.BENCH_DISK_DIR ?? "/var/tmp",
  waitAlarm: process.env.BENCH_WAIT_ALARM === "1",
  countAll: process.env.BENCH_COUNT_STATES === "all",
  onlyCount: process.env.BENCH_ONLY_COUNT === "1",
  storageRequests: Math.round(num("BENCH_STORAGE_REQUESTS", 20_000)),
  groupCommit: process.env.BENCH_GROUP_COMMIT ?? "",
};
/** The ledger's vars for the gateways as deployed, and for (c') with both batchings off. */
/** @type {Record<string, string>} */
const ON = config.groupCommit ? { LEDGER_GROUP_COMMIT: config.groupCommit } : {};
/** @type {Record<string, string>} */
const OFF = { LEDGER_GROUP_COMMIT: "off", DEBIT_COALESCING: "off" };

/**
 * Cloudflare list prices (USD), Workers Paid plan, read 2026-12-01. Each is the price past the
 * plan's monthly included allowance (the marginal cost of one more million once the allowance
 * is used up); the allowance is noted but not subtracted. Sources:
 *   https://developers.cloudflare.com/workers/platform/pricing/ (Standard usage model)
 *   https://developers.cloudflare.com/durable-objects/platform/pricing/ (compute; storage
 *     billing, SQLite storage backend; "each setAlarm() is billed as a single row written")
 *   https://developers.cloudflare.com/d1/platform/pricing/
 * Not in the per-request cost: Workers CPU time ($0.02 per million CPU ms past 30 million) and
 * Durable Object duration ($12.50 per million GB-s past 400,000 GB-s), which come from
 * timings, not counts; stored data is shown on its own (it is billed per GB-month kept).
 */
export const PRICES = {
  read_on: "2026-12-01",
  workers_request_per_million: 0.3, // 10 million / month included
  do_request_per_million: 0.15, // 1 million / month included; RPC calls and alarm invocations
  do_sqlite_row_read_per_million: 0.001, // 25 billion / month included
  do_sqlite_row_written_per_million: 1.0, // 50 million / month included; setAlarm() = 1 row
  do_sqlite_stored_gb_month: 0.2, // 5 GB-month included
  d1_row_read_per_million: 0.001, // 25 billion / month included
  d1_row_written_per_million: 1.0, // 50 million / month included
  d1_stored_gb_month: 0.75, // 5 GB included
};
for (const s of config.states) {
  if (s !== "disk" && s !== "tmpfs") throw new Error(`BENCH_STATE: unknown "${s}" (disk, tmpfs)`);
}

const ALL_TARGETS = /** @type {const} */ ([
  "direct",
  "bare",
  "gateway_hot",
  "gateway_hot_off",
  "gateway_1k",
  "gateway_1k_cold",
]);
/** BENCH_TARGETS: a comma-separated subset to time (default: all); bare is always timed. */
const chosen = (process.env.BENCH_TARGETS ?? "").split(",").map((t) => t.trim());
const TARGETS = ALL_TARGETS.filter((t) => chosen[0] === "" || t === "bare" || chosen.includes(t));
/** The gateway targets, with counts and costs. */
const GATEWAYS = /** @type {const} */ ([
  "gateway_hot",
  "gateway_hot_off",
  "gateway_1k",
  "gateway_1k_cold",
  "gateway_sharded",
]);
/**
 * How long (d″)'s objects are left idle before its timed load: past workerd's eviction of an
 * idle Durable Object (about 10 s; Cloudflare documents 10 s for a hibernatable object).
 */
const COLD_IDLE_MS = 15_000;
/** The sharded hot account's shard count (docs/ledger-shards.md); counted, not timed. */
const SHARDS = 4;
/** @type {Record<string, string>} */
const LABELS = {
  direct: "(a) upstream directly",
  bare: "(b) bare pass-through Worker",
  gateway_hot: `(c) gateway, 1 hot account (${config.hotKeys} keys), group commit ${config.groupCommit || "on"}`,
  gateway_hot_off: "(c') the same, group commit and coalescing off",
  gateway_1k: `(d) gateway, ${config.accounts.toLocaleString("en-US")} accounts, objects in memory`,
  gateway_1k_cold: `(d″) the same ${config.accounts.toLocaleString("en-US")} accounts, every object started in the load`,
  gateway_sharded: `(e) gateway, one hot account on ${SHARDS} escrow shards`,
};

/** Everything to undo on exit, last first. */
/** @type {Array<() => Promise<unknown> | unknown>} */
const cleanups = [];
async function cleanup() {
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    try {
      await fn?.();
    } catch {
      // best effort
    }
  }
}
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

const log = (/** @type {string} */ line) => process.stderr.write(`${line}\n`);

/**
 * The instrumented build on one target's state (same accounts): warm the isolate and its key
 * cache (one request per key), then count a fixed number of proxied requests.
 * @param {string} instrScript @param {string} persistRoot @param {string} upstreamUrl
 * @param {ReturnType<typeof readWranglerToml>} toml @param {ReturnType<typeof stdioSink>} sink
 * @param {string[]} keys @param {string} name @param {Record<string, string>} vars
 */
async function countPerRequest(
  instrScript,
  persistRoot,
  upstreamUrl,
  toml,
  sink,
  keys,
  name,
  vars,
) {
  const ins = await startGateway({
    scriptPath: instrScript,
    persistRoot,
    upstreamUrl,
    toml,
    sink,
    vars,
  });
  const disposeIns = () => ins.mf.dispose();
  cleanups.push(disposeIns);
  const connections = config.connections;
  const target = { name, url: ins.url, keys };
  await load(target, { amount: Math.max(200, keys.length), connections });
  /** @type {any} */
  const counts = await countRun(ins.url, target, config.countRequests, connections);
  if (config.waitAlarm) {
    log(`${name}: waiting 35 s for the Durable Objects' alarms …`);
    await resetCounters(ins.url);
    await new Promise((r) => setTimeout(r, 35_000));
    const c = await counters(ins.url);
    counts.alarm_flush = { seconds: 35, d1_from_do: c.d1.do, do_calls: c.doCalls };
  }
  await disposeIns();
  cleanups.splice(cleanups.indexOf(disposeIns), 1);
  return counts;
}

/**
 * Storage growth of one account's Durable Object: a fresh account (its own state), its
 * `databaseSize` read, `config.storageRequests` proxied requests driven through the
 * instrumented build as fast as it takes them (the whole gateway path, so the same debit
 * whatever the ledger looks like), `databaseSize` read again.
 * @param {string} instrScript @param {string} base directory for the state
 * @param {string} upstreamUrl @param {ReturnType<typeof readWranglerToml>} toml
 * @param {ReturnType<typeof stdioSink>} sink
 */
async function storageRun(instrScript, base, upstreamUrl, toml, sink) {
  const persistRoot = mkdtempSync(path.join(base, "tollgate-bench-storage-"));
  const undo = () => rmSync(persistRoot, { recursive: true, force: true });
  cleanups.push(undo);
  const ins = await startGateway({
    scriptPath: instrScript,
    persistRoot,
    upstreamUrl,
    toml,
    sink,
    vars: ON,
  });
  const dispose = () => ins.mf.dispose();
  cleanups.push(dispose);
  await applyMigrations(ins.mf);
  const hot = await createHotAccount(ins.url, config.hotKeys);
  const before = await databaseSize(ins.url, hot.id);
  log(
    `storage: ${config.storageRequests.toLocaleString("en-US")} requests on one account (databaseSize before: ${before.toLocaleString("en-US")} bytes) …`,
  );
  const target = { name: "storage", url: ins.url, keys: hot.keys };
  const counts = await countRun(ins.url, target, config.storageRequests, config.connections);
  const after = await databaseSize(ins.url, hot.id);
  const ok = counts.status["200"] ?? 0;
  const perRequest = (after - before) / (counts.requests || 1);
  const result = {
    requests: counts.requests,
    status: counts.status,
    seconds: counts.seconds,
    requests_per_second: Math.round(counts.requests / (counts.seconds || 1)),
    database_size_before: before,
    database_size_after: after,
    bytes_per_request: Math.round(perRequest * 10) / 10,
    per_million: {
      bytes: Math.round(perRequest * 1e6),
      measured: counts.requests >= 1_000_000,
      note:
        counts.requests >= 1_000_000
          ? "measured over 1,000,000 or more requests"
          : `extrapolated linearly from ${counts.requests.toLocaleString("en-US")} requests`,
    },
    stored_gb_month_cost_per_million: round6(
      ((perRequest * 1e6) / 1e9) * PRICES.do_sqlite_stored_gb_month,
    ),
    sqlite_rows_read_per_request: counts.sqlite_rows_read_per_request,
    sqlite_rows_written_per_request: counts.sqlite_rows_written_per_request,
    alarms_set_per_request: counts.alarms_set_per_request,
    ok_requests: ok,
  };
  log(
    `storage: ${after.toLocaleString("en-US")} bytes after ${counts.requests.toLocaleString("en-US")} requests in ${counts.seconds} s: ${result.bytes_per_request} bytes/request`,
  );
  await dispose();
  cleanups.splice(cleanups.indexOf(dispose), 1);
  undo();
  cleanups.splice(cleanups.indexOf(undo), 1);
  return result;
}

const round6 = (/** @type {number} */ x) => Math.round(x * 1e6) / 1e6;

/**
 * Cost of one million proxied requests from the per-request counts, at PRICES (marginal, past
 * the included allowance). Alarms set are billed as SQLite rows written.
 * @param {any} c one countRun result
 */
function costPerMillion(c) {
  // Counts are per request and prices per million, so a million requests cost count × price.
  const parts = {
    workers_requests: PRICES.workers_request_per_million,
    do_requests: c.do_calls_per_request * PRICES.do_request_per_million,
    do_sqlite_rows_read: c.sqlite_rows_read_per_request * PRICES.do_sqlite_row_read_per_million,
    do_sqlite_rows_written:
      (c.sqlite_rows_written_per_request + c.alarms_set_per_request) *
      PRICES.do_sqlite_row_written_per_million,
    d1_rows_read: c.d1_rows_read_per_request * PRICES.d1_row_read_per_million,
    d1_rows_written: c.d1_rows_written_per_request * PRICES.d1_row_written_per_million,
  };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return {
    ...Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round6(v)])),
    total: round6(total),
  };
}

/** Lets biome format what the bench wrote, so `biome check .` stays green after a run. */
function formatResults(/** @type {string[]} */ files) {
  const bin = path.join(root, "node_modules", "@biomejs", "biome", "bin", "biome");
  if (!existsSync(bin)) return;
  spawnSync(process.execPath, [bin, "format", "--write", ...files], { cwd: root, stdio: "ignore" });
}

// ------------------------------------------------------------------------------ main

async function main() {
  const started = Date.now();
  const info = machine();
  const toml = readWranglerToml();
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-bench-"));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));

  log(`building the worker bundle (wrangler ${info.wrangler} deploy --dry-run) …`);
  const gatewayScript = config.onlyCount
    ? ""
    : build(path.join(root, "wrangler.toml"), path.join(work, "gateway"), root);
  // The instrumented config is copied next to its output so wrangler's scratch dir
  // (.wrangler/) lands in the temp dir, not in bench/.
  const instrToml = readFileSync(path.join(benchDir, "wrangler.instrumented.toml"), "utf8")
    .replace(
      /^main\s*=.*$/m,
      `main = ${JSON.stringify(path.join(benchDir, "instrumented-entry.ts"))}`,
    )
    .replace(
      /^migrations_dir\s*=.*$/m,
      `migrations_dir = ${JSON.stringify(path.join(root, "migrations"))}`,
    );
  mkdirSync(path.join(work, "instr-config"));
  const instrConfig = path.join(work, "instr-config", "wrangler.toml");
  writeFileSync(instrConfig, instrToml);
  const instrScript = build(
    instrConfig,
    path.join(work, "instrumented"),
    path.dirname(instrConfig),
  );

  const upstream = await startUpstream();
  cleanups.push(upstream.stop);
  const sink = stdioSink();

  /** @type {any[]} */
  const stateRuns = [];
  const lastState = config.states[config.states.length - 1] ?? "tmpfs";
  if (config.onlyCount) {
    log("BENCH_ONLY_COUNT=1: no timed rounds, instrumented count and storage run only");
    stateRuns.push(await countOnly(instrScript, lastState, upstream.url, toml, sink));
  }
  for (const kind of config.onlyCount ? [] : config.states) {
    const base = kind === "tmpfs" ? "/dev/shm" : config.diskDir;
    if (!existsSync(base)) throw new Error(`${base} does not exist (state on ${kind})`);
    const persistRoot = mkdtempSync(path.join(base, "tollgate-bench-"));
    const undoState = () => rmSync(persistRoot, { recursive: true, force: true });
    cleanups.push(undoState);
    const fs = filesystemOf(persistRoot);
    log(`\n== state on ${kind}: ${persistRoot} (${fs.type} on ${fs.device}) ==`);

    const bare = await startBare(
      path.join(benchDir, "passthrough-worker.mjs"),
      upstream.url,
      toml,
      sink,
    );
    const disposeBare = () => bare.mf.dispose();
    cleanups.push(disposeBare);
    // Two gateway instances on the same bundle, each with its own state: the hot account's
    // rounds are not charged for the 1,000 accounts' alarms, and vice versa.
    const gwHot = await startGateway({
      scriptPath: gatewayScript,
      persistRoot: path.join(persistRoot, "hot"),
      upstreamUrl: upstream.url,
      toml,
      sink,
      vars: ON,
    });
    const disposeHot = () => gwHot.mf.dispose();
    cleanups.push(disposeHot);
    const gwHotOff = await startGateway({
      scriptPath: gatewayScript,
      persistRoot: path.join(persistRoot, "hot-off"),
      upstreamUrl: upstream.url,
      toml,
      sink,
      vars: OFF,
    });
    const disposeHotOff = () => gwHotOff.mf.dispose();
    cleanups.push(disposeHotOff);
    const gwMany = await startGateway({
      scriptPath: gatewayScript,
      persistRoot: path.join(persistRoot, "many"),
      upstreamUrl: upstream.url,
      toml,
      sink,
      vars: ON,
    });
    const disposeMany = () => gwMany.mf.dispose();
    cleanups.push(disposeMany);

    const migrations = await applyMigrations(gwHot.mf);
    await applyMigrations(gwHotOff.mf);
    await applyMigrations(gwMany.mf);
    const t0 = Date.now();
    const hot = await createHotAccount(gwHot.url, config.hotKeys);
    const hotOff = await createHotAccount(gwHotOff.url, config.hotKeys);
    const manyKeys = await createAccounts(gwMany.url, config.accounts);
    const setupSeconds = (Date.now() - t0) / 1000;
    log(
      `created ${config.accounts + 1} accounts through the admin API in ${setupSeconds.toFixed(1)} s`,
    );

    /** @type {Record<string, Target>} */
    const targets = {
      direct: { name: "direct", url: upstream.url, pid: upstream.pid },
      bare: { name: "bare", url: bare.url, pid: bare.pid },
      gateway_hot: { name: "gateway_hot", url: gwHot.url, keys: hot.keys, pid: gwHot.pid },
      gateway_hot_off: {
        name: "gateway_hot_off",
        url: gwHotOff.url,
        keys: hotOff.keys,
        pid: gwHotOff.pid,
      },
      gateway_1k: { name: "gateway_1k", url: gwMany.url, keys: manyKeys, pid: gwMany.pid },
      gateway_1k_cold: {
        name: "gateway_1k_cold",
        url: gwMany.url,
        keys: manyKeys,
        pid: gwMany.pid,
      },
    };
    // (d) and (d″) share one gateway; where the rotation leaves them must not decide whether
    // its 1,000 objects are in memory (workerd evicts one idle for ~10 s, and the other
    // targets' rounds take about that long). (d): every account touched just before, untimed.
    // (d″): the gateway left idle past eviction first, so every object starts in the load.
    let manyLastLoad = 0;
    /** @param {string} name */
    const prepare = async (name) => {
      if (name === "gateway_1k") await touchEach(gwMany.url, manyKeys, config.connections);
      if (name === "gateway_1k_cold") {
        const wait = manyLastLoad + COLD_IDLE_MS - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    };

    // Warm-up: JIT, connections, Durable Objects instantiated, key cache filled.
    for (const name of TARGETS) {
      const t = /** @type {Target} */ (targets[name]);
      const r = await load(t, { duration: config.warmupSeconds, connections: config.connections });
      if (r.non2xx + r.errors > 0)
        log(`warm-up ${name}: ${r.non2xx} non-2xx ${JSON.stringify(r.status)}, ${r.errors} errors`);
    }

    /** @type {Record<string, RoundResult[]>} */
    const rounds = Object.fromEntries(TARGETS.map((t) => [t, []]));
    for (let round = 0; round < config.rounds; round++) {
      const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]);
      for (const name of order) {
        if (!name) continue;
        await prepare(name);
        const r = await load(/** @type {Target} */ (targets[name]), {
          duration: config.seconds,
          connections: config.connections,
        });
        rounds[name]?.push(r);
        if (name.startsWith("gateway_1k")) manyLastLoad = Date.now();
        log(
          `round ${round + 1}/${config.rounds} ${name.padEnd(12)} ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  server ${r.server_cpu_us_per_req === null ? "-" : Math.round(r.server_cpu_us_per_req)} µs CPU/req  other load ${r.other_cores.toFixed(2)} cores${r.non2xx + r.errors ? `  non-2xx ${r.non2xx} errors ${r.errors}` : ""}`,
        );
      }
    }
    const results = Object.fromEntries(TARGETS.map((t) => [t, summarize(rounds[t] ?? [])]));

    // The timed gateways stop; the instrumented build opens the same state (same accounts).
    for (const dispose of [disposeHot, disposeHotOff, disposeMany]) {
      await dispose();
      cleanups.splice(cleanups.indexOf(dispose), 1);
    }
    await disposeBare();
    cleanups.splice(cleanups.indexOf(disposeBare), 1);

    // Counts are a property of the code path, so by default they are taken once, in the
    // last state set (BENCH_COUNT_STATES=all counts in each).
    const countHere = config.countAll || kind === config.states[config.states.length - 1];
    /** @type {any} */
    let counts = null;
    if (countHere)
      counts = await countTargets(instrScript, persistRoot, upstream.url, toml, sink, {
        gateway_hot: hot.keys,
        gateway_hot_off: hotOff.keys,
        gateway_1k: manyKeys,
        // Counted, not timed: its own fresh state, made by the instrumented build itself.
        gateway_sharded: await shardedKeys(
          instrScript,
          path.join(persistRoot, COUNTED_DIRS.gateway_sharded),
          upstream.url,
          toml,
          sink,
        ),
      });
    undoState();
    cleanups.splice(cleanups.indexOf(undoState), 1);

    stateRuns.push({
      state: kind,
      state_dir: persistRoot,
      filesystem: fs,
      migrations,
      account_setup_seconds: Math.round(setupSeconds * 10) / 10,
      results,
      ratios: ratios(results, rounds),
      counts,
      cost_per_million: counts ? costOf(counts) : null,
    });
  }

  // Storage growth: once, on the last state's filesystem, on a fresh account of its own.
  const storageBase = lastState === "tmpfs" ? "/dev/shm" : config.diskDir;
  const storage = await storageRun(instrScript, storageBase, upstream.url, toml, sink);

  const report = {
    generated_at: new Date().toISOString(),
    duration_seconds: Math.round((Date.now() - started) / 1000),
    machine: info,
    source: sourceInfo(),
    config: {
      seconds_per_round: config.seconds,
      rounds: config.rounds,
      connections: config.connections,
      warmup_seconds: config.warmupSeconds,
      accounts: config.accounts,
      hot_account_keys: config.hotKeys,
      group_commit: {
        on: config.groupCommit || "default (adaptive)",
        off_target: "gateway_hot_off",
      },
      count_requests: config.countRequests,
      storage_requests: config.storageRequests,
      only_count: config.onlyCount,
      request: { method: "POST", path: "/v1/classify", body_bytes: Buffer.byteLength(BODY) },
      runtime: "Miniflare API (workerd), bundle from `wrangler deploy --dry-run`",
      load_generator: "autocannon, same machine, same Node process as Miniflare's control plane",
      upstream: "bench/upstream.mjs: constant JSON, keep-alive, own Node process",
      stripe: "STRIPE_SECRET_KEY unset (no Stripe calls)",
    },
    runs: stateRuns,
    storage,
    prices: PRICES,
  };
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, "latest.json");
  const mdFile = path.join(resultsDir, "latest.md");
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(mdFile, markdown(report));
  formatResults([jsonFile, mdFile]);
  process.stdout.write(`\n${textTable(report)}\n`);
  log(
    `\nwrote ${path.relative(root, jsonFile)} and ${path.relative(root, mdFile)} in ${report.duration_seconds} s${update ? " (committed results: --update)" : " (untracked; `npm run bench -- --update` writes bench/results/latest.*)"}`,
  );
}

/** Per-target cost per million proxied requests. @param {any} counts */
function costOf(counts) {
  return Object.fromEntries(
    GATEWAYS.filter((t) => counts[t]).map((t) => [t, costPerMillion(counts[t])]),
  );
}

/**
 * BENCH_ONLY_COUNT=1: the instrumented build alone on fresh state (it is the real worker, so
 * it creates the accounts through the same admin API), then the same count as after the
 * timed rounds.
 * @param {string} instrScript @param {string} kind @param {string} upstreamUrl
 * @param {ReturnType<typeof readWranglerToml>} toml @param {ReturnType<typeof stdioSink>} sink
 */
async function countOnly(instrScript, kind, upstreamUrl, toml, sink) {
  const base = kind === "tmpfs" ? "/dev/shm" : config.diskDir;
  if (!existsSync(base)) throw new Error(`${base} does not exist (state on ${kind})`);
  const persistRoot = mkdtempSync(path.join(base, "tollgate-bench-"));
  const undoState = () => rmSync(persistRoot, { recursive: true, force: true });
  cleanups.push(undoState);
  const fs = filesystemOf(persistRoot);
  log(`\n== state on ${kind}: ${persistRoot} (${fs.type} on ${fs.device}), count only ==`);
  const t0 = Date.now();
  /** @type {Record<string, string[]>} */
  const keys = {};
  /** @type {string[]} */
  let migrations = [];
  for (const [name, dir] of Object.entries(COUNTED_DIRS)) {
    const ins = await startGateway({
      scriptPath: instrScript,
      persistRoot: path.join(persistRoot, dir ?? ""),
      upstreamUrl,
      toml,
      sink,
    });
    migrations = await applyMigrations(ins.mf);
    keys[name ?? ""] =
      name === "gateway_1k"
        ? await createAccounts(ins.url, config.accounts)
        : name === "gateway_sharded"
          ? (await createShardedAccount(ins.url, config.hotKeys, SHARDS)).keys
          : (await createHotAccount(ins.url, config.hotKeys)).keys;
    await ins.mf.dispose();
  }
  const setupSeconds = (Date.now() - t0) / 1000;
  log(`created ${config.accounts + 2} accounts in ${setupSeconds.toFixed(1)} s`);
  const counts = await countTargets(instrScript, persistRoot, upstreamUrl, toml, sink, keys);
  undoState();
  cleanups.splice(cleanups.indexOf(undoState), 1);
  return {
    state: kind,
    state_dir: persistRoot,
    filesystem: fs,
    migrations,
    account_setup_seconds: Math.round(setupSeconds * 10) / 10,
    results: null,
    ratios: null,
    counts,
    cost_per_million: costOf(counts),
  };
}

/** Each counted target's state directory under a state set's root. */
const COUNTED_DIRS = {
  gateway_hot: "hot",
  gateway_hot_off: "hot-off",
  gateway_1k: "many",
  gateway_sharded: "sharded",
};

/**
 * Every counted target on its own state (`countPerRequest`), group commit off for (c') only.
 * @param {string} instrScript @param {string} persistRoot @param {string} upstreamUrl
 * @param {ReturnType<typeof readWranglerToml>} toml @param {ReturnType<typeof stdioSink>} sink
 * @param {Record<string, string[]>} keys
 */
async function countTargets(instrScript, persistRoot, upstreamUrl, toml, sink, keys) {
  /** @type {Record<string, any>} */
  const counts = {};
  for (const [name, dir] of Object.entries(COUNTED_DIRS)) {
    const vars = name === "gateway_hot_off" ? OFF : ON;
    const root = path.join(persistRoot, dir);
    counts[name] = await countPerRequest(
      instrScript,
      root,
      upstreamUrl,
      toml,
      sink,
      keys[name] ?? [],
      name,
      vars,
    );
  }
  return counts;
}

/**
 * A fresh sharded hot account (SHARDS shards) in `persistRoot`, made through the instrumented
 * build; its keys.
 * @param {string} instrScript @param {string} persistRoot @param {string} upstreamUrl
 * @param {ReturnType<typeof readWranglerToml>} toml @param {ReturnType<typeof stdioSink>} sink
 */
async function shardedKeys(instrScript, persistRoot, upstreamUrl, toml, sink) {
  const ins = await startGateway({ scriptPath: instrScript, persistRoot, upstreamUrl, toml, sink });
  try {
    await applyMigrations(ins.mf);
    return (await createShardedAccount(ins.url, config.hotKeys, SHARDS)).keys;
  } finally {
    await ins.mf.dispose();
  }
}

/**
 * Gateway ÷ floors. `vs_bare`/`vs_direct`: ratio of the median req/s; `vs_bare_paired`: median
 * of per-round ratios (rounds alternate, so a round's bare and gateway saw similar conditions);
 * `cpu_vs_bare`: server CPU per request, gateway ÷ bare Worker.
 * @param {Record<string, ReturnType<typeof summarize>>} r
 * @param {Record<string, RoundResult[]>} rounds
 */
function ratios(r, rounds) {
  const round = (/** @type {number} */ x) => Math.round(x * 1000) / 1000;
  /** @param {(typeof GATEWAYS)[number]} t */
  const one = (t) => {
    const g = r[t];
    const paired = (rounds[t] ?? []).map((x, i) => x.rps / (rounds.bare?.[i]?.rps || Number.NaN));
    return {
      vs_bare: round((g?.rps ?? 0) / (r.bare?.rps || Number.NaN)),
      vs_direct: round((g?.rps ?? 0) / (r.direct?.rps || Number.NaN)),
      vs_bare_paired: round(median(paired)),
      cpu_vs_bare: round(
        (g?.server_cpu_us_per_req ?? 0) / (r.bare?.server_cpu_us_per_req || Number.NaN),
      ),
    };
  };
  return Object.fromEntries(GATEWAYS.filter((t) => r[t]).map((t) => [t, one(t)]));
}

// ------------------------------------------------------------------------------ output

const fmtInt = (/** @type {number} */ x) => Math.round(x).toLocaleString("en-US");
const fmtMs = (/** @type {number} */ x) => (x < 10 ? x.toFixed(1) : String(Math.round(x)));

/** @param {any} report */
function rows(report) {
  /** @type {string[][]} */
  const out = [];
  for (const run of report.runs) {
    if (!run.results) continue;
    for (const t of TARGETS) {
      const r = run.results[t];
      const ratio = run.ratios[t];
      out.push([
        `${run.state} (${run.filesystem.type})`,
        LABELS[t] ?? t,
        fmtInt(r.rps),
        fmtMs(r.p50_ms),
        fmtMs(r.p99_ms),
        `${r.errors} / ${r.non2xx}`,
        r.server_cpu_us_per_req === null ? "" : fmtInt(r.server_cpu_us_per_req),
        ratio ? ratio.vs_bare.toFixed(2) : "",
        ratio ? ratio.vs_bare_paired.toFixed(2) : "",
        ratio ? ratio.vs_direct.toFixed(2) : "",
        ratio ? ratio.cpu_vs_bare.toFixed(1) : "",
        r.other_cores.toFixed(2),
      ]);
    }
  }
  return out;
}

const HEAD = [
  "state",
  "target",
  "req/s",
  "p50 ms",
  "p99 ms",
  "errors / non-2xx",
  "server CPU µs/req",
  "req/s ÷ bare",
  "÷ bare, per round",
  "req/s ÷ direct",
  "CPU/req ÷ bare",
  "other load (cores)",
];

const fmtCount = (/** @type {number} */ x) => String(Math.round(x * 1000) / 1000);
const fmtUsd = (/** @type {number} */ x) => `$${x < 0.01 ? x.toFixed(4) : x.toFixed(3)}`;

/** @param {any} report */
function countRows(report) {
  /** @type {string[][]} */
  const out = [];
  for (const run of report.runs) {
    if (!run.counts) continue;
    for (const t of GATEWAYS) {
      const c = run.counts[t];
      if (!c) continue;
      const cost = run.cost_per_million?.[t];
      out.push([
        `${run.state} (${run.filesystem.type})`,
        LABELS[t] ?? t,
        `${fmtInt(c.requests)} in ${c.seconds} s`,
        fmtCount(c.do_calls_per_request),
        fmtCount(c.sqlite_rows_read_per_request),
        fmtCount(c.sqlite_rows_written_per_request),
        fmtCount(c.transaction_sync_per_request),
        fmtCount(c.alarms_set_per_request),
        fmtCount(c.d1_rows_read_per_request),
        fmtCount(c.d1_rows_written_per_request),
        fmtCount(c.d1_reads_per_request),
        fmtCount(c.d1_writes_per_request),
        String(c.d1_from_do.writes),
        cost ? fmtUsd(cost.total) : "",
      ]);
    }
  }
  return out;
}

const COUNT_HEAD = [
  "state",
  "target",
  "requests",
  "DO calls / req",
  "SQLite rows read / req",
  "SQLite rows written / req",
  "transactionSync / req",
  "alarms set / req",
  "D1 rows read / req",
  "D1 rows written / req",
  "D1 read stmts / req",
  "D1 write stmts / req",
  "DO D1 writes (window)",
  "cost / 1M req",
];

/** @param {any} report */
function costRows(report) {
  /** @type {string[][]} */
  const out = [];
  for (const run of report.runs) {
    if (!run.cost_per_million) continue;
    for (const t of GATEWAYS) {
      const c = run.cost_per_million[t];
      if (!c) continue;
      out.push([
        `${run.state} (${run.filesystem.type})`,
        LABELS[t] ?? t,
        fmtUsd(c.workers_requests),
        fmtUsd(c.do_requests),
        fmtUsd(c.do_sqlite_rows_read),
        fmtUsd(c.do_sqlite_rows_written),
        fmtUsd(c.d1_rows_read),
        fmtUsd(c.d1_rows_written),
        fmtUsd(c.total),
      ]);
    }
  }
  return out;
}

const COST_HEAD = [
  "state",
  "target",
  "Workers requests",
  "DO requests",
  "SQLite rows read",
  "SQLite rows written (+ alarms)",
  "D1 rows read",
  "D1 rows written",
  "total / 1M req",
];

/** @param {any} report */
function storageRows(report) {
  const s = report.storage;
  if (!s) return [];
  return [
    [
      "1 account, fresh",
      `${fmtInt(s.requests)} in ${s.seconds} s`,
      fmtInt(s.database_size_before),
      fmtInt(s.database_size_after),
      String(s.bytes_per_request),
      `${(s.per_million.bytes / 1e6).toFixed(1)} MB${s.per_million.measured ? "" : " (extrapolated)"}`,
      `${fmtUsd(s.stored_gb_month_cost_per_million)} / month`,
    ],
  ];
}

const STORAGE_HEAD = [
  "account",
  "requests",
  "databaseSize before (bytes)",
  "after (bytes)",
  "bytes / req",
  "per 1M req",
  "stored per 1M req",
];

function priceLines() {
  const p = PRICES;
  return [
    `Prices (USD, Cloudflare list prices read ${p.read_on}, Workers Paid, marginal: the price past each monthly included allowance): Workers requests $${p.workers_request_per_million}/M; Durable Object requests $${p.do_request_per_million}/M; DO SQLite rows read $${p.do_sqlite_row_read_per_million}/M, rows written $${p.do_sqlite_row_written_per_million}/M (each setAlarm() billed as one row written), stored data $${p.do_sqlite_stored_gb_month}/GB-month; D1 rows read $${p.d1_row_read_per_million}/M, rows written $${p.d1_row_written_per_million}/M. Computed from counts only: Workers CPU time and DO duration (timings) are left out, and so is the ledger's checkpoint alarm (at most one per active account-hour: about 4 rows written and one alarm invocation an hour, 1/(requests per hour) of a row per request; none fell in the count window unless the column says so) and stored data (per GB-month, shown with the storage run).`,
  ];
}

/** @param {string[]} head @param {string[][]} body */
function ascii(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (/** @type {string[]} */ cells) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** @param {string[]} head @param {string[][]} body */
function mdTable(head, body) {
  const align = head.map((_, i) => (i < 2 ? "---" : "---:"));
  return [head, align, ...body].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/**
 * The sharded hot account: calls each of its objects received (from the Worker, and the bank's
 * from its shards), the largest share, and the shards' calls on the bank per request.
 * @param {any} report
 */
function shardRows(report) {
  /** @type {string[][]} */
  const out = [];
  for (const run of report.runs) {
    const c = run.counts?.gateway_sharded;
    if (!c) continue;
    const total = Object.values(c.calls_by_object ?? {}).reduce((a, b) => a + Number(b), 0);
    for (const [object, calls] of Object.entries(c.calls_by_object ?? {}).sort()) {
      const kind = object.startsWith("shard:")
        ? `shard ${object.split(":").at(-1)}`
        : "bank (ledger)";
      out.push([
        `${run.state} (${run.filesystem.type})`,
        kind,
        fmtInt(Number(calls)),
        fmtCount(Number(calls) / (total || 1)),
      ]);
    }
    out.push([
      `${run.state} (${run.filesystem.type})`,
      "largest share / bank calls per request",
      fmtCount(c.largest_object_share),
      fmtCount(c.bank_calls_from_shards_per_request),
    ]);
  }
  return out;
}

const SHARD_HEAD = ["state", "object", "calls received", "share"];

/** @param {any} report */
function describe(report) {
  const m = report.machine;
  const c = report.config;
  const states = report.runs
    .map(
      (/** @type {any} */ r) =>
        `${r.state}: \`${r.state_dir}\` (${r.filesystem.type} on ${r.filesystem.device})`,
    )
    .join("; ");
  const src = report.source;
  return [
    `Machine: ${m.nproc} cores (\`nproc\`), ${m.cpu_model}${m.cpu_mhz ? ` @ ${Math.round(m.cpu_mhz)} MHz` : ""}, ${m.memory_gib} GiB, ${m.kernel}; Node ${m.node}, workerd ${m.workerd}, miniflare ${m.miniflare}, wrangler ${m.wrangler}, autocannon ${m.autocannon}.`,
    `Load: autocannon, ${c.connections} connections, ${c.rounds} rounds × ${c.seconds_per_round} s per target in rotating order (after a ${c.warmup_seconds} s warm-up), medians over rounds; POST /v1/classify with a ${c.request.body_bytes}-byte JSON body. The hot account's requests are spread over its ${c.hot_account_keys} API keys, with an operator rate limit override (rate limits are per account). (c) and (d) run on two gateway instances of the same bundle with separate state, so neither is charged for the other's Durable Object alarms (the ledger's checkpoint, at most hourly per active account). Load generator, upstream stub and workerd share the same ${m.nproc} cores: relative figures only. "Server CPU µs/req" is the CPU time of the process serving the target (workerd, or the stub for (a)) divided by requests; "other load" is the CPU other processes on the machine used meanwhile, in cores: when it is well above 0, req/s and latency are disturbed and CPU per request is the steadier figure. "÷ bare, per round" is the median of each round's own gateway ÷ bare ratio (a round's loads run within seconds of each other), steadier than the ratio of medians when the machine's speed drifts between rounds.`,
    `Runtime: the \`wrangler deploy --dry-run\` bundle of ${src.commit ?? "the working tree"}${src.changed_source_files ? ` plus ${src.changed_source_files} uncommitted source file(s)` : ""} on the Miniflare API (not \`wrangler dev\`). State: ${states}. ${c.stripe}.`,
  ].join("\n\n");
}

/** @param {any} report */
function textTable(report) {
  return [
    rows(report).length ? ascii(HEAD, rows(report)) : "(no timed rounds: BENCH_ONLY_COUNT=1)",
    "",
    'Per proxied request (instrumented build, counters reset after a warm-up; "DO D1 writes (window)" is',
    "D1 statements the Durable Objects wrote in that window; usage stays in the Durable Object, so they write none for it):",
    ascii(COUNT_HEAD, countRows(report)),
    "",
    "Cost per 1,000,000 proxied requests, from the counts above:",
    ascii(COST_HEAD, costRows(report)),
    "",
    "Durable Object storage (ctx.storage.sql.databaseSize) over a long run on one account:",
    ascii(STORAGE_HEAD, storageRows(report)),
    "",
    `(e) the sharded hot account (${SHARDS} escrow shards, docs/ledger-shards.md): calls per object; last row: largest share, and the shards' calls on the bank per request:`,
    shardRows(report).length ? ascii(SHARD_HEAD, shardRows(report)) : "(not run)",
    "",
    ...priceLines(),
    "",
    describe(report).replaceAll("`", ""),
  ].join("\n");
}

/** @param {any} report */
function markdown(report) {
  return `${[
    "## Benchmark (`npm run bench`)",
    "",
    rows(report).length ? mdTable(HEAD, rows(report)) : "(no timed rounds: BENCH_ONLY_COUNT=1)",
    "",
    "Per proxied request, counted by an instrumented build (`bench/instrumented-entry.ts`) after a warm-up. SQLite rows are the Durable Object's own cursor counters (`rowsRead` / `rowsWritten`), D1 rows come from D1's `meta`. \"DO D1 writes (window)\" is the D1 statements the Durable Objects wrote in the same window (usage stays in the Durable Object, so this is 0 unless a cycle grant fell in the window):",
    "",
    mdTable(COUNT_HEAD, countRows(report)),
    "",
    "Cost per 1,000,000 proxied requests, from the counts above:",
    "",
    mdTable(COST_HEAD, costRows(report)),
    "",
    `Durable Object storage: \`ctx.storage.sql.databaseSize\` of one fresh account before and after ${report.storage ? fmtInt(report.storage.requests) : "?"} proxied requests${report.storage && !report.storage.per_million.measured ? "; the per-million figure is a linear extrapolation" : ""}:`,
    "",
    mdTable(STORAGE_HEAD, storageRows(report)),
    "",
    `(e) the sharded hot account (${SHARDS} escrow shards, docs/ledger-shards.md): calls each object received (the bank's from its shards: leases taken and returned, requests forwarded near zero); last row: the largest share of any one object, and the shards' calls on the bank per proxied request:`,
    "",
    shardRows(report).length ? mdTable(SHARD_HEAD, shardRows(report)) : "(not run)",
    "",
    ...priceLines(),
    "",
    describe(report),
    "",
    `Generated ${report.generated_at} in ${report.duration_seconds} s.`,
  ].join("\n")}\n`;
}

main()
  .catch((err) => {
    process.exitCode = 1;
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  })
  .finally(cleanup);
