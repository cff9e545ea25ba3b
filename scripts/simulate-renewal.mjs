// @ts-check
/**
 * Simulates a subscription renewal against a running `npm start`: the local Stripe server
 * signs an `invoice.paid` event and delivers it to the gateway's webhook endpoint.
 *
 *   npm run simulate:renewal                      # the demo account, its current plan
 *   npm run simulate:renewal -- acct_… pro        # another account and/or plan
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const stateDir = path.join(root, ".wrangler", "state");
const stack = JSON.parse(readFileSync(path.join(stateDir, "local-stack.json"), "utf8"));
if (!stack.stripeUrl)
  throw new Error(
    "simulate:renewal needs the local Stripe server (npm start without STRIPE_API_URL)",
  );
const demo = JSON.parse(readFileSync(path.join(stateDir, "demo-account.json"), "utf8"));

const accountId = process.argv[2] ?? demo.id;
const res = await fetch(`${stack.gatewayUrl}/admin/accounts/${accountId}`, {
  headers: { Authorization: `Bearer ${stack.adminToken}` },
});
if (!res.ok) throw new Error(`account ${accountId}: ${res.status} ${await res.text()}`);
const account = await res.json();
const plan = process.argv[3] ?? (account.plan === "free" ? "starter" : account.plan);
const price = stack.prices[plan];
if (!price) throw new Error(`no local price for plan ${plan}; use starter or pro`);

const start = Math.floor(Date.now() / 1000);
const end = start + 30 * 86_400;
const invoiceId = `in_sim_${start}`;
const delivered = await fetch(`${stack.stripeUrl}/_test/webhooks`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({
    type: "invoice.paid",
    data: {
      object: {
        id: invoiceId,
        object: "invoice",
        customer: account.stripe_customer_id,
        status: "paid",
        billing_reason: "subscription_cycle",
        parent: {
          type: "subscription_details",
          subscription_details: { subscription: `sub_sim_${accountId}` },
        },
        lines: {
          object: "list",
          data: [
            {
              id: `il_sim_${start}`,
              object: "line_item",
              period: { start, end },
              pricing: { type: "price_details", price_details: { price } },
            },
          ],
        },
      },
    },
  }),
});
const result = await delivered.json();
console.log(
  `invoice.paid ${invoiceId} (${plan}) → gateway answered ${result.status}: ${result.body}`,
);
