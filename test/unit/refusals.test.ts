import { describe, expect, it } from "vitest";
import type { CreateKeyResult, RevokeResult } from "../../src/accounts/keys";
import type { InviteResult, MemberChangeResult } from "../../src/accounts/members";
import { MAX_ACTIVE_KEYS } from "../../src/db/api-keys";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import ledgerSource from "../../src/ledger/account-ledger.ts?raw";
import typesSource from "../../src/ledger/domain/types.ts?raw";
import rechargesSource from "../../src/ledger/store/recharges.ts?raw";
import { ApiError, statusOf } from "../../src/platform/errors";
import {
  type LedgerRefusal,
  pageWords,
  REFUSALS,
  type RefusalType,
  refusal,
  refusalStatus,
} from "../../src/platform/refusals";
import type { CheckoutResult } from "../../src/subscriptions/checkout";

/** Every string literal a `reason:` field is typed or set to in a source file. */
function reasonsIn(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/\breason:\s*((?:\|?\s*"[a-z_]+"(?:\s*as const)?\s*)+)/g)) {
    for (const lit of (m[1] ?? "").matchAll(/"([a-z_]+)"/g)) found.add(lit[1] as string);
  }
  return [...found].sort();
}

// The compiler's view, checked by `npm run typecheck`: the reasons every ledger method returns
// (per method: one method's `unknown` in a union would swallow the others) are exactly
// LedgerRefusal, and Checkout's and the keys' are refusals too. A reason added to a result type
// without its table entry fails to compile here or in src/platform/refusals.ts.
type ReasonsOf<T> = Extract<T, { ok: false; reason: string }>["reason"];
type FromLedger = {
  [K in keyof AccountLedger]-?: AccountLedger[K] extends (...args: never[]) => infer R
    ? ReasonsOf<Awaited<R>>
    : never;
}[keyof AccountLedger];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const ledgerListed: Same<FromLedger, LedgerRefusal> = true;
const othersListed: [
  ReasonsOf<CheckoutResult | CreateKeyResult | RevokeResult | InviteResult | MemberChangeResult>,
] extends [RefusalType]
  ? true
  : false = true;

const LEDGER: Record<LedgerRefusal, true> = {
  account_suspended: true,
  already_succeeded: true,
  credits_mismatch: true,
  idempotency_conflict: true,
  insufficient_credits: true,
  key_revoked: true,
  not_found: true,
  not_initialized: true,
  outcome_unknown: true,
  payment_method_required: true,
  payment_pending: true,
  rate_limited: true,
  session_required: true,
  spending_limit_reached: true,
  unknown_recharge: true,
};

describe("the refusal table", () => {
  it("has an entry for every reason the ledger's result types can return", () => {
    const fromTypes = reasonsIn(typesSource);
    expect(fromTypes).toContain("payment_pending");
    const fromLedger = reasonsIn(`${typesSource}\n${ledgerSource}\n${rechargesSource}`);
    for (const reason of fromLedger) expect(Object.keys(REFUSALS)).toContain(reason);
    // The source and the compiler agree on what the ledger returns.
    expect(fromLedger).toEqual(Object.keys(LEDGER).sort());
    expect([ledgerListed, othersListed]).toEqual([true, true]);
  });

  it("gives every refusal an error type, a message and the page's words", () => {
    for (const [reason, entry] of Object.entries(REFUSALS)) {
      expect(statusOf(entry.type), reason).toBeGreaterThanOrEqual(400);
      expect(entry.message, reason).toMatch(/\.$/);
      expect(entry.page.title, reason).not.toBe("");
      expect(entry.page.text, reason).toMatch(/[.)]$/);
    }
    expect(REFUSALS.key_limit_reached.message).toContain(String(MAX_ACTIVE_KEYS));
  });

  it("the envelope reads the table: type, status, message; a route adds extra and headers", () => {
    const err = refusal("payment_pending", { extra: { purchase: { id: "rch_1" } } });
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(409);
    expect(err.toBody()).toEqual({
      error: {
        type: "payment_pending",
        message: REFUSALS.payment_pending.message,
        purchase: { id: "rch_1" },
      },
    });
    expect(refusal("key_revoked").headers).toEqual({ "WWW-Authenticate": "Bearer" });
    expect(refusal("action_rate_limited", { headers: { "Retry-After": "60" } }).headers).toEqual({
      "Retry-After": "60",
    });
  });

  it("keeps the statuses and messages the contract's tests know", () => {
    const seen: Array<[RefusalType, number, string]> = [
      ["insufficient_credits", 403, "insufficient_credits"],
      ["rate_limited", 429, "rate_limited"],
      ["key_revoked", 401, "invalid_api_key"],
      ["not_initialized", 404, "not_found"],
      ["payment_method_required", 409, "payment_method_required"],
      ["spending_limit_reached", 409, "spending_limit_reached"],
      ["idempotency_conflict", 409, "idempotency_conflict"],
      ["already_succeeded", 409, "conflict"],
      ["credits_mismatch", 500, "internal_error"],
      ["subscription_exists", 409, "subscription_exists"],
      ["plan_not_configured", 503, "service_unavailable"],
      ["key_limit_reached", 409, "limit_reached"],
      ["last_full_key", 409, "conflict"],
      ["key_not_found", 404, "not_found"],
      ["action_rate_limited", 429, "rate_limited"],
      ["misconfigured", 503, "misconfigured"],
    ];
    for (const [reason, status, type] of seen) {
      expect([reason, refusalStatus(reason), refusal(reason).type]).toEqual([reason, status, type]);
    }
    // An admin adjustment's own words and the contract's second status for the type.
    const adjusted = refusal("insufficient_credits", { message: "Below zero.", status: 409 });
    expect([adjusted.status, adjusted.message]).toEqual([409, "Below zero."]);
  });

  it("the page's words for a refusal with a next step", () => {
    expect(pageWords("payment_method_required").action).toContain("Add a card");
    expect(pageWords("payment_pending").tone).toBe("warn");
  });
});
