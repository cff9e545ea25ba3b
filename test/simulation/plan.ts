import { inject } from "vitest";

/**
 * Which seeds the simulation runs. CI runs the fixed list below; `npm run soak` passes its own
 * plan through vitest's `provide` (environment variables do not reach tests inside workerd),
 * which this module reads with `inject`.
 */
export interface SimulationPlan {
  seeds: number[];
  steps: number;
}

/** CI's budget: a handful of seeds, well under a minute on 2 cores. */
export const CI_PLAN: SimulationPlan = {
  seeds: [20251125, 7, 1337, 424242, 31337],
  steps: 80,
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
  };
}

/** The command that replays one seed, printed with every failure. */
export function replayCommand(seed: number, steps: number): string {
  return `npm run soak -- --seed ${seed} --steps ${steps}`;
}
