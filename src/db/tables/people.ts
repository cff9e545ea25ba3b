/**
 * D1 tables of people and what they do (drizzle): members, emailed links, the audit log,
 * customers' webhook endpoints, passkeys.
 */
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { accounts, createdAt } from "./accounts";

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
