import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

const createdAt = () =>
  text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`);

/** One row per customer account. Balances live in the account's Durable Object, never here. */
export const accounts = sqliteTable("accounts", {
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
  createdAt: createdAt(),
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
  (t) => [index("api_keys_account_idx").on(t.accountId)],
);

export const transactionTypes = ["auto_recharge", "top_up", "monthly_grant", "adjustment"] as const;
export const transactionStatuses = ["pending", "succeeded", "failed"] as const;

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
    /** The card this purchase pays with, frozen at its creation: every retry sends the same. */
    paymentMethodId: text("payment_method_id"),
    failureCode: text("failure_code"),
    failureMessage: text("failure_message"),
    /** Set by the dead-letter consumer: the job ran out of retries and needs an operator. */
    needsAttention: integer("needs_attention", { mode: "boolean" }).notNull().default(false),
    createdAt: createdAt(),
    updatedAt: text("updated_at"),
  },
  (t) => [index("transactions_account_created_idx").on(t.accountId, t.createdAt, t.id)],
);

/** Every email we send, kept so support and local users can see what went out and why. */
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
  /** JSON {minute, monthly, purchased}: what the debit took (null before ledger v4). */
  charge: text("charge"),
  attempts: integer("attempts").notNull().default(0),
  lastError: text("last_error"),
  createdAt: createdAt(),
});
