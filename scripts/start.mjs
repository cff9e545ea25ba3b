// @ts-check
/** `npm start`: the whole gateway on this machine, no cloud account needed. */
import { startLocalStack } from "./local-stack.mjs";
import { PortTakenError } from "./port-check.mjs";

/** @type {Awaited<ReturnType<typeof startLocalStack>>} */
let stack;
try {
  stack = await startLocalStack();
} catch (err) {
  if (!(err instanceof PortTakenError)) throw err;
  console.error(err.message);
  process.exit(1);
}
const key = stack.demo?.api_key ?? "<create one with POST /admin/accounts>";
console.log(`
Tollgate is running.
  gateway          ${stack.gatewayUrl}          (GET /healthz)
  dashboard        ${stack.dashboardOrigin}/account/billing
  upstream         ${stack.upstreamUrl}
  stripe (local)   ${stack.stripeUrl ?? "(STRIPE_API_URL / real Stripe)"}
  admin token      ${stack.adminToken}
  sign-up          ${stack.gatewayUrl}/account/sign-up
                   no mail server: the emails (with their links) are listed by
                   curl -s ${stack.gatewayUrl}/admin/signup-emails -H "Authorization: Bearer ${stack.adminToken}"

Demo account ${stack.demo?.id ?? ""} (complimentary Starter: 3,000 credits a month, no subscription)
  API key: ${key}

Try:
  curl -s ${stack.gatewayUrl}/v1/classify -H "Authorization: Bearer ${key}" \\
       -H "Content-Type: application/json" -d '{"title":"Wireless earbuds","description":"Bluetooth 5.3"}' -i

Ctrl-C stops everything.`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await stack.stop();
  process.exit(0);
};
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
stack.child.on("exit", (code) => {
  if (!stopping) {
    console.error(`wrangler dev exited with ${code}`);
    void stack.stop().then(() => process.exit(1));
  }
});
