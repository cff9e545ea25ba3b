import { createMiddleware } from "hono/factory";
import type { AppEnv, Bindings } from "../../env";
import { STYLES } from "./styles";

/**
 * The page's only script: the "Copy key" button next to a new key. The page works without it
 * (the key is shown whole in a read-only field, selectable by hand), so the button starts
 * `hidden` and this script shows it. Allowed by its hash, like the stylesheet.
 */
export const COPY_SCRIPT = `for(const b of document.querySelectorAll("button[data-copy]")){const f=document.getElementById(b.dataset.copy),s=document.getElementById(b.dataset.status);if(!f)continue;b.hidden=false;b.addEventListener("click",async()=>{const say=t=>{if(s)s.textContent=t};try{await navigator.clipboard.writeText(f.value);say("Copied to the clipboard.")}catch{f.focus();f.select();say(document.execCommand("copy")?"Copied to the clipboard.":"Press Ctrl+C (or ⌘C) to copy the selected key.")}})}`;

const hashes = new Map<string, Promise<string>>();

/** `'sha256-…'` of an inline stylesheet or script, computed once per isolate. */
function sourceHash(text: string): Promise<string> {
  let hash = hashes.get(text);
  if (!hash) {
    hash = crypto.subtle
      .digest("SHA-256", new TextEncoder().encode(text))
      .then((d) => `'sha256-${btoa(String.fromCharCode(...new Uint8Array(d)))}'`);
    hashes.set(text, hash);
  }
  return hash;
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

/** The page loads nothing but itself: one hashed script, one hashed stylesheet, inline SVG. */
export async function contentSecurityPolicy(env: Pick<Bindings, "STRIPE_API_URL">) {
  return [
    "default-src 'none'",
    `script-src ${await sourceHash(COPY_SCRIPT)}`,
    `style-src ${await sourceHash(STYLES)}`,
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
