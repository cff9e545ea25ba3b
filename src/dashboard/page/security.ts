import { createMiddleware } from "hono/factory";
import type { AppEnv, Bindings } from "../../env";
import { STYLES } from "./styles";

let styleHash: Promise<string> | null = null;

/** `'sha256-…'` of the inline stylesheet, computed once per isolate. */
function styleSource(): Promise<string> {
  styleHash ??= crypto.subtle
    .digest("SHA-256", new TextEncoder().encode(STYLES))
    .then((d) => `'sha256-${btoa(String.fromCharCode(...new Uint8Array(d)))}'`);
  return styleHash;
}

const STRIPE_PAGES = "https://billing.stripe.com https://checkout.stripe.com";

/**
 * Where "Manage plan and billing", Checkout and "Add a card" land. Browsers apply
 * `form-action` to the redirect that follows a form post too, so Stripe's page origins must be
 * allowed next to 'self' (locally, the Stripe-compatible server serves them itself).
 */
function portalOrigin(env: Pick<Bindings, "STRIPE_API_URL">): string {
  if (!env.STRIPE_API_URL) return STRIPE_PAGES;
  try {
    return new URL(env.STRIPE_API_URL).origin;
  } catch {
    return STRIPE_PAGES;
  }
}

/** The page loads nothing but itself: no scripts at all, one hashed stylesheet, inline SVG. */
export async function contentSecurityPolicy(env: Pick<Bindings, "STRIPE_API_URL">) {
  return [
    "default-src 'none'",
    `style-src ${await styleSource()}`,
    "img-src 'self' data:",
    `form-action 'self' ${portalOrigin(env)}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/** Security headers on every response of the Billing page, errors and redirects included. */
export const pageSecurityHeaders = createMiddleware<AppEnv>(async (c, next) => {
  await next();
  const headers = c.res.headers;
  headers.set("Content-Security-Policy", await contentSecurityPolicy(c.env));
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("Referrer-Policy", "no-referrer");
  headers.set("X-Frame-Options", "DENY");
  // Balances, keys shown once and CSRF tokens must never be stored by a browser or proxy.
  headers.set("Cache-Control", "no-store");
});
