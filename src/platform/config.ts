/**
 * Is this deployment's configuration safe to serve customers with? Only production is judged:
 * local mode and the tests run on 127.0.0.1 with test secrets on purpose. A production gateway
 * with a problem serves nothing but a 503 that names it (src/app.ts), because a half-working
 * one charges cards and then fails the request upstream, or emails links to 127.0.0.1.
 */

/** What `configProblems` reads: vars, secrets and the email binding, all as they may be unset. */
export interface ConfigInput {
  ENVIRONMENT?: string;
  UPSTREAM_URL?: string;
  /** A service binding to the upstream replaces UPSTREAM_URL's host. */
  UPSTREAM?: unknown;
  DASHBOARD_URL?: string;
  STRIPE_API_URL?: string;
  STRIPE_SECRET_KEY?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  SESSION_SECRET?: string;
  ADMIN_TOKEN?: string;
  EMAIL?: unknown;
  EMAIL_FROM?: string;
  SUPPORT_EMAIL?: string;
  SIGNUP_STORE_LINKS?: string;
  LEDGER_TEST_CLOCK?: string;
}

export function isProduction(env: Pick<ConfigInput, "ENVIRONMENT">): boolean {
  return env.ENVIRONMENT === "production";
}

/**
 * A host nobody outside this machine reaches: localhost, 127.0.0.0/8, ::1, 0.0.0.0 and the
 * names reserved for documentation and tests (RFC 2606/6761: example.com, *.example, *.test,
 * *.invalid, *.localhost), which is what wrangler.toml's production placeholders use.
 */
export function isLocalOrPlaceholderHost(hostname: string): boolean {
  const host = hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.$/, "");
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (/^127(\.\d{1,3}){3}$/.test(host) || host === "0.0.0.0") return true;
  if (host === "::1" || host === "::" || /^(0{1,4}:){7}0{0,3}1$/.test(host)) return true;
  if (host.startsWith("::ffff:127.") || host.startsWith("::ffff:7f")) return true;
  if (/(^|\.)example\.(com|net|org)$/.test(host)) return true;
  return /\.(example|test|invalid)$/.test(host) || ["example", "test", "invalid"].includes(host);
}

/** The var's problem as a URL a customer or Stripe must reach, or null when it is fine. */
function urlProblem(name: string, value: string | undefined, required: boolean): string | null {
  if (value === undefined || value.trim() === "") {
    return required ? `${name} is not set` : null;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${name} is not a URL`;
  }
  if (isLocalOrPlaceholderHost(url.hostname)) {
    return `${name} names a local or placeholder host (${url.hostname})`;
  }
  if (url.protocol !== "https:") return `${name} is not https`;
  return null;
}

function addressProblem(name: string, value: string | undefined): string | null {
  if (value === undefined || value.trim() === "") return `${name} is not set`;
  const domain = value.trim().split("@")[1];
  if (!domain) return `${name} is not an email address`;
  if (isLocalOrPlaceholderHost(domain)) {
    return `${name} is on a local or placeholder domain (${domain})`;
  }
  return null;
}

const missing = (value: string | undefined) => value === undefined || value.trim() === "";

/**
 * Everything unsafe about a production configuration, one sentence each naming the var (never
 * its value: /healthz is public); empty when it is safe, and always empty in local mode.
 */
export function configProblems(env: ConfigInput): string[] {
  // A misspelt environment must not switch the check off: only unset and "local" skip it.
  const environment = env.ENVIRONMENT ?? "local";
  if (environment !== "local" && environment !== "production") {
    return ['ENVIRONMENT is neither "local" nor "production"'];
  }
  if (!isProduction(env)) return [];
  const problems: (string | null)[] = [
    // With a service binding the URL only gives the path's base; its host is not dialled.
    env.UPSTREAM ? null : urlProblem("UPSTREAM_URL", env.UPSTREAM_URL, true),
    urlProblem("DASHBOARD_URL", env.DASHBOARD_URL, true),
    // Unset means Stripe itself; set, it must not be the local Stripe-compatible server.
    urlProblem("STRIPE_API_URL", env.STRIPE_API_URL, false),
  ];
  for (const secret of ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SESSION_SECRET"] as const) {
    if (missing(env[secret])) problems.push(`the secret ${secret} is not set`);
  }
  if (env.ADMIN_TOKEN === "dev-admin-token") {
    problems.push("ADMIN_TOKEN is the local default (dev-admin-token)");
  }
  if (!env.EMAIL) problems.push("no email sender: the EMAIL (send_email) binding is missing");
  problems.push(addressProblem("EMAIL_FROM", env.EMAIL_FROM));
  if (!missing(env.SUPPORT_EMAIL))
    problems.push(addressProblem("SUPPORT_EMAIL", env.SUPPORT_EMAIL));
  if (env.SIGNUP_STORE_LINKS === "true") {
    problems.push("SIGNUP_STORE_LINKS is on (local development only: it stores sign-in links)");
  }
  if (env.LEDGER_TEST_CLOCK === "true") {
    problems.push("LEDGER_TEST_CLOCK is on (tests only: it lets a caller move ledger clocks)");
  }
  return problems.filter((p): p is string => p !== null);
}

const checked = new WeakMap<object, readonly string[]>();

/**
 * `configProblems` once per env object: the bindings an isolate is given do not change while
 * it lives, so the hot path pays one WeakMap lookup, not a parse of three URLs.
 */
export function configProblemsOnce(env: ConfigInput): readonly string[] {
  let found = checked.get(env);
  if (!found) {
    found = Object.freeze(configProblems(env));
    checked.set(env, found);
  }
  return found;
}
