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

/**
 * Where "Manage plan and billing" lands. Browsers apply `form-action` to the redirect that
 * follows a form post too, so the portal's origin must be allowed next to 'self'.
 */
function portalOrigin(env: Pick<Bindings, "STRIPE_API_URL">): string {
  if (!env.STRIPE_API_URL) return "https://billing.stripe.com";
  try {
    return new URL(env.STRIPE_API_URL).origin;
  } catch {
    return "https://billing.stripe.com";
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
