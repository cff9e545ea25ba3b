// @ts-check
/**
 * `npm start` beside something already on its port fails fast, says what holds it, and
 * creates nothing: not the demo account inside another gateway (issue 21), and it does not
 * hang on a listener that never answers.
 * Run: node --test scripts/start-port.test.mjs
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Well under what starting the stack takes (the local Stripe server, D1 migrations, wrangler). */
const FAST_MS = 10_000;

/** @param {net.Server} server @returns {Promise<number>} */
async function listen(server) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  return /** @type {net.AddressInfo} */ (server.address()).port;
}

/**
 * Runs `npm start`'s script with PORT, and kills it (its whole group) if it outlives FAST_MS.
 * @param {number} port
 */
function start(port) {
  const child = spawn(process.execPath, [path.join(root, "scripts", "start.mjs")], {
    cwd: root,
    env: { ...process.env, PORT: String(port), WRANGLER_SEND_METRICS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const began = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    }, FAST_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - began });
    });
  });
}

test("beside a running gateway: exits 1 at once, names it, creates nothing in it", async () => {
  /** @type {string[]} */
  const seen = [];
  const other = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(req.url === "/healthz" ? 200 : 201, { "Content-Type": "application/json" });
    res.end(req.url === "/healthz" ? '{"ok":true}' : '{"id":"acct_x","api_key":"tg_x"}');
  });
  const port = await listen(other);
  try {
    const run = /** @type {{ code: number | null, output: string, ms: number }} */ (
      await start(port)
    );
    assert.equal(run.code, 1, run.output);
    assert.ok(run.ms < FAST_MS, `took ${run.ms} ms`);
    assert.match(run.output, new RegExp(`Port ${port} is already in use: another gateway`));
    assert.match(run.output, /Nothing was started or created/);
    assert.doesNotMatch(run.output, /is running\.|API key/);
    assert.deepEqual(
      seen.filter((r) => r !== "GET /healthz"),
      [],
      "requests other than the probe reached the other gateway",
    );
  } finally {
    other.close();
  }
});

test("a port held by a silent listener: exits 1 within the probe's timeout, not a hang", async () => {
  /** @type {net.Socket[]} */
  const sockets = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  const port = await listen(silent);
  try {
    const run = /** @type {{ code: number | null, output: string, ms: number }} */ (
      await start(port)
    );
    assert.equal(run.code, 1, run.output);
    assert.ok(run.ms < FAST_MS, `took ${run.ms} ms`);
    assert.match(run.output, /accepts connections there but did not answer HTTP/);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});
