import type { TestProject } from "vitest/node";
import { startStripeServer } from "../../local/stripe-server/server.mjs";
import { startUpstreamStub } from "./upstream-stub";

/** Starts the network-edge stand-ins in Node and hands their URLs to the workerd tests. */
export default async function setup(project: TestProject) {
  const upstream = await startUpstreamStub();
  const stripe = await startStripeServer({ port: 0, quiet: true });
  project.provide("upstreamUrl", upstream.url);
  project.provide("stripeUrl", stripe.url);
  return async () => {
    await Promise.all([upstream.close(), stripe.close()]);
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    upstreamUrl: string;
    stripeUrl: string;
  }
}
