// @ts-check
/**
 * A longer run of the seeded simulation (test/integration/simulation.test.ts): more seeds,
 * more steps. Environment variables do not reach tests inside workerd, so the plan goes in
 * through vitest's `provide`, which test/simulation/plan.ts reads with `inject`.
 *
 *   npm run soak                                 # 20 random seeds × 200 steps
 *   npm run soak -- --seeds 50 --steps 400       # more
 *   npm run soak -- --seed 1337 --steps 60       # replay one seed (repeat --seed for several)
 *   npm run soak -- --batch 4                    # seeds per vitest process (default: ~1,600 steps)
 *
 * Prints each seed before the run and a pass/fail line per seed after it, with the replay
 * command of every failing seed. Exit code 1 when any seed failed.
 */
import { randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { startVitest } from "vitest/node";

const { values } = parseArgs({
  options: {
    seed: { type: "string", multiple: true },
    seeds: { type: "string", default: "20" },
    steps: { type: "string", default: "200" },
    batch: { type: "string" },
  },
});

const steps = Number(values.steps);
const seeds = values.seed?.length
  ? values.seed.map(Number)
  : Array.from({ length: Number(values.seeds) }, () => randomInt(1, 2 ** 31));
if (!Number.isSafeInteger(steps) || steps < 1 || seeds.some((s) => !Number.isSafeInteger(s))) {
  console.error("usage: npm run soak -- [--seeds N | --seed S ...] [--steps N] [--batch N]");
  process.exit(2);
}
// About 1,600 steps per process by default (see runBatch).
const batchSize = Math.max(1, Number(values.batch) || Math.floor(1_600 / steps));
const replay = (/** @type {number} */ seed) => `npm run soak -- --seed ${seed} --steps ${steps}`;

console.log(`soak: ${seeds.length} seed(s) × ${steps} steps, ${batchSize} per vitest run`);
for (const seed of seeds) console.log(`  seed ${seed}`);

/**
 * Runs `batch` seeds in one vitest run and returns each seed's result. One workerd process
 * gets slower after a few thousand simulated steps (measured: 150-step seeds stay at ~5 s for
 * 2,400 steps, 300-step seeds grew from 18 s to 150 s by the 20th; not pinned down further),
 * so a fresh run every ~1,600 steps keeps the soak linear.
 * @param {number[]} batch
 */
async function runBatch(batch) {
  const vitest = await startVitest("test", ["test/integration/simulation.test.ts"], {
    run: true,
    watch: false,
    // Only the seeded runs; the fixed checks of the same file run in CI.
    testNamePattern: "^seeded simulation ",
    provide: { simulationPlan: JSON.stringify({ seeds: batch, steps }) },
  });
  /** @type {Map<number, { state: string; ms: number; error?: string }>} */
  const results = new Map();
  for (const module of vitest?.state.getTestModules() ?? []) {
    for (const test of module.children.allTests()) {
      const seed = Number(/^seed (\d+):/.exec(test.name)?.[1]);
      if (!Number.isSafeInteger(seed)) continue;
      const result = test.result();
      results.set(seed, {
        state: result.state,
        ms: Math.round(test.diagnostic()?.duration ?? 0),
        // The first lines say what broke; the seed, replay command and last steps follow.
        error: result.errors?.[0]?.message?.split("\n").slice(0, 3).join("\n    "),
      });
    }
  }
  await vitest?.close();
  return results;
}

const started = Date.now();
/** @type {Map<number, { state: string; ms: number; error?: string }>} */
const results = new Map();
for (let i = 0; i < seeds.length; i += batchSize) {
  for (const [seed, result] of await runBatch(seeds.slice(i, i + batchSize)))
    results.set(seed, result);
}

console.log(`\nsoak results (${Math.round((Date.now() - started) / 1000)} s):`);
let failed = 0;
for (const seed of seeds) {
  const r = results.get(seed);
  const state = r?.state ?? "not run";
  if (state !== "passed") failed++;
  console.log(`  seed ${seed}: ${state}${r ? ` in ${r.ms} ms` : ""}`);
  if (state !== "passed") {
    if (r?.error) console.log(`    ${r.error}`);
    console.log(`    replay: ${replay(seed)}`);
  }
}
console.log(failed === 0 ? "all seeds passed" : `${failed} seed(s) failed`);
process.exit(failed === 0 ? 0 : 1);
