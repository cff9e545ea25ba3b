import { createMiddleware } from "hono/factory";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../../http/context";
import { sha256Base64 } from "../../platform/crypto";
import type { Bindings } from "../../platform/env";
import { STYLES } from "./styles";

/**
 * The page's only script: the "Copy key" button next to a new key. The page works without it
 * (the key is shown whole in a read-only field, selectable by hand), so the button starts
 * `hidden` and this script shows it. Allowed by its hash, like the stylesheet.
 */
export const COPY_SCRIPT = `for(const b of document.querySelectorAll("button[data-copy]")){const f=document.getElementById(b.dataset.copy),s=document.getElementById(b.dataset.status);if(!f)continue;b.hidden=false;b.addEventListener("click",async()=>{const say=t=>{if(s)s.textContent=t};try{await navigator.clipboard.writeText(f.value);say("Copied to the clipboard.")}catch{f.focus();f.select();say(document.execCommand("copy")?"Copied to the clipboard.":"Press Ctrl+C (or ⌘C) to copy the selected key.")}})}`;

/**
 * The passkey forms' script (Billing page: "Add a passkey"; sign-in page: "Sign in with a
 * passkey"), inline and allowed by its hash like COPY_SCRIPT, so no library is served to the
 * browser: it reads the server's options (a `data-options` attribute, JSON from
 * @simplewebauthn/server), calls WebAuthn, and posts the credential's JSON in the form's
 * `response` field (a plain form post: the CSP allows no fetch). Without WebAuthn or script the
 * button stays hidden and email links work as before.
 */
export const PASSKEY_SCRIPT = `(()=>{const b=s=>Uint8Array.from(atob(s.replace(/-/g,"+").replace(/_/g,"/")),c=>c.charCodeAt(0)).buffer,u=a=>btoa(String.fromCharCode(...new Uint8Array(a))).replaceAll("+","-").replaceAll("/","_").replace(/=+$/,""),ids=l=>(l||[]).map(x=>({...x,id:b(x.id)}));for(const f of document.querySelectorAll("form[data-passkey]")){const btn=f.querySelector("button[data-passkey-start]"),say=f.querySelector("[data-passkey-status]");if(!btn||f.dataset.ready||!window.PublicKeyCredential||!navigator.credentials)continue;f.dataset.ready="1";btn.hidden=false;btn.addEventListener("click",async()=>{const o=JSON.parse(f.dataset.options),add=f.dataset.passkey==="register";try{let c,r;if(add){c=await navigator.credentials.create({publicKey:{...o,challenge:b(o.challenge),user:{...o.user,id:b(o.user.id)},excludeCredentials:ids(o.excludeCredentials)}});r={clientDataJSON:u(c.response.clientDataJSON),attestationObject:u(c.response.attestationObject),transports:c.response.getTransports?c.response.getTransports():[]}}else{c=await navigator.credentials.get({publicKey:{...o,challenge:b(o.challenge),allowCredentials:ids(o.allowCredentials)}});r={clientDataJSON:u(c.response.clientDataJSON),authenticatorData:u(c.response.authenticatorData),signature:u(c.response.signature),userHandle:c.response.userHandle?u(c.response.userHandle):undefined}}f.elements.response.value=JSON.stringify({id:c.id,rawId:u(c.rawId),type:c.type,clientExtensionResults:c.getClientExtensionResults(),authenticatorAttachment:c.authenticatorAttachment||undefined,response:r});if(say)say.textContent="Checking your passkey…";f.submit()}catch(e){if(say)say.textContent=add?"No passkey was added. You can try again.":"No passkey was used. Try again, or sign in by email."}})}})()`;

/** `'sha256-…'` of the inline stylesheet and scripts, computed once per isolate. */
let sources: Promise<{ script: string; style: string }> | null = null;
const sourceHashes = () => {
  sources ??= Promise.all([
    sha256Base64(COPY_SCRIPT),
    sha256Base64(PASSKEY_SCRIPT),
    sha256Base64(STYLES),
  ]).then(([copy, passkey, style]) => ({
    script: `'sha256-${copy}' 'sha256-${passkey}'`,
    style: `'sha256-${style}'`,
  }));
  return sources;
};
let hashed: { script: string; style: string } | null = null;

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

/**
 * Hono's `secureHeaders` sets the page's headers. The policy: the page loads nothing but
 * itself, two hashed scripts, one hashed stylesheet, inline SVG. Hono's CSP values are either
 * fixed or computed synchronously per request, so the two hashes (WebCrypto is async) are
 * computed once before the first page and read from there, and `form-action` from the request's
 * environment. Beyond what the page set by hand before (CSP, nosniff, no-referrer, DENY), Hono
 * adds its other defaults (COOP/CORP same-origin, Origin-Agent-Cluster, X-DNS-Prefetch-Control
 * and the like), all inert for a page that loads nothing from elsewhere, except HSTS: that one
 * stays off, as it binds the whole host (and with includeSubDomains its subdomains) to HTTPS
 * for months, which is the operator's decision at the edge, not this page's.
 */
const secureHeadersForPages = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: [() => hashed?.script ?? "'none'"],
    styleSrc: [() => hashed?.style ?? "'none'"],
    imgSrc: ["'self'", "data:"],
    formAction: ["'self'", (c) => portalOrigin(c.env ?? {})],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
  xFrameOptions: "DENY",
  referrerPolicy: "no-referrer",
  xContentTypeOptions: true,
  strictTransportSecurity: false,
});

/** Security headers on every response of the Billing page, errors and redirects included. */
export const pageSecurityHeaders = createMiddleware<AppEnv>(async (c, next) => {
  hashed ??= await sourceHashes();
  await secureHeadersForPages(c, next);
  // Balances, keys shown once and CSRF tokens must never be stored by a browser or proxy.
  c.res.headers.set("Cache-Control", "no-store");
});
