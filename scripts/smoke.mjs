// @ts-check
/**
 * `npm run smoke -- https://gateway.example.com`: after a deploy, checks the gateway end to end
 * without spending money: it serves (/healthz), refuses a request without a key (401), and
 * its webhook endpoint refuses an unsigned event (400). With SMOKE_API_KEY set, one proxied
 * request with that key: 200 and the credits headers (it costs that account one credit, no
 * money). Exits 1 on the first check that fails, saying what it got.
 */

import path from "node:path";
import { fileURLToPath } from "node:url";

const TIMEOUT_MS = 15_000;

/**
 * @typedef {{ name: string, run: (base: string) => Promise<string> }} Check
 * A check resolves with what it saw, or throws saying what was wrong.
 */

/** @param {string} base @param {string} path @param {RequestInit} [init] */
async function call(base, path, init = {}) {
  const res = await fetch(new URL(path, base), {
    ...init,
    redirect: "manual",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  /** @type {any} */
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: reported as text below
  }
  return { res, body, text };
}

/** @param {{ res: Response, text: string }} got */
const shown = (got) => `${got.res.status} ${got.text.slice(0, 300)}`;

/** @param {string | undefined} apiKey @param {string} classifyPath @returns {Check[]} */
export function checks(apiKey, classifyPath = "/v1/classify") {
  /** @type {Check[]} */
  const list = [
    {
      name: "GET /healthz answers 200 {ok: true}",
      async run(base) {
        const got = await call(base, "/healthz");
        if (got.res.status === 503 && got.body?.error?.problems) {
          throw new Error(
            `the gateway refuses to serve: its configuration is unsafe:\n    - ${got.body.error.problems.join("\n    - ")}`,
          );
        }
        if (got.res.status !== 200 || got.body?.ok !== true) throw new Error(shown(got));
        return "200";
      },
    },
    {
      name: "a request without an API key is 401 invalid_api_key",
      async run(base) {
        const got = await call(base, "/v1/account");
        if (got.res.status !== 401 || got.body?.error?.type !== "invalid_api_key")
          throw new Error(shown(got));
        return "401";
      },
    },
    {
      name: "the Stripe webhook endpoint refuses an unsigned event (400)",
      async run(base) {
        const got = await call(base, "/webhooks/stripe", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00" },
          body: JSON.stringify({ id: "evt_smoke", type: "smoke.test" }),
        });
        if (got.res.status !== 400) throw new Error(shown(got));
        return "400";
      },
    },
    {
      name: "GET /openapi.json, where the gateway serves one, is an OpenAPI document",
      async run(base) {
        const got = await call(base, "/openapi.json");
        if (got.res.status === 404) return "404: this version serves none (skipped)";
        if (got.res.status !== 200 || typeof got.body?.openapi !== "string")
          throw new Error(shown(got));
        return `200, OpenAPI ${got.body.openapi}`;
      },
    },
  ];
  if (apiKey) {
    list.push({
      name: `POST ${classifyPath} with SMOKE_API_KEY: 200 and the credits headers (one credit, no money)`,
      async run(base) {
        const got = await call(base, classifyPath, {
          method: "POST",
          headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
          body: JSON.stringify({ title: "Smoke test", description: "npm run smoke" }),
        });
        const charged = got.res.headers.get("X-Credits-Charged");
        const remaining = got.res.headers.get("X-Credits-Remaining");
        if (got.res.status !== 200 || charged === null || remaining === null)
          throw new Error(shown(got));
        return `200, X-Credits-Charged ${charged}, X-Credits-Remaining ${remaining}`;
      },
    });
  }
  return list;
}

/**
 * @param {string[]} argv @param {NodeJS.ProcessEnv} env
 * @param {(line: string) => void} [log]
 * @returns {Promise<number>} the exit code
 */
export async function main(argv, env, log = (line) => console.log(line)) {
  const base = argv.find((a) => !a.startsWith("-"));
  if (!base || argv.includes("--help")) {
    log(
      "usage: npm run smoke -- <base url>\n  env: SMOKE_API_KEY (optional: one proxied request with it), SMOKE_PATH (default /v1/classify)",
    );
    return base ? 0 : 2;
  }
  try {
    new URL(base);
  } catch {
    log(`smoke: not a URL: ${base}`);
    return 2;
  }
  const list = checks(env.SMOKE_API_KEY || undefined, env.SMOKE_PATH || "/v1/classify");
  log(`smoke: ${base}`);
  for (const check of list) {
    try {
      const saw = await check.run(base);
      log(`  ok    ${check.name}: ${saw}`);
    } catch (err) {
      log(`  FAIL  ${check.name}\n        ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  }
  if (!env.SMOKE_API_KEY) log("  (SMOKE_API_KEY not set: no proxied request was made)");
  log("smoke: all checks passed");
  return 0;
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2), process.env);
