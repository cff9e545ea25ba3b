// @ts-check
/**
 * `npm run bench:profile`: a V8 CPU profile of the gateway's workerd under one of the bench's
 * loads, to find where its CPU goes (the bench says how much; this says where).
 *
 * It builds the same bundle as `npm run bench`, runs it on the Miniflare API with the
 * inspector open, creates the accounts, warms up, optionally leaves the objects idle, then
 * samples the isolate over one load and prints the functions with the most self time and the
 * most total time. The profile itself is written to bench/results/local/<target>.cpuprofile
 * (open it in Chrome DevTools' Performance panel). Timings under the inspector are slower
 * than the bench's; only the shares mean anything.
 *
 * Env: PROFILE_TARGET ("many": 1,000 accounts, or "hot": one account with 16 keys),
 * PROFILE_SECONDS (4), PROFILE_IDLE_SECONDS (0: seconds the objects sit idle between the
 * warm-up and the profiled load, as (d)'s objects do while the bench loads the other
 * targets), BENCH_ACCOUNTS (1000), BENCH_STATE ("tmpfs" or "disk"), PROFILE_VARS (JSON of
 * extra vars, e.g. '{"LEDGER_GROUP_COMMIT":"off"}'), PROFILE_TOP (30).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import {
  applyMigrations,
  benchDir,
  build,
  freshStateDir,
  keysFor,
  load,
  readWranglerToml,
  root,
  startGateway,
  startUpstream,
  stdioSink,
} from "./lib.mjs";

const target = process.env.PROFILE_TARGET ?? "many";
const seconds = Number(process.env.PROFILE_SECONDS ?? 4);
const idle = Number(process.env.PROFILE_IDLE_SECONDS ?? 0);
const accounts = Number(process.env.BENCH_ACCOUNTS ?? 1000);
const top = Number(process.env.PROFILE_TOP ?? 30);
const state = process.env.BENCH_STATE ?? "tmpfs";
const vars = JSON.parse(process.env.PROFILE_VARS ?? "{}");
const log = (/** @type {string} */ m) => process.stderr.write(`${m}\n`);

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function connect(/** @type {number} */ port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = list.find((/** @type {any} */ t) => String(t.title ?? t.id).includes("tollgate"));
  if (!page) throw new Error(`no tollgate target among ${JSON.stringify(list)}`);
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  /** @type {Map<number, (v: any) => void>} */
  const waiting = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    if (msg.id && waiting.has(msg.id)) {
      waiting.get(msg.id)?.(msg.result ?? msg.error);
      waiting.delete(msg.id);
    }
  });
  return {
    /** @param {string} method @param {object} [params] */
    send(method, params = {}) {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    close: () => ws.close(),
  };
}

/**
 * Self and total time per function (name, file, line), from the profile's sample tree.
 * @param {any} profile
 */
function summarize(profile) {
  /** @type {Map<number, any>} */
  const nodes = new Map(profile.nodes.map((/** @type {any} */ n) => [n.id, n]));
  /** @type {Map<number, number>} */
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const dt = profile.timeDeltas;
  /** @type {Map<number, number>} */
  const selfUs = new Map();
  profile.samples.forEach((/** @type {number} */ id, /** @type {number} */ i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (dt[i + 1] ?? dt[i] ?? 0));
  });
  const keyOf = (/** @type {any} */ n) => {
    const f = n.callFrame;
    return `${f.functionName || "(anonymous)"} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ""}`.trim();
  };
  /** @type {Map<string, number>} */
  const self = new Map();
  /** @type {Map<string, number>} */
  const total = new Map();
  let all = 0;
  for (const [id, us] of selfUs) {
    all += us;
    const n = nodes.get(id);
    self.set(keyOf(n), (self.get(keyOf(n)) ?? 0) + us);
    // Each function once per stack, however deep its recursion.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = /** @type {number} */ (parent.get(cur))) {
      const k = keyOf(nodes.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
  // Self time by source line, from each node's position ticks (in samples: shares only).
  /** @type {Map<string, number>} */
  const lines = new Map();
  let ticks = 0;
  for (const n of profile.nodes)
    for (const t of n.positionTicks ?? []) {
      const f = n.callFrame;
      const k = `${f.functionName || "(anonymous)"} ${path.basename(f.url)}:${t.line}`;
      lines.set(k, (lines.get(k) ?? 0) + t.ticks);
      ticks += t.ticks;
    }
  const samples = profile.samples.length || 1;
  const hotLines = [...lines]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, n]) => `${((100 * n) / samples).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
  const fmt = (/** @type {Map<string, number>} */ m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${((100 * us) / all).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  return { all, self: fmt(self), total: fmt(total), lines: ticks ? hotLines : "(none)" };
}

async function main() {
  const toml = readWranglerToml();
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-profile-"));
  const persistRoot = freshStateDir(state, "tollgate-profile-");
  const upstream = await startUpstream();
  /** @type {Awaited<ReturnType<typeof startGateway>> | undefined} */
  let gw;
  try {
    log("building the bundle …");
    const script = build(path.join(root, "wrangler.toml"), path.join(work, "gateway"), root);
    const inspectorPort = 9300 + Math.floor(Math.random() * 500);
    gw = await startGateway({
      scriptPath: script,
      persistRoot,
      upstreamUrl: upstream.url,
      toml,
      sink: stdioSink(),
      vars,
      inspectorPort,
    });
    await applyMigrations(gw.mf);
    const keys = await keysFor(gw.url, target, accounts);
    const t = { name: target, url: gw.url, keys, pid: gw.pid };
    log(`${keys.length} keys; warming up …`);
    // The profiler already on during the warm-up: V8 keeps a function's source positions only
    // if it was compiled while a profiler ran, and without them a function's self time all
    // lands on its first line (what a native call inside it costs stays invisible).
    const warm = await connect(inspectorPort);
    await warm.send("Profiler.enable");
    await warm.send("Profiler.start");
    await load(t, { duration: 2, connections: 32 });
    await warm.send("Profiler.stop");
    warm.close();
    if (idle > 0) {
      log(`idle for ${idle} s …`);
      await sleep(idle * 1000);
    }
    const cdp = await connect(inspectorPort);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    await cdp.send("Profiler.start");
    const r = await load(t, { duration: seconds, connections: 32 });
    const { profile } = /** @type {any} */ (await cdp.send("Profiler.stop"));
    cdp.close();
    const out = path.join(benchDir, "results", "local");
    mkdirSync(out, { recursive: true });
    const file = path.join(out, `${target}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    // The bundle the line numbers below refer to.
    const bundle = path.join(out, `${target}.bundle.js`);
    copyFileSync(script, bundle);
    const s = summarize(profile);
    console.log(
      `${target}: ${Math.round(r.rps)} req/s under the inspector, ${r.requests} requests, ` +
        `${r.non2xx} non-2xx, server ${Math.round(r.server_cpu_us_per_req ?? 0)} µs CPU/req; ` +
        `isolate samples ${(s.all / 1000).toFixed(0)} ms (${(s.all / r.requests) | 0} µs/req)`,
    );
    console.log(
      `\n-- self time --\n${s.self}\n\n-- total time --\n${s.total}\n\n` +
        `-- self time by line (of all samples; lines of ${bundle}) --\n${s.lines}\n\nprofile: ${file}`,
    );
  } finally {
    await gw?.mf.dispose();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(persistRoot, { recursive: true, force: true });
  }
}

await main();
