// @ts-check
/**
 * `npm run email:test -- you@example.com`: asks the gateway (POST /admin/email-test) to send
 * one email through its configured sender and says what happened. The gateway is the one
 * `npm start` runs (found in .wrangler/state/local-stack.json), or GATEWAY_URL with
 * ADMIN_TOKEN for a deployed one.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `usage: npm run email:test -- you@example.com
  env: GATEWAY_URL and ADMIN_TOKEN (default: the gateway \`npm start\` runs on this machine)`;

/** @param {NodeJS.ProcessEnv} env @returns {{ gatewayUrl: string, adminToken: string } | null} */
function target(env) {
  if (env.GATEWAY_URL) {
    return { gatewayUrl: env.GATEWAY_URL, adminToken: env.ADMIN_TOKEN ?? "" };
  }
  try {
    const saved = JSON.parse(
      readFileSync(path.join(root, ".wrangler", "state", "local-stack.json"), "utf8"),
    );
    return { gatewayUrl: saved.gatewayUrl, adminToken: env.ADMIN_TOKEN ?? saved.adminToken };
  } catch {
    return null;
  }
}

/**
 * @param {string[]} argv @param {NodeJS.ProcessEnv} env
 * @param {(line: string) => void} [log]
 * @returns {Promise<number>} the exit code
 */
export async function main(argv, env, log = (line) => console.log(line)) {
  const to = argv.find((a) => !a.startsWith("-"));
  if (!to || argv.includes("--help")) {
    log(USAGE);
    return to ? 0 : 2;
  }
  const gateway = target(env);
  if (!gateway) {
    log(
      `email:test: no gateway: run \`npm start\` first, or set GATEWAY_URL and ADMIN_TOKEN.\n\n${USAGE}`,
    );
    return 2;
  }
  /** @type {Response} */
  let res;
  try {
    res = await fetch(new URL("/admin/email-test", gateway.gatewayUrl), {
      method: "POST",
      headers: {
        Authorization: `Bearer ${gateway.adminToken}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ to }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    log(`email:test: ${gateway.gatewayUrl} did not answer (${String(err)}).`);
    return 1;
  }
  const text = await res.text();
  if (res.status !== 200) {
    log(`email:test: ${gateway.gatewayUrl} answered ${res.status}: ${text.slice(0, 500)}`);
    return 1;
  }
  const body = JSON.parse(text);
  const id = body.email?.id ?? "(not recorded)";
  if (body.status !== "sent") {
    log(`Not sent (${body.status}) from ${body.from} to ${body.to} by ${body.sender}.`);
    if (body.email?.error) log(`  the sender said: ${body.email.error}`);
    log(`  Recorded in D1's emails table as ${id}; the reconciler retries failed emails.`);
    log("  See docs/production.md (Email) for what the sender needs.");
    return 1;
  }
  log(`Sent from ${body.from} to ${body.to} by ${body.sender}; recorded in D1 as ${id}.`);
  if (body.environment === "production") {
    log("  Check that inbox (and its spam folder): the gateway's part is done.");
  } else {
    log(
      "  Local mode: nothing leaves this machine. wrangler dev's send_email binding stores the\n" +
        "  message in a temporary .eml file and logs its path at info level (start with\n" +
        "  WRANGLER_LOG=info npm start to see it); the text is also in local D1's emails table.",
    );
  }
  return 0;
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2), process.env);
