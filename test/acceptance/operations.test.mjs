// @ts-check
/**
 * Issue 21's operator commands against a running gateway: `npm run smoke -- <url>` (after a
 * deploy) and `npm run email:test -- <address>` (is email working?).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createAccount, startStack, uniqueEmail } from "./helpers.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const run = promisify(execFile);

/**
 * @param {string} script @param {string[]} args @param {Record<string, string>} env
 * @returns {Promise<{ code: number, output: string }>}
 */
async function npmScript(script, args, env) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [path.join(root, "scripts", script), ...args],
      {
        cwd: root,
        env: { ...process.env, ...env },
        timeout: 60_000,
      },
    );
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = /** @type {{ code?: number, stdout?: string, stderr?: string }} */ (err);
    return { code: e.code ?? -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/** @type {import("./helpers.mjs").Stack} */
let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe("npm run smoke", () => {
  test("passes against a serving gateway: health, 401, the webhook's 400, and a 200 with a key", async () => {
    const account = await createAccount(stack);
    const res = await npmScript("smoke.mjs", [stack.base], { SMOKE_API_KEY: account.api_key });
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, /ok {4}GET \/healthz/);
    assert.match(res.output, /ok {4}a request without an API key is 401/);
    assert.match(res.output, /ok {4}the Stripe webhook endpoint refuses an unsigned event/);
    assert.match(res.output, /X-Credits-Charged 1, X-Credits-Remaining \d+/);
    assert.match(res.output, /all checks passed/);
  });

  test("fails, saying what it got, when a check does not hold", async () => {
    const res = await npmScript("smoke.mjs", [stack.base], { SMOKE_API_KEY: "tg_test_nope" });
    assert.equal(res.code, 1, res.output);
    assert.match(res.output, /FAIL {2}POST \/v1\/classify with SMOKE_API_KEY[^\n]*\n\s+401/);
  });
});

describe("npm run email:test", () => {
  test("sends through the gateway's sender and says where a local one went", async () => {
    const to = uniqueEmail("email-test");
    const res = await npmScript("email-test.mjs", [to], {
      GATEWAY_URL: stack.base,
      ADMIN_TOKEN: stack.adminToken ?? "",
    });
    assert.equal(res.code, 0, res.output);
    assert.match(
      res.output,
      new RegExp(`Sent from \\S+ to ${to.replace(/[.+]/g, "\\$&")} by Cloudflare Email Service`),
    );
    assert.match(res.output, /recorded in D1 as em_/);
    assert.match(res.output, /Local mode: nothing leaves this machine/);
  });
});
