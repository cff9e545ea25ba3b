import { onTestFinished, vi } from "vitest";

type Level = "error" | "warn";

export interface ExpectedLogs {
  /** The swallowed lines, in order, as `console` would have printed them (space-joined). */
  readonly lines: string[];
  /** Swallowed lines matching `pattern`. */
  matching(pattern: RegExp): string[];
}

interface Expectation {
  patterns: RegExp[];
  levels: Level[];
  lines: string[];
}

/** The current test's expectations, and its spies (installed once per test, removed after). */
let current: { expectations: Expectation[]; spies: Array<{ mockRestore(): void }> } | null = null;

function format(args: unknown[]): string {
  return args.map((a) => (a instanceof Error ? (a.stack ?? a.message) : String(a))).join(" ");
}

function spyOnConsole(expectations: Expectation[]) {
  return (["error", "warn"] as const).map((level) => {
    const original = console[level].bind(console);
    return vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      const line = format(args);
      const owners = expectations.filter(
        (e) => e.levels.includes(level) && e.patterns.some((p) => p.test(line)),
      );
      for (const owner of owners) owner.lines.push(line);
      if (owners.length === 0) original(...args);
    });
  });
}

/**
 * Swallows the `console.error`/`console.warn` lines a test provokes on purpose (a failure it
 * injects, a restart it stages), for the rest of the test, and records them so the test can
 * assert they were logged. Any other line still reaches the output: an unexpected error shows.
 * Calls within one test add up; every one whose patterns match a line records it.
 *
 * The worker's code (Durable Objects and the queue consumer included) runs in the tests'
 * isolate, so its `console` is this one.
 */
export function expectLogs(patterns: RegExp[], levels: Level[] = ["error", "warn"]): ExpectedLogs {
  if (!current) {
    const state = {
      expectations: [] as Expectation[],
      spies: [] as Array<{ mockRestore(): void }>,
    };
    current = state;
    onTestFinished(() => {
      for (const spy of state.spies) spy.mockRestore();
      current = null;
    });
  }
  // Installed again if something (vi.restoreAllMocks) removed the spies mid-test.
  if (!vi.isMockFunction(console.error)) current.spies = spyOnConsole(current.expectations);
  const expectation: Expectation = { patterns, levels, lines: [] };
  current.expectations.push(expectation);
  const { lines } = expectation;
  return { lines, matching: (pattern) => lines.filter((l) => pattern.test(l)) };
}
