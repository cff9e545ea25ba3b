/**
 * Secrets: `.dev.vars` locally, `wrangler secret put` in production. They are not in
 * wrangler.toml, so the generated types do not know them; all are optional on purpose (each
 * feature that needs one says so when it is missing).
 */
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
  /** The customer-portal configuration `npm run stripe:setup` made (else Stripe's default). */
  STRIPE_PORTAL_CONFIGURATION?: string;
  /**
   * Stripe Price ids of the credit packages (one-time prices). When set, a purchase's invoice
   * item bills that price; unset, it carries the package's amount and a description.
   */
  STRIPE_PRICE_CREDITS_1000?: string;
  STRIPE_PRICE_CREDITS_3000?: string;
  STRIPE_PRICE_CREDITS_9000?: string;
}

/**
 * The Worker's bindings: everything in wrangler.toml as `wrangler types` generates it
 * (worker-configuration.d.ts; run `npm run cf-typegen` after changing wrangler.toml), plus the
 * secrets and what wrangler.toml leaves unset on purpose, each optional and said why below.
 */
export type Bindings = Omit<Cloudflare.Env, keyof Secrets> &
  Secrets & {
    /** Service binding to the upstream classifier, preferred over UPSTREAM_URL: per deployment. */
    UPSTREAM?: Fetcher;
    /** Sign-up emails per hour from everyone together; unset: the code's default (500). */
    SIGNUP_EMAILS_PER_HOUR?: string;
    /**
     * Cloudflare Access in front of /admin: the team's domain (`<team>.cloudflareaccess.com`)
     * and the application's audience tag. Both set: a `Cf-Access-Jwt-Assertion` names the
     * operator (src/accounts/access-jwt.ts). Per deployment, so not in wrangler.toml's [vars].
     */
    ACCESS_TEAM_DOMAIN?: string;
    ACCESS_AUD?: string;
    /**
     * Where the team's signing keys are read; unset: `https://<ACCESS_TEAM_DOMAIN>/cdn-cgi/access/certs`.
     * Tests point it at a key server of their own.
     */
    ACCESS_CERTS_URL?: string;
    /** Where operator alerts are emailed (the sign-up ceiling reached); unset: logs only. */
    OPERATOR_EMAIL?: string;
    /**
     * How far the gateway's and a ledger object's clocks may differ, in ms; unset: the code's
     * default (1000; src/ledger/domain/recent-debits.ts). Tests set 0: their clocks are one.
     */
    LEDGER_CLOCK_MARGIN_MS?: string;
    /**
     * `"off"`: one write per debit (the bench's A/B); `"microtask"`: a batch flushed at the end
     * of the current turn; unset: group commit flushed by `setTimeout(0)`
     * (src/ledger/domain/group-commit.ts).
     */
    LEDGER_GROUP_COMMIT?: string;
    /**
     * `"off"`: each proxied request makes its own debit call (the bench's A/B); unset: an
     * isolate's debits of one account share calls (src/gateway/debit-lanes.ts).
     */
    DEBIT_COALESCING?: string;
    /**
     * How long (whole ms, 0–50; unset: 1) a request handed an account's lane waits for more
     * debits before it sends them (src/gateway/debit-lanes.ts); `"0"` sends at once.
     */
    DEBIT_LANE_HOLD_MS?: string;
    /**
     * Tests only: `"true"` lets a test move a ledger object's clock (`testSetClock`). Set by
     * vitest.config.ts; never in wrangler.toml or production.
     */
    LEDGER_TEST_CLOCK?: string;
  };
