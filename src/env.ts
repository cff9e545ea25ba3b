import type { DrizzleD1Database } from "drizzle-orm/d1";
import type * as schema from "./db/schema";
import type { AccountLedger } from "./ledger/account-ledger";

/** Secrets: `.dev.vars` locally, `wrangler secret put` in production. All optional on purpose. */
export interface Secrets {
  ADMIN_TOKEN?: string;
  STRIPE_SECRET_KEY?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  /** Where the Stripe SDK sends requests (a local Stripe-compatible server); unset = Stripe. */
  STRIPE_API_URL?: string;
  /** Sent to the upstream as `Authorization: Bearer …` when set. */
  UPSTREAM_TOKEN?: string;
  /** Signs dashboard session cookies; falls back to a key derived from ADMIN_TOKEN. */
  SESSION_SECRET?: string;
  STRIPE_PRICE_STARTER?: string;
  STRIPE_PRICE_PRO?: string;
}

export type Bindings = Omit<
  Cloudflare.Env,
  "ACCOUNT_LEDGER" | keyof Secrets | "UPSTREAM_URL" | "UPSTREAM_TIMEOUT_MS"
> &
  Secrets & {
    ACCOUNT_LEDGER: DurableObjectNamespace<AccountLedger>;
    UPSTREAM_URL: string;
    UPSTREAM_TIMEOUT_MS: string;
    /** Optional service binding to the upstream classifier; preferred over UPSTREAM_URL. */
    UPSTREAM?: Fetcher;
  };

export type Db = DrizzleD1Database<typeof schema>;

export interface Variables {
  requestId: string;
  db: Db;
  /** Set by the auth middleware on every authenticated route. */
  accountId: string;
  apiKeyId: string;
  /** True once a response comes from the upstream: its headers pass through unchanged. */
  proxied: boolean;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}
