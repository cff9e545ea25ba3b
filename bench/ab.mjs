// @ts-check
/**
 * `npm run bench:ab`: the same load on two gateways that differ only in their vars, in
 * alternating rounds, to tell a change of a few percent from this machine's noise (the full
 * bench's ratios move by ±0.05 between runs; two builds run back to back differ by more).
 * Each round loads A then B, or B then A, on the same bundle, each gateway with its own state;
 * the 1,000 accounts are touched just before each load (every object in memory, as the
 * bench's (d)). Prints each round and the medians: req/s and the server's CPU per request.
 *
 * Env: AB_A and AB_B (JSON objects of vars, e.g. '{"LEDGER_GROUP_COMMIT":"timer"}'; default
 * '{}'), AB_A_SOURCE and AB_B_SOURCE (a checkout whose bundle that side runs, e.g. a
 * `git worktree` of another commit with node_modules linked in; default this one), AB_TARGET ("many" or "hot"), AB_ROUNDS (6), BENCH_SECONDS (4), BENCH_ACCOUNTS (1000),
 * BENCH_STATE ("tmpfs" or "disk").
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  applyMigrations,
  build,
  freshStateDir,
  keysFor,
  load,
  median,
  readWranglerToml,
  root,
  startGateway,
  startUpstream,
  stdioSink,
  touchEach,
} from "./lib.mjs";

const target = process.env.AB_TARGET ?? "many";
const rounds = Number(process.env.AB_ROUNDS ?? 6);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const accounts = Number(process.env.BENCH_ACCOUNTS ?? 1000);
const state = process.env.BENCH_STATE ?? "tmpfs";
const sides = {
  A: JSON.parse(process.env.AB_A ?? "{}"),
  B: JSON.parse(process.env.AB_B ?? "{}"),
};
const sources = { A: process.env.AB_A_SOURCE ?? root, B: process.env.AB_B_SOURCE ?? root };
const log = (/** @type {string} */ m) => process.stderr.write(`${m}\n`);

async function main() {
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-ab-"));
  const persistRoot = freshStateDir(state, "tollgate-ab-");
  const upstream = await startUpstream();
  /** @type {{ dispose(): Promise<void> }[]} */
  const started = [];
  try {
    /** @type {Record<string, string>} */
    const scripts = {};
    for (const [side, dir] of Object.entries(sources)) {
      log(`building ${side}'s bundle from ${dir} …`);
      scripts[side] = build(path.join(dir, "wrangler.toml"), path.join(work, side), dir);
    }
    const sink = stdioSink();
    /** @type {Record<string, import("./lib.mjs").Target>} */
    const targets = {};
    for (const [side, vars] of Object.entries(sides)) {
      const gw = await startGateway({
        scriptPath: /** @type {string} */ (scripts[side]),
        persistRoot: path.join(persistRoot, side),
        upstreamUrl: upstream.url,
        // Each side's own compatibility flags and vars, as its bundle was built with.
        toml: readWranglerToml(sources[/** @type {"A" | "B"} */ (side)]),
        sink,
        vars,
      });
      started.push(gw.mf);
      await applyMigrations(gw.mf);
      const keys = await keysFor(gw.url, target, accounts);
      targets[side] = { name: side, url: gw.url, keys, pid: gw.pid };
      await load(/** @type {any} */ (targets[side]), { duration: 1, connections: 32 });
    }
    /** @type {Record<string, { rps: number, cpu: number }[]>} */
    const results = { A: [], B: [] };
    let failed = false;
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 ? ["B", "A"] : ["A", "B"]) {
        const t = /** @type {import("./lib.mjs").Target} */ (targets[side]);
        if (target === "many") await touchEach(t.url, t.keys ?? [], 32);
        const r = await load(t, { duration: seconds, connections: 32 });
        const cpu = r.server_cpu_us_per_req ?? 0;
        results[side]?.push({ rps: r.rps, cpu });
        failed ||= r.non2xx + r.errors > 0;
        log(
          `round ${round + 1}/${rounds} ${side}: ${Math.round(r.rps)} req/s, ${Math.round(cpu)} µs CPU/req, other load ${r.other_cores.toFixed(2)} cores${r.non2xx + r.errors ? `, non-2xx ${r.non2xx} ${JSON.stringify(r.status)} errors ${r.errors}` : ""}`,
        );
      }
    }
    if (failed) {
      log(`the gateways' last log lines:\n${sink.lines.slice(-20).join("\n")}`);
      // Medians over rounds that failed are not a measure of the change: say so, and exit 1.
      log("FAILED: some rounds had non-2xx answers or errors (the round lines above)");
      process.exitCode = 1;
    }
    const med = (/** @type {string} */ side, /** @type {"rps" | "cpu"} */ k) =>
      median((results[side] ?? []).map((x) => x[k]));
    for (const side of ["A", "B"])
      console.log(
        `${side} ${sources[/** @type {"A" | "B"} */ (side)]} ${JSON.stringify(sides[/** @type {"A" | "B"} */ (side)])}: median ${Math.round(med(side, "rps"))} req/s, ${Math.round(med(side, "cpu"))} µs CPU/req`,
      );
    console.log(
      `B ÷ A (${target}, ${state}, ${rounds} rounds × ${seconds} s): req/s ${(med("B", "rps") / med("A", "rps")).toFixed(3)}, CPU/req ${(med("B", "cpu") / med("A", "cpu")).toFixed(3)}`,
    );
    // Each round's two loads run back to back, so their ratio cancels the machine's drift
    // between rounds; the spread of those ratios says how far to trust the medians above.
    const paired = (/** @type {"rps" | "cpu"} */ k) =>
      (results.A ?? []).map((a, i) => (results.B?.[i]?.[k] ?? 0) / a[k]).sort((x, y) => x - y);
    const cpu = paired("cpu");
    console.log(
      `B ÷ A within each round: req/s ${median(paired("rps")).toFixed(3)}, CPU/req ${median(cpu).toFixed(3)} (rounds' CPU ratios ${cpu.at(0)?.toFixed(3)}–${cpu.at(-1)?.toFixed(3)})`,
    );
  } finally {
    for (const mf of started) await mf.dispose();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(persistRoot, { recursive: true, force: true });
  }
}

await main();
