import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const createdAt = () =>
  text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`);

/** One row per customer account. Balances live in the account's Durable Object, never here. */
export const accounts = sqliteTable(
  "accounts",
  {
    id: text("id").primaryKey(),
    email: text("email").notNull(),
    plan: text("plan", { enum: ["free", "starter", "pro"] })
      .notNull()
      .default("free"),
    testMode: integer("test_mode", { mode: "boolean" }).notNull().default(false),
    stripeCustomerId: text("stripe_customer_id").unique(),
    /** Stripe's id of the default payment method; null means none on file. */
    paymentMethodId: text("payment_method_id"),
    /** Latest subscription id and the event time that set the plan, so out-of-order events converge. */
    stripeSubscriptionId: text("stripe_subscription_id"),
    planUpdatedAt: integer("plan_updated_at").notNull().default(0),
    /** A paid plan without a Stripe subscription, granted by an operator; shown everywhere. */
    complimentary: integer("complimentary", { mode: "boolean" }).notNull().default(false),
    /** The subscription as Stripe last said (status, period end, cancel at period end). */
    subscriptionStatus: text("subscription_status"),
    subscriptionPeriodEnd: text("subscription_period_end"),
    subscriptionCancelAtPeriodEnd: integer("subscription_cancel_at_period_end", { mode: "boolean" })
      .notNull()
      .default(false),
    /**
     * The one subscription the account follows (money rule 9): set when a subscription of ours
     * first shows up (Checkout, its events or its first paid invoice), replaced only by a live one
     * once it is no longer live. Events of any other subscription are recorded
     * (`other_subscription_events`), never applied.
     */
    currentSubscriptionId: text("current_subscription_id"),
    /** The card on file, for display (brand, last four, expiry); null without one. */
    cardBrand: text("card_brand"),
    cardLast4: text("card_last4"),
    cardExpMonth: integer("card_exp_month"),
    cardExpYear: integer("card_exp_year"),
    /**
     * The mailbox `email` reaches (see `mailboxKey`: case, `+tag`, Gmail's dots): sign-up finds an
     * existing account by it through its index, so `+tag` variants cannot farm free accounts.
     */
    emailKey: text("email_key"),
    /**
     * An operator's suspension (ISO time and reason), mirrored from the account's ledger, which
     * decides with it: here for search, the console and the overview's count.
     */
    suspendedAt: text("suspended_at"),
    suspensionReason: text("suspension_reason"),
    /**
     * Escrow shards (docs/ledger-shards.md): how many objects the gateway spreads the account's
     * requests over, 1..16. 1 is the account's ledger alone (no shard object runs).
     */
    shards: integer("shards").notNull().default(1),
    createdAt: createdAt(),
  },
  (t) => [
    index("accounts_email_key_idx").on(t.emailKey),
    // The operators' search: an email prefix, case-insensitive, paged by (email, id).
    index("accounts_email_lower_idx").on(sql`lower(${t.email})`, t.id),
  ],
);

/**
 * Each account's balance as its ledger last projected it (the ledger's outbox writes it when
 * an entry or a checkpoint changes the balance, never per request), for the operators'
 * overview: the outstanding credits are a sum over this table, not a call to every ledger.
 * `version` only grows (the ledger's own counter), so a late delivery never overwrites a newer
 * one. `purchased_value_cents`: what the account paid for the purchased credits it still holds,
 * at its average price per purchased credit.
 */
export const accountBalances = sqliteTable("account_balances", {
  accountId: text("account_id").primaryKey(),
  monthly: integer("monthly").notNull(),
  purchased: integer("purchased").notNull(),
  purchasedValueCents: integer("purchased_value_cents").notNull(),
  version: integer("version").notNull(),
  updatedAt: text("updated_at").notNull(),
});

/** The reconciler's last run, one row (`id` 1): when it finished and what it found. */
export const reconcileRuns = sqliteTable("reconcile_runs", {
  id: integer("id").primaryKey(),
  finishedAt: text("finished_at").notNull(),
  checked: integer("checked").notNull(),
  attention: integer("attention").notNull(),
});

/** API keys: only the SHA-256 of a key is stored; prefix and last four are for display. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    keyHash: text("key_hash").notNull().unique(),
    prefix: text("prefix").notNull(),
    last4: text("last4").notNull(),
    name: text("name"),
    /** `full`: everything; `classify`: proxied traffic and the account's GET routes only. */
    scope: text("scope", { enum: ["full", "classify"] })
      .notNull()
      .default("full"),
    createdAt: createdAt(),
    revokedAt: text("revoked_at"),
  },
  // Newest first by (created_at, id): the listing's pages, and the hourly creation limit's count.
  (t) => [index("api_keys_account_created_idx").on(t.accountId, t.createdAt, t.id)],
);

export const transactionTypes = ["auto_recharge", "top_up", "monthly_grant", "adjustment"] as const;
/**
 * `requires_action`: the purchase's invoice is open and waits for the customer to authenticate
 * the payment on Stripe's hosted invoice page (`action_url`); nothing is granted until it is paid.
 */
export const transactionStatuses = ["pending", "requires_action", "succeeded", "failed"] as const;

/**
 * Customer-visible history. Purchases (auto_recharge, top_up) use the recharge id as their id,
 * so a redelivered queue message or a retried request can never add a second row.
 */
export const transactions = sqliteTable(
  "transactions",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    type: text("type", { enum: transactionTypes }).notNull(),
    status: text("status", { enum: transactionStatuses }).notNull(),
    credits: integer("credits").notNull(),
    amountCents: integer("amount_cents").notNull().default(0),
    currency: text("currency").notNull().default("usd"),
    package: text("package"),
    paymentIntentId: text("payment_intent_id").unique(),
    /**
     * The Stripe invoice of this row: a purchase's one-off invoice, or the paid subscription
     * invoice of a monthly grant. One invoice is one row.
     */
    invoiceId: text("invoice_id").unique(),
    /** Stripe's hosted invoice page (receipt and PDF). */
    invoiceUrl: text("invoice_url"),
    /** Where the customer completes a payment that needs authentication (while requires_action). */
    actionUrl: text("action_url"),
    /** The card this purchase pays with, frozen at its creation: every retry sends the same. */
    paymentMethodId: text("payment_method_id"),
    failureCode: text("failure_code"),
    failureMessage: text("failure_message"),
    /**
     * Why the balance changed when its type does not say it all: an operator adjustment's
     * reason (in the customer's words), "Upgrade to Pro".
     */
    description: text("description"),
    /** Set by the dead-letter consumer: the job ran out of retries and needs an operator. */
    needsAttention: integer("needs_attention", { mode: "boolean" }).notNull().default(false),
    createdAt: createdAt(),
    updatedAt: text("updated_at"),
  },
  (t) => [
    index("transactions_account_created_idx").on(t.accountId, t.createdAt, t.id),
    // The operators' overview: counts by status, this month's revenue, what needs attention.
    index("transactions_status_created_idx").on(t.status, t.createdAt),
    index("transactions_attention_idx")
      .on(t.needsAttention, t.status)
      .where(sql`${t.needsAttention} = 1`),
  ],
);

/**
 * Every email we send, kept so support and local users can see what went out and why; a
 * sign-up link's token is stored redacted, and sign-up emails are deleted after 30 minutes.
 */
export const emails = sqliteTable(
  "emails",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    /** Natural key of the event the email reports, e.g. `recharge_succeeded:rch_…`. */
    ref: text("ref").notNull().unique(),
    kind: text("kind").notNull(),
    toAddress: text("to_address").notNull(),
    subject: text("subject").notNull(),
    textBody: text("text_body").notNull(),
    /** `sending`: claimed by one sender (at `claimed_at`); nobody else sends it meanwhile. */
    status: text("status", { enum: ["pending", "sending", "sent", "failed"] })
      .notNull()
      .default("pending"),
    claimedAt: text("claimed_at"),
    error: text("error"),
    createdAt: createdAt(),
    sentAt: text("sent_at"),
  },
  (t) => [index("emails_account_idx").on(t.accountId, t.createdAt)],
);

/**
 * Events of a subscription that is not the account's current one (a duplicate from a Checkout
 * race, an old one ended after a re-subscription): recorded for operators, never applied.
 */
export const otherSubscriptionEvents = sqliteTable(
  "other_subscription_events",
  {
    eventId: text("event_id").primaryKey(),
    accountId: text("account_id").notNull(),
    subscriptionId: text("subscription_id").notNull(),
    eventType: text("event_type").notNull(),
    /** The subscription's status in the event (null for an invoice). */
    status: text("status"),
    /** What happened because of it, e.g. "recorded", "cancelled and refunded". */
    action: text("action").notNull(),
    /** The event's time (Stripe's `created`), ISO. */
    at: text("at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("other_subscription_events_account_idx").on(t.accountId, t.at)],
);

/** Stripe webhook events already processed, for idempotency by event id. */
export const webhookEvents = sqliteTable("webhook_events", {
  id: text("id").primaryKey(),
  type: text("type").notNull(),
  receivedAt: createdAt(),
});

/**
 * Refunds of failed upstream calls that could not reach the account's Durable Object at once
 * and also could not be queued, or ran out of queue retries: the reconciler applies them
 * (each is idempotent in the ledger by its debit) and deletes the row.
 */
export const pendingRefunds = sqliteTable("pending_refunds", {
  debitRef: text("debit_ref").primaryKey(),
  accountId: text("account_id").notNull(),
  /** JSON {minute, monthly, purchased}: what the debit took; null only with `sentAt`. */
  charge: text("charge"),
  /**
   * With no charge: a debit whose reply was lost, sent at this time (ms, the gateway's clock);
   * the ledger decides from it whether the debit committed (src/ledger/domain/recent-debits.ts).
   * A row with neither names nothing to give back: the reconciler reports it, never applies it.
   */
  sentAt: integer("sent_at"),
  attempts: integer("attempts").notNull().default(0),
  lastError: text("last_error"),
  createdAt: createdAt(),
});

export const roles = ["owner", "billing", "developer", "viewer"] as const;

/**
 * The people of an account (contract: "People, roles and sign-in"). A person is their mailbox
 * (`email_key`, as `accounts.email_key`): one person may be a member of several accounts, once
 * in each. `session_epoch` ends every session of the member when raised ("sign out
 * everywhere", removal, role change are read fresh on each request anyway).
 */
export const members = sqliteTable(
  "members",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    email: text("email").notNull(),
    emailKey: text("email_key").notNull(),
    role: text("role", { enum: roles }).notNull(),
    /** `invited`: asked by email, not accepted yet; cannot sign in. */
    status: text("status", { enum: ["active", "invited"] })
      .notNull()
      .default("active"),
    sessionEpoch: integer("session_epoch").notNull().default(0),
    createdAt: createdAt(),
    lastSignInAt: text("last_sign_in_at"),
  },
  (t) => [
    uniqueIndex("members_account_email_key_idx").on(t.accountId, t.emailKey),
    index("members_email_key_idx").on(t.emailKey),
  ],
);

/**
 * Sign-up links. Only the SHA-256 of a link's token is kept; the rows also serve as the
 * sign-up rate limit's counter (per client address hash and per email, over the last hour).
 */
export const signupTokens = sqliteTable(
  "signup_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    /** Normalized (trimmed, lowercase): where the link goes. */
    email: text("email").notNull(),
    /** The mailbox (`mailboxKey`): what the per-address limit counts. */
    emailKey: text("email_key").notNull().default(""),
    /** Keyed SHA-256 of the client's address (IPv6: its /64), never the address itself. */
    clientHash: text("client_hash").notNull(),
    /** Keyed SHA-256 of the network around it (IPv4 /24, IPv6 /48). */
    clientNetHash: text("client_net_hash").notNull().default(""),
    createdAt: text("created_at").notNull(),
    expiresAt: text("expires_at").notNull(),
    /** Set when the link is consumed; set at once for a request that emailed no link. */
    usedAt: text("used_at"),
    /**
     * What the link does: create an account (`signup`), sign a member in (`sign_in`), or accept
     * an invitation (`invite`, with the account and the invited member row). One table, one
     * token mechanism and one set of limits for all three. `passkey_sign_in`: the account
     * choice after a passkey sign-in (never emailed; minutes long).
     */
    purpose: text("purpose", { enum: ["signup", "sign_in", "invite", "passkey_sign_in"] })
      .notNull()
      .default("signup"),
    accountId: text("account_id"),
    memberId: text("member_id"),
  },
  (t) => [
    index("signup_tokens_client_idx").on(t.clientHash, t.createdAt),
    index("signup_tokens_email_idx").on(t.email, t.createdAt),
    index("signup_tokens_email_key_idx").on(t.emailKey, t.createdAt),
    index("signup_tokens_net_idx").on(t.clientNetHash, t.createdAt),
    index("signup_tokens_created_idx").on(t.createdAt),
    // The purge deletes by expiry (an invitation lives a week, a sign-up link half an hour).
    index("signup_tokens_expires_idx").on(t.expiresAt),
  ],
);

/**
 * Account actions that call Stripe or send email (Checkout, the billing portal, top-ups, alert
 * settings): the rows of the last hour are each action's per-account rate limit counter, as
 * `signup_tokens` is sign-up's. Older rows of an account's action are deleted as it acts again.
 */
export const accountActions = sqliteTable(
  "account_actions",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    action: text("action").notNull(),
    createdAt: text("created_at").notNull(),
  },
  (t) => [index("account_actions_idx").on(t.accountId, t.action, t.createdAt)],
);

export const auditActorTypes = ["person", "api_key", "operator", "system"] as const;

/**
 * The audit log (money rule 12): one row per change a person, a key, an operator or the system
 * made to an account's money, access or settings; `account_id` null for an operator action on
 * no one account. Written by the routes and the places that decide, never on the proxied path.
 * Both indexes are ascending: pages are read newest first (`at DESC, id DESC`), which SQLite
 * walks backwards through them; a mixed `at DESC, id` index could not serve that order.
 */
export const auditLog = sqliteTable(
  "audit_log",
  {
    /** Sorts by time (see `newAuditId`), so entries of one millisecond keep their order. */
    id: text("id").primaryKey(),
    accountId: text("account_id"),
    at: text("at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`),
    actorType: text("actor_type", { enum: auditActorTypes }).notNull(),
    actorId: text("actor_id").notNull(),
    /** What a reader sees: an email, a key's prefix and last four, "admin token", "Stripe". */
    actorLabel: text("actor_label").notNull(),
    /** A dotted verb: `key.created`, `limits.updated`, `plan.changed`. */
    action: text("action").notNull(),
    /** JSON object: what changed, e.g. the new settings, an adjustment's amounts and reason. */
    details: text("details").notNull().default("{}"),
    /**
     * `<action>:<what it acted on>` (a recharge id, an adjustment's ref) for a change that may be
     * recorded more than once (a replay, a retry): unique, so it is one row. Null otherwise.
     */
    ref: text("ref").unique(),
  },
  (t) => [
    index("audit_log_account_idx").on(t.accountId, t.at, t.id),
    // `GET /admin/audit-log`: every operator action, whatever the account.
    index("audit_log_actor_idx").on(t.actorType, t.at, t.id),
  ],
);

/**
 * Customers' webhook endpoints (contract: "Webhooks to customers"), at most 5 per account.
 * `secret_sealed`: the signing secret (`whsec_…`) sealed with AES-256-GCM under a key derived
 * from SESSION_SECRET (src/delivery/webhook-secrets.ts), bound to the endpoint id: it must be readable
 * to sign, so it cannot be hashed, and a copy of D1 alone does not reveal it.
 */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    url: text("url").notNull(),
    /** JSON array of event types; null: every event. */
    events: text("events"),
    secretSealed: text("secret_sealed").notNull(),
    createdAt: createdAt(),
    disabledAt: text("disabled_at"),
  },
  (t) => [index("webhook_endpoints_account_idx").on(t.accountId, t.createdAt)],
);

/**
 * One row per event and endpoint; its id is the `webhook-id` header, the same on every attempt
 * so the customer can deduplicate. Written by the outbox's fan-out, updated by the queue.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    endpointId: text("endpoint_id").notNull(),
    accountId: text("account_id").notNull(),
    eventType: text("event_type").notNull(),
    /** The exact JSON body signed and sent. */
    payload: text("payload").notNull(),
    status: text("status", { enum: ["pending", "succeeded", "failed"] })
      .notNull()
      .default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    nextAttemptAt: text("next_attempt_at"),
    createdAt: createdAt(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [index("webhook_deliveries_endpoint_idx").on(t.endpointId, t.createdAt)],
);

/**
 * Passkeys (WebAuthn credentials): they belong to a person (`email_key`, as `members.email_key`)
 * across accounts, as an emailed sign-in link does; which accounts that person may open is read
 * from `members` at each sign-in. `public_key` is the COSE key, base64url.
 */
export const passkeys = sqliteTable(
  "passkeys",
  {
    /** The credential id, base64url, as the authenticator gave it. */
    id: text("id").primaryKey(),
    emailKey: text("email_key").notNull(),
    publicKey: text("public_key").notNull(),
    counter: integer("counter").notNull().default(0),
    /** JSON array of the transports the browser reported (`["internal","hybrid"]`). */
    transports: text("transports").notNull().default("[]"),
    createdAt: createdAt(),
    lastUsedAt: text("last_used_at"),
  },
  (t) => [index("passkeys_email_key_idx").on(t.emailKey)],
);

/**
 * WebAuthn challenges, single-use and minutes long: only their SHA-256 is kept, with what they
 * were issued for (`register` names its person; `authenticate` names none). A challenge is
 * deleted by the statement that uses it.
 */
export const passkeyChallenges = sqliteTable(
  "passkey_challenges",
  {
    challengeHash: text("challenge_hash").primaryKey(),
    purpose: text("purpose", { enum: ["register", "authenticate"] }).notNull(),
    emailKey: text("email_key"),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [index("passkey_challenges_expires_idx").on(t.expiresAt)],
);
