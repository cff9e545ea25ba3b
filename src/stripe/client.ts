import Stripe from "stripe";
import type { Bindings } from "../platform/env";
import { ApiError } from "../platform/errors";

const clients = new Map<string, Stripe>();

/**
 * The Stripe SDK over workerd's fetch. With STRIPE_API_URL set it talks to that server
 * (the local Stripe-compatible one); unset, to Stripe itself. Cached per isolate and config.
 */
export function stripeFor(env: Pick<Bindings, "STRIPE_SECRET_KEY" | "STRIPE_API_URL">): Stripe {
  const key = env.STRIPE_SECRET_KEY;
  if (!key)
    throw new ApiError("service_unavailable", "Payments are not configured (STRIPE_SECRET_KEY).");
  const cacheKey = `${key}\n${env.STRIPE_API_URL ?? ""}`;
  let client = clients.get(cacheKey);
  if (!client) {
    const config: Stripe.StripeConfig = {
      httpClient: Stripe.createFetchHttpClient(),
      // Retries belong to the queue, which keeps the same idempotency key across them.
      maxNetworkRetries: 0,
      timeout: 20_000,
    };
    if (env.STRIPE_API_URL) {
      const url = new URL(env.STRIPE_API_URL);
      config.host = url.hostname;
      config.protocol = url.protocol === "https:" ? "https" : "http";
      config.port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
    }
    client = new Stripe(key, config);
    clients.set(cacheKey, client);
  }
  return client;
}

export function stripeConfigured(env: Pick<Bindings, "STRIPE_SECRET_KEY">): boolean {
  return Boolean(env.STRIPE_SECRET_KEY);
}

/** Test-mode keys make test-mode accounts (`tg_test_` API keys). */
export function isTestMode(env: Pick<Bindings, "STRIPE_SECRET_KEY">): boolean {
  return !env.STRIPE_SECRET_KEY || env.STRIPE_SECRET_KEY.startsWith("sk_test_");
}
