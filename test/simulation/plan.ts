import { inject } from "vitest";

/**
 * Which seeds the simulation runs. CI runs the fixed list below; `npm run soak` passes its own
 * plan through vitest's `provide` (environment variables do not reach tests inside workerd),
 * which this module reads with `inject`.
 */
export interface SimulationPlan {
  seeds: number[];
  steps: number;
  /**
   * Also generate the interleavings that reach the known bugs listed in KNOWN_BUGS
   * (generators.ts). Off in CI until their fixes land; the soak can turn it on.
   */
  knownBugs: boolean;
}

/** CI's budget: a handful of seeds, well under a minute on 2 cores. */
export const CI_PLAN: SimulationPlan = {
  seeds: [20251125, 7, 1337, 424242, 31337],
  steps: 80,
  knownBugs: true, // the interleavings of KNOWN_BUGS are fixed and now generated too
};

declare module "vitest" {
  export interface ProvidedContext {
    /** JSON of a SimulationPlan, provided by scripts/soak.mjs. */
    simulationPlan?: string;
  }
}

export function simulationPlan(): SimulationPlan {
  const provided = inject("simulationPlan");
  if (!provided) return CI_PLAN;
  const plan = JSON.parse(provided) as Partial<SimulationPlan>;
  return {
    seeds: plan.seeds ?? CI_PLAN.seeds,
    steps: plan.steps ?? CI_PLAN.steps,
    knownBugs: plan.knownBugs ?? true,
  };
}

/** The command that replays one seed, printed with every failure. */
export function replayCommand(seed: number, steps: number, knownBugs: boolean): string {
  return `npm run soak -- --seed ${seed} --steps ${steps}${knownBugs ? " --known-bugs" : ""}`;
}
