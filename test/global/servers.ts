import type { TestProject } from "vitest/node";
import { startStripeServer } from "../../local/stripe-server/server.mjs";
import { stripeClient, setup as stripeSetup } from "../../scripts/stripe-setup.mjs";
import { startAccessKeys } from "./access-keys";
import { startUpstreamStub } from "./upstream-stub";

const STRIPE_KEY = "sk_test_tollgate";

/**
 * Starts the network-edge stand-ins in Node and hands their URLs to the workerd tests; the
 * Stripe objects the gateway needs (plan and package prices, the portal configuration) are
 * made by the same `npm run stripe:setup` code an operator runs against Stripe.
 */
export default async function setup(project: TestProject) {
  const upstream = await startUpstreamStub();
  const accessKeys = await startAccessKeys();
  const stripe = await startStripeServer({ port: 0, quiet: true });
  const objects = await stripeSetup({
    stripe: stripeClient(STRIPE_KEY, stripe.url),
    gatewayUrl: "https://gateway.test",
    dashboardUrl: "https://gateway.test/account/billing",
    skipWebhook: true,
    apiLabel: stripe.url,
    mode: "test",
  });
  project.provide("upstreamUrl", upstream.url);
  project.provide("stripeUrl", stripe.url);
  project.provide("stripeEnv", objects.env);
  project.provide("accessKeysUrl", accessKeys.url);
  return async () => {
    await Promise.all([upstream.close(), stripe.close(), accessKeys.close()]);
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    upstreamUrl: string;
    stripeUrl: string;
    /** STRIPE_PRICE_STARTER, STRIPE_PRICE_PRO, STRIPE_PRICE_CREDITS_*, STRIPE_PORTAL_CONFIGURATION. */
    stripeEnv: Record<string, string>;
    /** The Access key set stand-in (test/global/access-keys.ts). */
    accessKeysUrl: string;
  }
}
