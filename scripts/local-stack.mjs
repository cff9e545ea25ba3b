// @ts-check
/**
 * Starts the embedded default on one machine: the local Stripe-compatible server, the demo
 * upstream classifier, local D1 with migrations applied, and the gateway under `wrangler dev`
 * (local Durable Objects, Queue and D1). Used by `npm start` and by the end-to-end tests.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startDemoUpstream } from "../local/demo-upstream/server.mjs";
import { startStripeServer } from "../local/stripe-server/server.mjs";
import { assertPortFree } from "./port-check.mjs";
import { brandFrom, stripeClient, setup as stripeSetup } from "./stripe-setup.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const wranglerBin = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");
/** The local Stripe server's port when nothing else decides it: STRIPE_API_URL in .dev.vars.example. */
const DEFAULT_STRIPE_PORT = 12111;

/**
 * @param {{
 *   port?: number, persistTo?: string, env?: NodeJS.ProcessEnv, quiet?: boolean,
 *   demoAccount?: boolean, stripePort?: number, upstreamPort?: number, dashboardHost?: string,
 * }} [options]
 * `dashboardHost` (or DASHBOARD_HOST) names the Billing page's host in DASHBOARD_URL (default
 * 127.0.0.1): WebAuthn refuses an IP address as its RP ID, so passkeys need `localhost`.
 */
export async function startLocalStack(options = {}) {
  const env = options.env ?? process.env;
  const port = Number(env.PORT ?? options.port ?? 8787);
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const dashboardOrigin = `http://${options.dashboardHost ?? env.DASHBOARD_HOST ?? "127.0.0.1"}:${port}`;
  const persistTo = options.persistTo ?? path.join(root, ".wrangler", "state");
  const adminToken = env.ADMIN_TOKEN ?? "dev-admin-token";
  const stripeKey = env.STRIPE_SECRET_KEY ?? "sk_test_local";
  const webhookSecret = env.STRIPE_WEBHOOK_SECRET ?? "whsec_local";
  // First, before any server, file or account exists: a taken port must not let this run
  // mistake another gateway's /healthz for its own (and create the demo account in it).
  await assertPortFree(port);
  /** @type {Array<() => Promise<unknown>>} */
  const closers = [];

  let upstreamUrl = env.UPSTREAM_URL;
  if (!upstreamUrl) {
    const upstream = await startDemoUpstream({ port: options.upstreamPort ?? 0 });
    closers.push(upstream.close);
    upstreamUrl = upstream.url;
  }

  let stripeUrl = env.STRIPE_API_URL;
  let localStripeUrl = null;
  /** @type {number | null} */
  let stripePreferredPort = null;
  /** @type {Record<string, string>} */
  const localStripeEnv = {};
  if (!stripeUrl && !env.STRIPE_SECRET_KEY?.startsWith("sk_live_")) {
    mkdirSync(persistTo, { recursive: true });
    const stripe = await startPersistentStripeServer({
      persistTo,
      stripePort: options.stripePort,
      webhook: { url: `${gatewayUrl}/webhooks/stripe`, secret: webhookSecret },
      warn: options.quiet ? () => {} : (message) => console.warn(message),
    });
    closers.push(stripe.close);
    stripeUrl = stripe.url;
    localStripeUrl = stripe.url;
    stripePreferredPort = stripe.preferredPort;
    // The plans' and packages' prices and the portal configuration, made the way an operator
    // makes them in Stripe (`npm run stripe:setup`); the server already delivers webhooks.
    const made = await stripeSetup({
      stripe: stripeClient(stripeKey, stripe.url),
      gatewayUrl,
      dashboardUrl: `${dashboardOrigin}/account/billing`,
      skipWebhook: true,
      apiLabel: stripe.url,
      mode: "test",
      brand: brandFrom(env),
    });
    Object.assign(localStripeEnv, made.env);
  }

  mkdirSync(persistTo, { recursive: true });
  const migrate = spawnSync(
    process.execPath,
    [wranglerBin, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo],
    { cwd: root, env: { ...env, CI: "true", WRANGLER_SEND_METRICS: "false" }, encoding: "utf8" },
  );
  if (migrate.status !== 0) {
    await Promise.all(closers.map((c) => c()));
    throw new Error(`applying D1 migrations failed:\n${migrate.stdout}\n${migrate.stderr}`);
  }

  /** @type {Record<string, string>} */
  const vars = {
    UPSTREAM_URL: upstreamUrl,
    UPSTREAM_TIMEOUT_MS: env.UPSTREAM_TIMEOUT_MS ?? "30000",
    ADMIN_TOKEN: adminToken,
    STRIPE_SECRET_KEY: stripeKey,
    STRIPE_WEBHOOK_SECRET: webhookSecret,
    DASHBOARD_URL: `${dashboardOrigin}/account/billing`,
    RECHARGE_RETRY_BASE_SECONDS: env.RECHARGE_RETRY_BASE_SECONDS ?? "2",
    SESSION_SECRET: env.SESSION_SECRET ?? `local-session-${adminToken}`,
    // Sign-up is on locally; its emails are listed by GET /admin/signup-emails.
    SIGNUP_ENABLED: env.SIGNUP_ENABLED ?? "true",
    SIGNUP_STORE_LINKS: env.SIGNUP_STORE_LINKS ?? "true",
  };
  if (stripeUrl) vars.STRIPE_API_URL = stripeUrl;
  Object.assign(vars, localStripeEnv);
  for (const name of [
    "UPSTREAM_TOKEN",
    "STRIPE_PRICE_STARTER",
    "STRIPE_PRICE_PRO",
    "STRIPE_PRICE_CREDITS_1000",
    "STRIPE_PRICE_CREDITS_3000",
    "STRIPE_PRICE_CREDITS_9000",
    "STRIPE_PORTAL_CONFIGURATION",
    "MAX_BODY_BYTES",
    "PRODUCT_NAME",
    "COMPANY_NAME",
    "SUPPORT_EMAIL",
    "EMAIL_FROM",
  ]) {
    const value = env[name];
    if (value) vars[name] = value;
  }
  const args = [
    wranglerBin,
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--persist-to",
    persistTo,
    "--log-level",
    env.WRANGLER_LOG ?? "error",
    "--show-interactive-dev-session=false",
    "--inspector-port",
    "0",
    // Exposes /__scheduled, so the reconciler's cron runs locally too (see below).
    "--test-scheduled",
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...env, WRANGLER_SEND_METRICS: "false" },
    stdio: options.quiet ? ["ignore", "ignore", "pipe"] : ["ignore", "inherit", "inherit"],
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  closers.unshift(
    () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(undefined);
        child.once("exit", () => resolve(undefined));
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  );
  const stop = async () => {
    for (const close of closers) await close().catch(() => {});
  };

  try {
    await waitForHealth(gatewayUrl, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }

  // wrangler dev does not fire cron triggers by itself: run the reconciler's schedule (every
  // minute, wrangler.toml [triggers]) the way production would, so a charge whose outcome is
  // unknown is settled locally too.
  const cron = setInterval(() => {
    fetch(`${gatewayUrl}/__scheduled?cron=${encodeURIComponent("* * * * *")}`)
      .then((res) => res.arrayBuffer())
      .catch(() => {});
  }, 60_000);
  cron.unref();
  closers.unshift(async () => clearInterval(cron));

  const demo =
    options.demoAccount === false
      ? null
      : await ensureDemoAccount(gatewayUrl, adminToken, persistTo);
  // Lets helper scripts (npm run simulate:renewal) find this stack while it runs.
  writeFileSync(
    path.join(persistTo, "local-stack.json"),
    JSON.stringify(
      {
        gatewayUrl,
        stripeUrl: localStripeUrl,
        // The port the next run tries first (differs from stripeUrl's after a fallback).
        stripePreferredPort,
        adminToken,
        prices: { starter: vars.STRIPE_PRICE_STARTER, pro: vars.STRIPE_PRICE_PRO },
      },
      null,
      2,
    ),
  );
  return {
    gatewayUrl,
    dashboardOrigin,
    upstreamUrl,
    stripeUrl: localStripeUrl,
    adminToken,
    demo,
    stop,
    child,
  };
}

/**
 * The embedded Stripe server keeps its state in `<persistTo>/stripe-server.json`, next to the
 * D1 and Durable Object state that refers to its customers, and listens on a stable port,
 * because hosted invoice, Checkout and portal URLs it handed out (stored by the gateway as
 * invoice_url / action_url) name it: the port recorded in local-stack.json by the last run,
 * else 12111, else any free one. A caller's stripePort (tests) wins; 0 means any free port.
 * After a fallback the next run still tries the earlier port first (`preferredPort`, saved as
 * stripePreferredPort), where most stored links point.
 * @param {{ persistTo: string, stripePort?: number, webhook: { url: string, secret: string },
 *   warn: (message: string) => void }} options
 */
async function startPersistentStripeServer({ persistTo, stripePort, webhook, warn }) {
  const persistPath = path.join(persistTo, "stripe-server.json");
  const recorded = recordedStripePort(persistTo);
  const candidates =
    stripePort !== undefined
      ? [stripePort]
      : [...new Set([recorded, DEFAULT_STRIPE_PORT, 0].filter((p) => p !== null))];
  for (const port of candidates) {
    try {
      const stripe = await startStripeServer({ port, quiet: true, webhook, persistPath });
      if (stripePort === undefined && recorded !== null && stripe.port !== recorded) {
        warn(
          `local Stripe server: port ${recorded} (the one earlier runs used) is taken; listening on ${stripe.port} this time. Invoice, Checkout and portal links stored earlier point at port ${recorded} and answer again once a run gets it back.`,
        );
      }
      return { ...stripe, preferredPort: candidates[0] || stripe.port };
    } catch (err) {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      if (code !== "EADDRINUSE" || port === 0 || port === candidates.at(-1)) throw err;
    }
  }
  throw new Error("unreachable: the last candidate port is 0 or rethrows");
}

/** @param {string} persistTo @returns {number | null} */
function recordedStripePort(persistTo) {
  try {
    const saved = JSON.parse(readFileSync(path.join(persistTo, "local-stack.json"), "utf8"));
    const port = Number(saved.stripePreferredPort ?? new URL(saved.stripeUrl).port);
    return Number.isInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

/** @param {string} url @param {import("node:child_process").ChildProcess} child @param {() => string} stderr */
async function waitForHealth(url, child, stderr) {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`wrangler dev exited (${child.exitCode}):\n${stderr()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the gateway did not answer ${url}/healthz within 90 s:\n${stderr()}`);
}

/**
 * The demo account survives restarts: its key is kept next to the local state (local only:
 * in production a key is shown once and only its hash is stored).
 * @param {string} gatewayUrl @param {string} adminToken @param {string} persistTo
 */
async function ensureDemoAccount(gatewayUrl, adminToken, persistTo) {
  const file = path.join(persistTo, "demo-account.json");
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, "utf8"));
    const res = await fetch(`${gatewayUrl}/v1/account`, {
      headers: { Authorization: `Bearer ${saved.api_key}` },
    });
    await res.arrayBuffer();
    if (res.ok) return saved;
  }
  const res = await fetch(`${gatewayUrl}/admin/accounts`, {
    method: "POST",
    headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    // A gift from the operator (no Stripe subscription behind it): complimentary, said so.
    body: JSON.stringify({ email: "demo@tollgate.local", plan: "starter", complimentary: true }),
  });
  if (res.status !== 201)
    throw new Error(`creating the demo account failed: ${res.status} ${await res.text()}`);
  const created = await res.json();
  writeFileSync(file, JSON.stringify(created, null, 2));
  return created;
}
