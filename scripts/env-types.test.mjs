// @ts-check
/**
 * The Worker's env types come from wrangler.toml through `wrangler types`
 * (worker-configuration.d.ts, `npm run cf-typegen`), not from hand-written lines in src/platform/env.ts.
 * Read as text, so it needs no wrangler run (whose output also depends on a local .dev.vars).
 * Run: node --test scripts/env-types.test.mjs
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** @param {string} file */
const read = (file) => readFileSync(path.join(root, file), "utf8");

/** The keys of wrangler.toml's top-level [vars] table. @param {string} toml */
function tomlVars(toml) {
  const section = toml.split(/^\[vars\]\s*$/m)[1]?.split(/^\[/m)[0] ?? "";
  return [...section.matchAll(/^([A-Z][A-Z0-9_]*)\s*=/gm)].map((m) => m[1]);
}

/** The members of `interface Env` in `declare namespace Cloudflare`. @param {string} dts */
function generatedEnv(dts) {
  const body = dts.match(/interface Env \{([^}]*)\}/)?.[1] ?? "";
  return [...body.matchAll(/^\s*([A-Z][A-Z0-9_]*)\s*:/gm)].map((m) => m[1]);
}

test("every var in wrangler.toml is typed by `wrangler types`, none by hand in src/platform/env.ts", () => {
  const vars = tomlVars(read("wrangler.toml"));
  assert.ok(vars.length > 0, "wrangler.toml has [vars]");
  const generated = generatedEnv(read("worker-configuration.d.ts"));
  const missing = vars.filter((v) => !generated.includes(v));
  assert.deepEqual(missing, [], "run `npm run cf-typegen`: worker-configuration.d.ts is stale");
  const env = read("src/platform/env.ts");
  const byHand = vars.filter((v) => new RegExp(`^\\s*${v}\\??:`, "m").test(env));
  assert.deepEqual(
    byHand,
    [],
    "src/platform/env.ts declares vars that wrangler.toml already types",
  );
});
