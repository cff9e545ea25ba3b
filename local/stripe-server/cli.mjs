#!/usr/bin/env node
// @ts-check
/**
 * Runs the local Stripe server standalone.
 *
 *   node local/stripe-server/cli.mjs [--port 12111] [--host 127.0.0.1]
 *     [--webhook-url URL --webhook-secret whsec_…] [--persist FILE] [--quiet]
 *
 * Environment fallbacks: STRIPE_SERVER_PORT, STRIPE_WEBHOOK_URL, STRIPE_WEBHOOK_SECRET.
 * Prints one line with the server URL, then runs until SIGINT/SIGTERM.
 */
import { parseArgs } from "node:util";
import { startStripeServer } from "./server.mjs";

const DEFAULT_PORT = 12111; // matches STRIPE_API_URL in .dev.vars.example

const USAGE = `usage: node local/stripe-server/cli.mjs [--port N] [--host H] [--webhook-url URL --webhook-secret SECRET] [--persist FILE] [--quiet]
  env: STRIPE_SERVER_PORT, STRIPE_WEBHOOK_URL, STRIPE_WEBHOOK_SECRET`;

/**
 * @param {string} message
 * @returns {never}
 */
function fail(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

/** @returns {import("./server.mjs").ServerOptions} */
function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: "string", short: "p" },
        host: { type: "string" },
        "webhook-url": { type: "string" },
        "webhook-secret": { type: "string" },
        persist: { type: "string" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const portText = values.port ?? process.env.STRIPE_SERVER_PORT ?? String(DEFAULT_PORT);
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) fail(`invalid port: ${portText}`);
  const url = values["webhook-url"] ?? process.env.STRIPE_WEBHOOK_URL;
  const secret = values["webhook-secret"] ?? process.env.STRIPE_WEBHOOK_SECRET;
  // Half a webhook configuration is almost certainly a mistake; say so instead of ignoring it.
  if (Boolean(url) !== Boolean(secret)) fail("webhook url and secret must be given together");
  return {
    port: Number(portText),
    host: values.host ?? "127.0.0.1",
    quiet: values.quiet ?? false,
    ...(values.persist ? { persistPath: values.persist } : {}),
    ...(url && secret ? { webhook: { url, secret } } : {}),
  };
}

const options = readOptions();
/** @type {Awaited<ReturnType<typeof startStripeServer>>} */
let server;
try {
  server = await startStripeServer(options);
} catch (err) {
  console.error(
    `stripe-server: could not start: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(1);
}
const webhookNote = options.webhook ? ` (webhooks -> ${options.webhook.url})` : "";
console.log(`stripe-server listening on ${server.url}${webhookNote}`);

let stopping = false;
/** @param {NodeJS.Signals} signal */
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  if (!options.quiet) console.error(`stripe-server: ${signal}, shutting down`);
  await server.close();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
