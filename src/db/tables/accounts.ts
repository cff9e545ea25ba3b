/** D1 tables of accounts, keys, money and notices (drizzle). */
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** When the row was made: ISO-8601 with milliseconds, in UTC, set by SQLite. */
export const createdAt = () =>
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
