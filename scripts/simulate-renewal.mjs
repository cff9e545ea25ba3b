// @ts-check
/**
 * Renews an account's real subscription in the local Stripe server of a running `npm start`,
 * as Stripe does at period end: the period advances, the `subscription_cycle` invoice is
 * created, finalized and charged, and the events (customer.subscription.updated,
 * invoice.created/finalized/paid or payment_failed, …) reach the gateway's webhook. A
 * subscription set to cancel at period end ends instead; a scheduled downgrade takes effect.
 *
 *   npm run simulate:renewal                # the demo account
 *   npm run simulate:renewal -- acct_…      # another account
 *
 * An account without a subscription is left alone (exit code 1).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Nothing to renew: the account has no active or past_due subscription. Nothing changed. */
export class NoSubscriptionError extends Error {}

/**
 * Renews the account's newest active or past_due subscription through the local Stripe
 * server's renew control; the server delivers the events to the gateway's webhook.
 * @param {{ gatewayUrl: string, stripeUrl: string | null, adminToken: string }} stack
 * @param {string} accountId
 * @param {(message: string) => void} [warn]
 * @returns {Promise<{ subscription: any, invoice: any }>}
 */
export async function simulateRenewal(stack, accountId, warn = console.warn) {
  if (!stack.stripeUrl) {
    throw new Error(
      "simulate:renewal needs the local Stripe server (npm start without STRIPE_API_URL)",
    );
  }
  const res = await fetch(`${stack.gatewayUrl}/admin/accounts/${accountId}`, {
    headers: { Authorization: `Bearer ${stack.adminToken}` },
  });
  if (!res.ok) throw new Error(`account ${accountId}: ${res.status} ${await res.text()}`);
  const account = /** @type {any} */ (await res.json());
  const customer = account.stripe_customer_id;
  /** @type {any[]} */
  let subscriptions = [];
  if (customer) {
    // The local server takes any sk_ key.
    const listed = await fetch(
      `${stack.stripeUrl}/v1/subscriptions?customer=${encodeURIComponent(customer)}&limit=100`,
      { headers: { Authorization: "Bearer sk_test_local" } },
    );
    if (!listed.ok)
      throw new Error(`listing subscriptions: ${listed.status} ${await listed.text()}`);
    subscriptions = /** @type {any} */ (await listed.json()).data.filter(
      (/** @type {any} */ s) => s.status === "active" || s.status === "past_due",
    );
  }
  if (subscriptions.length === 0) {
    throw new NoSubscriptionError(
      `Account ${accountId} has no active or past_due subscription in the local Stripe server` +
        `${customer ? ` (customer ${customer})` : " (no Stripe customer)"}; nothing was renewed.`,
    );
  }
  if (subscriptions.length > 1) {
    warn(
      `Account ${accountId} has ${subscriptions.length} subscriptions (${subscriptions.map((s) => s.id).join(", ")}); renewing the newest.`,
    );
  }
  const subscription = subscriptions[0];
  const renewed = await fetch(`${stack.stripeUrl}/_local/subscriptions/${subscription.id}/renew`, {
    method: "POST",
  });
  if (!renewed.ok) {
    throw new Error(`renewing ${subscription.id}: ${renewed.status} ${await renewed.text()}`);
  }
  return /** @type {any} */ (await renewed.json());
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const stateDir = path.join(root, ".wrangler", "state");
  if (process.argv.length > 3) {
    console.error("usage: npm run simulate:renewal [-- acct_id]");
    process.exit(1);
  }
  const stack = JSON.parse(readFileSync(path.join(stateDir, "local-stack.json"), "utf8"));
  const accountId =
    process.argv[2] ??
    JSON.parse(readFileSync(path.join(stateDir, "demo-account.json"), "utf8")).id;
  try {
    const { subscription: after, invoice } = await simulateRenewal(stack, accountId);
    const day = (/** @type {number} */ ts) => new Date(ts * 1000).toISOString().slice(0, 10);
    const item = after.items.data[0];
    if (after.status === "canceled") {
      console.log(`${after.id} was set to cancel at period end: it is now canceled.`);
    } else {
      console.log(
        `${after.id} (${item.price.id}) renewed: period ${day(item.current_period_start)} → ${day(item.current_period_end)}, status ${after.status}.`,
      );
    }
    if (invoice) {
      console.log(
        `invoice ${invoice.id} (${invoice.billing_reason}): total ${invoice.total} ${invoice.currency}, amount due ${invoice.amount_due}, ${invoice.status}.`,
      );
    }
    console.log("The events are on their way to the gateway's webhook.");
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
