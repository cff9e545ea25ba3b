/**
 * Every refusal a person or client can meet, in one table: its error type (and so its HTTP
 * status, see `STATUS` in ./errors), the API's default message, and the Billing page's words.
 * The JSON envelope (`refusal`) and the page (`pageWords`) both read from it, so the API and
 * the page never say two different things about one refusal.
 */
import { ApiError, type ErrorType, statusOf } from "./errors";

/**
 * Every reason the account ledger's methods refuse a change for (they return these, never throw
 * them). The platform cannot import the ledger; test/unit/refusals.test.ts checks, against the
 * compiler's view of every ledger method, that this list is complete.
 */
export type LedgerRefusal =
  | "insufficient_credits"
  | "rate_limited"
  | "key_revoked"
  | "not_initialized"
  | "not_found"
  | "unknown_recharge"
  | "idempotency_conflict"
  | "payment_method_required"
  | "spending_limit_reached"
  | "payment_pending"
  | "already_succeeded"
  | "credits_mismatch"
  | "outcome_unknown"
  /** An API key asked to raise the spending limit: only a person may (money rule 11). */
  | "session_required"
  | "account_suspended";

/** Refusals that do not come from the ledger: Checkout's and the API keys'. */
type OtherRefusal =
  | "subscription_exists"
  | "plan_not_configured"
  | "key_not_found"
  | "key_limit_reached"
  | "last_full_key"
  /** An account's hourly limit on an action (creating keys, Checkout, top-ups): action-limits. */
  | "action_rate_limited"
  /** A production gateway with an unsafe configuration (platform/config.ts): serves nothing. */
  | "misconfigured"
  /** A person's role does not allow the change (../accounts/roles). */
  | "insufficient_role"
  | "member_not_found"
  | "member_exists"
  /** Demoting or removing the account's last active owner. */
  | "last_owner"
  | "webhook_not_found"
  | "webhook_limit_reached";

export type RefusalType = LedgerRefusal | OtherRefusal;

/** What the Billing page says: an error page's title, or a notice's sentence and next step. */
export interface PageWords {
  title: string;
  /** The sentence a person reads. */
  text: string;
  /** What they can do about it, where there is something ("Add a card …"). */
  action?: string;
  /** `warn`: nothing is wrong, only not yet (a payment waits); `bad` otherwise. */
  tone?: "warn";
}

interface RefusalEntry {
  type: ErrorType;
  message: string;
  headers?: Record<string, string>;
  page: PageWords;
}

const NO_ACCOUNT: RefusalEntry = {
  type: "not_found",
  message: "No such account.",
  page: { title: "No such account", text: "This account no longer exists." },
};
const NOT_FOUND: RefusalEntry = {
  type: "not_found",
  message: "The requested resource does not exist.",
  page: { title: "Not found", text: "That does not exist on this account." },
};
// Only a bug reaches these: the client is told nothing it could act on.
const OUR_FAULT: RefusalEntry = {
  type: "internal_error",
  message: "Something went wrong on our side.",
  page: { title: "Something went wrong", text: "Something went wrong on our side." },
};

export const REFUSALS = {
  insufficient_credits: {
    type: "insufficient_credits",
    message: "Your credit balance is too low for this request.",
    page: {
      title: "Not enough credits",
      text: "Your credit balance is too low for this.",
      action: "Buy credits, or turn on auto-recharge.",
    },
  },
  account_suspended: {
    type: "account_suspended",
    message:
      "This account is suspended: requests are not served and nothing can be bought until an operator lifts it.",
    page: {
      title: "Account suspended",
      text: "This account is suspended: API requests are refused and nothing can be bought.",
      action: "Write to support to have it lifted.",
    },
  },
  rate_limited: {
    type: "rate_limited",
    message: "Too many requests; slow down.",
    page: { title: "Too many requests", text: "Too many requests; slow down." },
  },
  key_revoked: {
    type: "invalid_api_key",
    message: "A valid API key is required.",
    headers: { "WWW-Authenticate": "Bearer" },
    page: {
      title: "Key revoked",
      text: "This API key was revoked.",
      action: "Sign in with another key.",
    },
  },
  not_initialized: NO_ACCOUNT,
  not_found: NOT_FOUND,
  unknown_recharge: NOT_FOUND,
  idempotency_conflict: {
    type: "idempotency_conflict",
    message: "This Idempotency-Key was already used with a different request.",
    page: {
      title: "Already used",
      text: "That confirmation was already used for another purchase.",
      action: "Start again.",
    },
  },
  payment_method_required: {
    type: "payment_method_required",
    message: "Add a payment method before buying credits or enabling auto-recharge.",
    page: {
      title: "Add a payment method first",
      text: "Add a payment method first: buying credits, now or by auto-recharge, needs a card on file.",
      action: "Add one with “Add a card” (under Plan and payment), then try again.",
    },
  },
  spending_limit_reached: {
    type: "spending_limit_reached",
    message: "This purchase would take this month's purchases over the account's spending limit.",
    page: {
      title: "Over the spending limit",
      text: "Not bought: this purchase would take this month's purchases over your spending limit.",
      action: "Raise the limit to buy it.",
    },
  },
  payment_pending: {
    type: "payment_pending",
    message:
      "A purchase is waiting for you to confirm the payment with your bank: complete it (see action_url) before buying more credits.",
    page: {
      title: "A payment is waiting",
      text: "Not bought: a payment is waiting for your confirmation.",
      action: "Complete it first; its credits are added as soon as it is paid.",
      tone: "warn",
    },
  },
  already_succeeded: {
    type: "conflict",
    message: "This purchase has already succeeded.",
    page: { title: "Already paid", text: "This purchase has already succeeded." },
  },
  // The ledger was asked to grant other credits than the purchase was for.
  credits_mismatch: OUR_FAULT,
  // A refund of a debit whose reply was lost before a restart: settled by the reconciler.
  outcome_unknown: OUR_FAULT,
  subscription_exists: {
    type: "subscription_exists",
    message: "This account already has a live subscription; change it in the billing portal.",
    page: {
      title: "Already subscribed",
      text: "This account already has a subscription.",
      action: "Change it with “Manage plan and billing”.",
    },
  },
  plan_not_configured: {
    type: "service_unavailable",
    message: "This plan's Stripe Price is not configured.",
    page: {
      title: "Not available",
      text: "Plans cannot be bought right now (the plan's price is not configured).",
    },
  },
  key_not_found: {
    type: "not_found",
    message: "No such API key.",
    page: { title: "No such API key", text: "That key does not exist on this account." },
  },
  key_limit_reached: {
    type: "limit_reached",
    message: "An account can have at most 20 active keys; revoke one first.",
    page: {
      title: "Too many keys",
      text: "An account can have at most 20 active keys.",
      action: "Revoke one first.",
    },
  },
  last_full_key: {
    type: "conflict",
    message:
      "This is the account's last active key with full scope; create another full key before revoking it.",
    page: {
      title: "Last full key",
      text: "This is the account's last active key with full scope.",
      action: "Create another full key before revoking it.",
    },
  },
  action_rate_limited: {
    type: "rate_limited",
    message: "Too many of these requests for this account; try again later.",
    page: {
      title: "Too many requests",
      text: "Too many of these requests for this account in the last hour.",
      action: "Try again later.",
    },
  },
  misconfigured: {
    type: "misconfigured",
    message:
      "This gateway is not configured safely for production, so it serves nothing; its operator can see why at GET /healthz.",
    headers: { "Retry-After": "300" },
    page: {
      title: "Temporarily unavailable",
      text: "This service is not available right now.",
      action: "Try again later.",
    },
  },
  session_required: {
    type: "session_required",
    message:
      "An API key cannot do this: sign in to the Billing page as a person whose role allows it (raising the spending limit, managing members).",
    page: {
      title: "Sign in as a person",
      text: "This needs a person signed in, not an API key.",
    },
  },
  insufficient_role: {
    type: "insufficient_role",
    message: "Your role on this account does not allow this; ask an owner.",
    page: {
      title: "Not allowed for your role",
      text: "Your role on this account does not allow this.",
      action: "Ask an owner of the account.",
    },
  },
  member_not_found: {
    type: "not_found",
    message: "No such member.",
    page: { title: "No such member", text: "That person is not a member of this account." },
  },
  member_exists: {
    type: "conflict",
    message: "This address is already a member of the account, or invited to it.",
    page: {
      title: "Already a member",
      text: "This address is already a member of the account, or invited to it.",
    },
  },
  last_owner: {
    type: "conflict",
    message:
      "This is the account's last owner; make another member an owner before demoting or removing them.",
    page: {
      title: "Last owner",
      text: "This is the account's last owner.",
      action: "Make another member an owner first.",
    },
  },
  webhook_not_found: {
    type: "not_found",
    message: "No such webhook endpoint.",
    page: {
      title: "No such webhook endpoint",
      text: "That endpoint does not exist on this account.",
    },
  },
  webhook_limit_reached: {
    type: "limit_reached",
    message: "An account can have at most 5 webhook endpoints; delete one first.",
    page: {
      title: "Too many webhook endpoints",
      text: "An account can have at most 5 webhook endpoints.",
      action: "Delete one first.",
    },
  },
} as const satisfies Record<RefusalType, RefusalEntry>;

type ErrorOptions = NonNullable<ConstructorParameters<typeof ApiError>[2]>;

/**
 * The contract's error for a refusal: the one place routes turn a `reason` into the envelope.
 * `message` only where a route knows more than the table (an admin adjustment's own words).
 */
export function refusal(
  reason: RefusalType,
  options: ErrorOptions & { message?: string } = {},
): ApiError {
  const entry: RefusalEntry = REFUSALS[reason];
  const { message, ...rest } = options;
  return new ApiError(entry.type, message ?? entry.message, {
    ...rest,
    headers: { ...entry.headers, ...rest.headers },
  });
}

/** The HTTP status a refusal answers with, on the API and on the page alike. */
export function refusalStatus(reason: RefusalType) {
  return statusOf(REFUSALS[reason].type);
}

/** The page's words for a refusal. */
export function pageWords(reason: RefusalType): PageWords {
  return REFUSALS[reason].page;
}
