// @ts-check
/**
 * `[env.production]` in wrangler.toml carries no value of this machine: read the way wrangler
 * itself resolves it (`unstable_readConfig`), and deployed with `--dry-run` (offline: wrangler
 * bundles and lists the bindings without calling Cloudflare).
 * Run: node --test scripts/production-config.test.mjs
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const configPath = path.join(root, "wrangler.toml");
const wranglerBin = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");

/** localhost, 127.0.0.0/8, ::1 (any spelling wrangler would keep), 0.0.0.0. */
const LOCAL =
  /\blocalhost\b|(^|[^\d.])127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|(^|[^:\w])::1\b|0\.0\.0\.0/i;

test("LOCAL recognises the local spellings and nothing else", () => {
  for (const v of [
    "http://127.0.0.1:8788",
    "http://127.1.2.3/x",
    "http://localhost:8787",
    "https://LOCALHOST",
    "http://[::1]:8787",
    "::1",
    "http://0.0.0.0:80",
  ]) {
    assert.match(v, LOCAL, v);
  }
  for (const v of ["https://classifier.example.com", "https://10.127.0.0.1.nip.io", "30000"]) {
    assert.doesNotMatch(v, LOCAL, v);
  }
});

test("no var of the production environment names a local address", () => {
  const config = unstable_readConfig({ config: configPath, env: "production" });
  const vars = /** @type {Record<string, unknown>} */ (config.vars);
  assert.equal(vars.ENVIRONMENT, "production");
  const local = Object.entries(vars).filter(([, v]) => LOCAL.test(JSON.stringify(v)));
  assert.deepEqual(local, [], "production vars naming this machine");
});

test("production repeats every top-level var and binding (wrangler inherits none of them)", () => {
  const local = unstable_readConfig({ config: configPath });
  const prod = unstable_readConfig({ config: configPath, env: "production" });
  const missingVars = Object.keys(local.vars).filter((k) => !(k in prod.vars));
  assert.deepEqual(missingVars, [], "vars set locally but not in [env.production.vars]");
  /** @param {typeof local} c */
  const bindings = (c) => [
    ...c.durable_objects.bindings.map((b) => `do:${b.name}`),
    ...c.d1_databases.map((b) => `d1:${b.binding}`),
    ...(c.queues.producers ?? []).map((b) => `queue:${b.binding}`),
    ...(c.queues.consumers ?? []).map((b) => `consumer:${b.queue}`),
    ...c.send_email.map((b) => `email:${b.name}`),
  ];
  assert.deepEqual(bindings(prod).sort(), bindings(local).sort());
  assert.deepEqual(prod.triggers.crons, local.triggers.crons);
});

test("`wrangler deploy --env production --dry-run` bundles offline and lists no local value", () => {
  const outdir = mkdtempSync(path.join(tmpdir(), "tollgate-dry-run-"));
  try {
    const run = spawnSync(
      process.execPath,
      [wranglerBin, "deploy", "--env", "production", "--dry-run", "--outdir", outdir],
      {
        cwd: root,
        // No account, no token: it must not need Cloudflare.
        env: {
          ...process.env,
          CI: "true",
          WRANGLER_SEND_METRICS: "false",
          CLOUDFLARE_API_TOKEN: "",
          CLOUDFLARE_ACCOUNT_ID: "",
        },
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, output);
    assert.match(output, /env\.ENVIRONMENT \("production"\)/);
    assert.doesNotMatch(output, LOCAL);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
