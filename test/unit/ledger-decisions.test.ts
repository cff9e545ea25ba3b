/**
 * The ledger's pure decisions (src/ledger/domain/decisions.ts), table-driven: each row is a
 * state, the facts or memory the shell gives, a command and the time, and what must be decided.
 */
import { describe, expect, it } from "vitest";
import {
  type AdjustDecision,
  type AutoRechargeDecision,
  decideAdjust,
  decideAutoRecharge,
  decideGrantPurchased,
  decideLimits,
  decidePlanChange,
  decideRefund,
  decideTopUp,
  type GrantPurchasedDecision,
  nextRechargeStatus,
  type PlanChangeDecision,
  type RechargeEvent,
  type RechargeTransition,
  type RefundDecision,
  raisesSpendLimit,
  type TopUpDecision,
} from "../../src/ledger/domain/commands";
import {
  type DebitDecision,
  type DebitState,
  decideDebit,
  decideRecharge,
  type RechargeDecision,
  type RechargeState,
} from "../../src/ledger/domain/decisions";
import type { RateWindow } from "../../src/ledger/domain/rate-window";
import type { UnansweredDebit } from "../../src/ledger/domain/recent-debits";
import type { Buckets } from "../../src/ledger/domain/rules";
import { DAY_SECONDS, minuteOf } from "../../src/ledger/domain/rules";
import type { DebitCharge, RechargeStatus, RechargeView } from "../../src/ledger/domain/types";
import type { PackageId } from "../../src/pricing";

const NOW = Date.UTC(2026, 5, 15, 12, 30, 15);
const THIS_MONTH = Date.UTC(2026, 5, 1);
const LAST_MONTH = Date.UTC(2026, 4, 1);
const NEXT_MONTH = Date.UTC(2026, 6, 1);

// ---------------------------------------------------------------- decideRecharge

type RechargeRow = {
  name: string;
  s: Partial<RechargeState>;
  pending?: boolean;
  spent?: number;
  now?: number;
  expect: RechargeDecision;
  /** The facts the rule looked at, in order (the shell reads each on access). */
  reads: Array<"pending" | "spent">;
};

const rechargeState = (s: Partial<RechargeState>): RechargeState => ({
  monthly: 0,
  purchased: 50,
  auto_enabled: 1,
  auto_package: "credits_1000",
  paused_period: null,
  spend_limit_cents: 20_000,
  suspended_at: null,
  ...s,
});

const start = (pkg: string, clearPause = false): RechargeDecision =>
  ({ kind: "start", package: pkg, clearPause }) as RechargeDecision;
const NONE: RechargeDecision = { kind: "none" };
const PAUSE: RechargeDecision = { kind: "pause", resumesAt: NEXT_MONTH };

const rechargeRows: RechargeRow[] = [
  // The threshold: at or below 100 (the total of both buckets) fires, above it never does.
  {
    name: "total 50, enabled: starts",
    s: {},
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "total exactly 100: starts",
    s: { monthly: 60, purchased: 40 },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "suspended: none, reads nothing",
    s: { suspended_at: NOW - 1_000 },
    expect: NONE,
    reads: [],
  },
  {
    name: "total 101: none, reads nothing",
    s: { monthly: 101, purchased: 0 },
    expect: NONE,
    reads: [],
  },
  {
    name: "total 100 all monthly: starts",
    s: { monthly: 100, purchased: 0 },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "total 100 all purchased: starts",
    s: { monthly: 0, purchased: 100 },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "total 0: starts",
    s: { monthly: 0, purchased: 0 },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  { name: "large balance: none", s: { monthly: 8_000, purchased: 9_000 }, expect: NONE, reads: [] },
  // Disabled: never fires; the pending check is still read at the threshold, as it always was.
  { name: "disabled at 50: none", s: { auto_enabled: 0 }, expect: NONE, reads: ["pending"] },
  {
    name: "disabled above: none, reads nothing",
    s: { auto_enabled: 0, monthly: 500 },
    expect: NONE,
    reads: [],
  },
  // One in flight at a time.
  { name: "pending: none", s: {}, pending: true, expect: NONE, reads: ["pending"] },
  {
    name: "pending at 100: none",
    s: { monthly: 100, purchased: 0 },
    pending: true,
    expect: NONE,
    reads: ["pending"],
  },
  // Packages: the chosen one, else the default.
  {
    name: "package 3000",
    s: { auto_package: "credits_3000" },
    expect: start("credits_3000"),
    reads: ["pending", "spent"],
  },
  {
    name: "package 9000",
    s: { auto_package: "credits_9000" },
    expect: start("credits_9000"),
    reads: ["pending", "spent"],
  },
  {
    name: "no package: the default",
    s: { auto_package: null },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "unknown package: the default",
    s: { auto_package: "credits_7" },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  // The spending limit (money rule 10): spent + price must fit.
  {
    name: "no limit: starts whatever was spent",
    s: { spend_limit_cents: null },
    spent: 1_000_000,
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "fits exactly: 19300 + 700 = 20000",
    s: {},
    spent: 19_300,
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "one cent over: pauses",
    s: {},
    spent: 19_301,
    expect: PAUSE,
    reads: ["pending", "spent"],
  },
  {
    name: "limit 0: pauses",
    s: { spend_limit_cents: 0 },
    expect: PAUSE,
    reads: ["pending", "spent"],
  },
  {
    name: "limit 700, nothing spent: starts",
    s: { spend_limit_cents: 700 },
    expect: start("credits_1000"),
    reads: ["pending", "spent"],
  },
  {
    name: "limit 699: pauses",
    s: { spend_limit_cents: 699 },
    expect: PAUSE,
    reads: ["pending", "spent"],
  },
  {
    name: "package 9000 (3700) over a limit of 3000: pauses",
    s: { auto_package: "credits_9000", spend_limit_cents: 3_000 },
    expect: PAUSE,
    reads: ["pending", "spent"],
  },
  {
    name: "package 3000 fits exactly 1700",
    s: { auto_package: "credits_3000", spend_limit_cents: 1_700 },
    expect: start("credits_3000"),
    reads: ["pending", "spent"],
  },
  // Pauses: this month's holds; an earlier month's ends when a recharge starts.
  {
    name: "paused this month: none, spent not read",
    s: { paused_period: THIS_MONTH },
    expect: NONE,
    reads: ["pending"],
  },
  {
    name: "paused last month: starts and clears",
    s: { paused_period: LAST_MONTH },
    expect: start("credits_1000", true),
    reads: ["pending", "spent"],
  },
  {
    name: "paused last month, still over: pauses again",
    s: { paused_period: LAST_MONTH },
    spent: 20_000,
    expect: PAUSE,
    reads: ["pending", "spent"],
  },
  {
    name: "paused last month, above threshold: none",
    s: { paused_period: LAST_MONTH, monthly: 500 },
    expect: NONE,
    reads: [],
  },
  {
    name: "paused last month, pending: none",
    s: { paused_period: LAST_MONTH },
    pending: true,
    expect: NONE,
    reads: ["pending"],
  },
  // The month is the UTC calendar month of `now`.
  {
    name: "last ms of the month: paused this month holds",
    s: { paused_period: THIS_MONTH },
    now: NEXT_MONTH - 1,
    expect: NONE,
    reads: ["pending"],
  },
  {
    name: "first ms of the next month: the pause ends",
    s: { paused_period: THIS_MONTH },
    now: NEXT_MONTH,
    expect: start("credits_1000", true),
    reads: ["pending", "spent"],
  },
  {
    name: "pause in December resumes in January",
    s: {},
    spent: 20_000,
    now: Date.UTC(2026, 11, 31, 23),
    expect: { kind: "pause", resumesAt: Date.UTC(2027, 0, 1) },
    reads: ["pending", "spent"],
  },
];

describe("decideRecharge: the auto-recharge trigger", () => {
  it.each(rechargeRows)("$name", (row) => {
    const reads: Array<"pending" | "spent"> = [];
    const facts = {
      get pending() {
        reads.push("pending");
        return row.pending ?? false;
      },
      get spentThisMonthCents() {
        reads.push("spent");
        return row.spent ?? 0;
      },
    };
    expect(decideRecharge(rechargeState(row.s), facts, row.now ?? NOW)).toEqual(row.expect);
    expect(reads).toEqual(row.reads);
  });
});

// ---------------------------------------------------------------- decideDebit

const MINUTE = minuteOf(NOW);

const debitState = (s: Partial<DebitState>): DebitState => ({
  monthly: 500,
  purchased: 0,
  compacted_until: MINUTE - 600,
  plan: "free",
  rate_limit_override: null,
  low_balance_credits: null,
  low_balance_armed: 0,
  paused_period: null,
  suspended_at: null,
  ...s,
});

type DebitRow = {
  name: string;
  s?: Partial<DebitState> | null;
  open?: { monthly: number; purchased: number };
  cost?: number;
  key?: string;
  voided?: boolean;
  revoked?: string[];
  window?: RateWindow;
  now?: number;
  /** The decision, compared with toMatchObject (the fields named). */
  expect: Partial<Record<keyof Extract<DebitDecision, { kind: "take" }>, unknown>> & {
    kind: DebitDecision["kind"];
    reason?: string;
    resume?: boolean;
    balance?: unknown;
  };
  /** The window's count after the decision, for keyed rows. */
  count?: number;
};

const WIN = NOW - (NOW % 60_000);
const take = (monthly: number, purchased: number) => ({ monthly, purchased });

const debitRows: DebitRow[] = [
  // Refusals, in the order they are checked.
  {
    name: "not initialized: insufficient, zero",
    s: null,
    expect: { kind: "insufficient", balance: take(0, 0), rate: null, resume: false },
  },
  {
    name: "voided ref: not_found",
    voided: true,
    expect: { kind: "refuse", reason: "not_found", rate: null },
  },
  {
    name: "voided beats revoked",
    voided: true,
    key: "k1",
    revoked: ["k1"],
    expect: { kind: "refuse", reason: "not_found" },
  },
  {
    name: "suspended: account_suspended, no slot of the window taken, nothing else asked",
    s: { suspended_at: NOW - 1_000 },
    key: "k1",
    revoked: ["k1"],
    window: { start: WIN, count: 3 },
    expect: { kind: "refuse", reason: "account_suspended", rate: null },
    count: 3,
  },
  {
    name: "suspended, no key: refused too",
    s: { suspended_at: NOW - 1_000 },
    expect: { kind: "refuse", reason: "account_suspended", rate: null },
  },
  {
    name: "revoked key",
    key: "k1",
    revoked: ["k1"],
    expect: { kind: "refuse", reason: "key_revoked", rate: null },
    count: 0,
  },
  {
    name: "another key revoked: taken",
    key: "k2",
    revoked: ["k1"],
    expect: { kind: "take", take: take(1, 0) },
    count: 1,
  },
  {
    name: "no key: revoked list not asked, no rate",
    revoked: ["k1"],
    expect: { kind: "take", rate: null },
  },
  // The rate window: the plan's limit, or the override; all keys together.
  {
    name: "free plan, 59 used: the 60th passes",
    key: "k",
    window: { start: WIN, count: 59 },
    expect: { kind: "take", rate: { allowed: true, limit: 60, remaining: 0, resetSeconds: 45 } },
    count: 60,
  },
  {
    name: "free plan, 60 used: rate_limited",
    key: "k",
    window: { start: WIN, count: 60 },
    expect: {
      kind: "refuse",
      reason: "rate_limited",
      rate: { allowed: false, limit: 60, remaining: 0 },
    },
    count: 60,
  },
  {
    name: "an old window resets",
    key: "k",
    window: { start: WIN - 60_000, count: 60 },
    expect: { kind: "take" },
    count: 1,
  },
  {
    name: "override 2, 2 used: rate_limited",
    s: { rate_limit_override: 2 },
    key: "k",
    window: { start: WIN, count: 2 },
    expect: { kind: "refuse", reason: "rate_limited", rate: { limit: 2 } },
  },
  {
    name: "pro plan limit 3000",
    s: { plan: "pro" },
    key: "k",
    window: { start: WIN, count: 2_999 },
    expect: { kind: "take", rate: { limit: 3_000, remaining: 0 } },
  },
  {
    name: "no key ignores a full window",
    window: { start: WIN, count: 10_000 },
    expect: { kind: "take", rate: null },
    count: 10_000,
  },
  {
    name: "rate limited before insufficient",
    s: { monthly: 0 },
    key: "k",
    window: { start: WIN, count: 60 },
    expect: { kind: "refuse", reason: "rate_limited" },
  },
  // The split: monthly first, then purchased, all or nothing, from the live balance.
  {
    name: "monthly only",
    cost: 3,
    expect: { kind: "take", take: take(3, 0), after: take(497, 0) },
  },
  {
    name: "spills into purchased",
    s: { monthly: 2, purchased: 10 },
    cost: 5,
    expect: { kind: "take", take: take(2, 3), after: take(0, 7) },
  },
  {
    name: "purchased only",
    s: { monthly: 0, purchased: 10 },
    cost: 4,
    expect: { kind: "take", take: take(0, 4), after: take(0, 6) },
  },
  {
    name: "exactly all",
    s: { monthly: 3, purchased: 2 },
    cost: 5,
    expect: { kind: "take", take: take(3, 2), after: take(0, 0) },
  },
  {
    name: "one short: insufficient",
    s: { monthly: 3, purchased: 1 },
    cost: 5,
    expect: { kind: "insufficient", balance: take(3, 1), resume: false },
  },
  {
    name: "open debits count: live 500-498",
    open: take(498, 0),
    cost: 3,
    expect: { kind: "insufficient", balance: take(2, 0) },
  },
  {
    name: "open debits count: taken from live",
    open: take(400, 0),
    s: { purchased: 50 },
    cost: 120,
    expect: { kind: "take", take: take(100, 20), after: take(0, 30) },
  },
  {
    name: "zero cost on empty: taken",
    s: { monthly: 0 },
    cost: 0,
    expect: { kind: "take", take: take(0, 0) },
  },
  // Insufficient with a pause: an earlier month's resumes now, this month's holds.
  {
    name: "insufficient, paused last month: resume",
    s: { monthly: 0, paused_period: LAST_MONTH },
    expect: { kind: "insufficient", resume: true },
  },
  {
    name: "insufficient, paused this month: no resume",
    s: { monthly: 0, paused_period: THIS_MONTH },
    expect: { kind: "insufficient", resume: false },
  },
  {
    name: "insufficient, not paused: no resume",
    s: { monthly: 0 },
    expect: { kind: "insufficient", resume: false },
  },
  {
    name: "taken while paused last month: no resume field",
    s: { paused_period: LAST_MONTH },
    expect: { kind: "take" },
  },
  // The threshold (one check, shared with the trigger): at or below 100 after the debit.
  {
    name: "after 101: not near",
    s: { monthly: 102 },
    expect: { kind: "take", nearThreshold: false },
  },
  {
    name: "after exactly 100: near",
    s: { monthly: 101 },
    expect: { kind: "take", nearThreshold: true },
  },
  {
    name: "after 100 split over buckets: near",
    s: { monthly: 1, purchased: 100 },
    expect: { kind: "take", after: take(0, 100), nearThreshold: true },
  },
  { name: "after 0: near", s: { monthly: 1 }, expect: { kind: "take", nearThreshold: true } },
  { name: "cost 400 from 500: near", cost: 400, expect: { kind: "take", nearThreshold: true } },
  // The low-balance alert: armed and at or below the level after the debit.
  {
    name: "no level: never crosses",
    s: { monthly: 1, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: false },
  },
  {
    name: "armed, level 200, after 199: crosses",
    s: { monthly: 200, low_balance_credits: 200, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: true },
  },
  {
    name: "armed, level 200, after exactly 200: crosses",
    s: { monthly: 201, low_balance_credits: 200, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: true },
  },
  {
    name: "armed, level 200, after 201: not yet",
    s: { monthly: 202, low_balance_credits: 200, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: false },
  },
  {
    name: "disarmed below the level: no second email",
    s: { monthly: 100, low_balance_credits: 200, low_balance_armed: 0 },
    expect: { kind: "take", crossesAlert: false },
  },
  {
    name: "level 0, armed, to 0: crosses",
    s: { monthly: 1, low_balance_credits: 0, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: true, nearThreshold: true },
  },
  {
    name: "level 1000 far above threshold",
    s: { monthly: 1_000, low_balance_credits: 1_000, low_balance_armed: 1 },
    expect: { kind: "take", crossesAlert: true, nearThreshold: false },
  },
  {
    name: "refused debits never cross",
    s: { monthly: 0, low_balance_credits: 10, low_balance_armed: 1 },
    expect: { kind: "insufficient" },
  },
  // The minute and the ring.
  { name: "the current minute", expect: { kind: "take", minute: MINUTE, mustSettle: false } },
  {
    name: "clock behind the checkpoint: the checkpoint's minute",
    s: { compacted_until: MINUTE + 120 },
    expect: { kind: "take", minute: MINUTE + 120, mustSettle: false },
  },
  {
    name: "a day minus a minute unsettled: must settle",
    s: { compacted_until: MINUTE - (DAY_SECONDS - 60) },
    expect: { kind: "take", mustSettle: true },
  },
  {
    name: "a day minus two minutes: not yet",
    s: { compacted_until: MINUTE - (DAY_SECONDS - 120) },
    expect: { kind: "take", mustSettle: false },
  },
  {
    name: "idle for a week: must settle",
    s: { compacted_until: MINUTE - 7 * DAY_SECONDS },
    expect: { kind: "take", mustSettle: true },
  },
];

describe("decideDebit: the hot path's decision, from memory", () => {
  it.each(debitRows)("$name", (row) => {
    const window = row.window ?? { start: 0, count: 0 };
    let askedRevoked = false;
    const d = decideDebit(
      {
        settled: row.s === null ? null : debitState(row.s ?? {}),
        open: row.open ?? take(0, 0),
        voided: row.voided ?? false,
        revoked: {
          has: (k) => {
            askedRevoked = true;
            return (row.revoked ?? []).includes(k);
          },
        },
        window,
      },
      row.cost ?? 1,
      row.key,
      row.now ?? NOW,
    );
    expect(d).toMatchObject(row.expect);
    if (row.count !== undefined) expect(window.count).toBe(row.count);
    // An operator's debit (no key) never loads the revoked keys.
    if (!row.key) expect(askedRevoked).toBe(false);
  });

  it("rejects a negative or fractional cost as a bug", () => {
    const input = {
      settled: debitState({}),
      open: take(0, 0),
      voided: false,
      revoked: new Set<string>(),
      window: { start: 0, count: 0 },
    };
    expect(() => decideDebit(input, -1, undefined, NOW)).toThrow(RangeError);
    expect(() => decideDebit(input, 1.5, undefined, NOW)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------- commands (domain/commands.ts)

/** Facts behind getters that log each read, as the object's getters query storage. */
function logged<T extends object>(values: T, reads: string[]): T {
  const out = {} as T;
  for (const key of Object.keys(values) as Array<keyof T>) {
    Object.defineProperty(out, key, {
      get() {
        reads.push(String(key));
        return values[key];
      },
    });
  }
  return out;
}

const charge = (minute: number, monthly: number, purchased: number): DebitCharge => ({
  minute,
  monthly,
  purchased,
});

type RefundRow = {
  name: string;
  charge: DebitCharge | null;
  sentAt?: number;
  refunded?: boolean;
  voidRecorded?: boolean;
  unanswered?: UnansweredDebit;
  expect: RefundDecision;
  reads: string[];
};

const refundRows: RefundRow[] = [
  {
    name: "a valid charge: refunded",
    charge: charge(MINUTE, 3, 2),
    expect: { kind: "refund", charge: charge(MINUTE, 3, 2) },
    reads: ["refunded"],
  },
  {
    name: "already refunded: a replay, nothing else read",
    charge: charge(MINUTE, 3, 2),
    refunded: true,
    expect: { kind: "replay" },
    reads: ["refunded"],
  },
  {
    name: "already refunded wins over a lost reply",
    charge: null,
    sentAt: NOW,
    refunded: true,
    expect: { kind: "replay" },
    reads: ["refunded"],
  },
  {
    name: "no charge, no sentAt: not found",
    charge: null,
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "a minute that is not whole: not found",
    charge: charge(MINUTE + 1, 1, 0),
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "a fractional amount: not found",
    charge: charge(MINUTE, 0.5, 0),
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "a negative amount: not found",
    charge: charge(MINUTE, -1, 2),
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "an unsafe integer minute: not found",
    charge: charge(2 ** 60, 1, 0),
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "zero credits: not found (nothing to give back)",
    charge: charge(MINUTE, 0, 0),
    expect: { kind: "not_found" },
    reads: ["refunded"],
  },
  {
    name: "a charge given with sentAt: the charge is used, memory not asked",
    charge: charge(MINUTE, 1, 0),
    sentAt: NOW,
    expect: { kind: "refund", charge: charge(MINUTE, 1, 0) },
    reads: ["refunded"],
  },
  {
    name: "lost reply already voided: not found, memory not asked",
    charge: null,
    sentAt: NOW,
    voidRecorded: true,
    expect: { kind: "not_found" },
    reads: ["refunded", "voidRecorded"],
  },
  {
    name: "lost reply remembered: refunds what memory says it took",
    charge: null,
    sentAt: NOW,
    unanswered: { outcome: "committed", charge: charge(MINUTE, 0, 4) },
    expect: { kind: "refund", charge: charge(MINUTE, 0, 4) },
    reads: ["refunded", "voidRecorded", "unanswered"],
  },
  {
    name: "lost reply remembered with zero credits: not found",
    charge: null,
    sentAt: NOW,
    unanswered: { outcome: "committed", charge: charge(MINUTE, 0, 0) },
    expect: { kind: "not_found" },
    reads: ["refunded", "voidRecorded", "unanswered"],
  },
  {
    name: "lost reply never committed: voided",
    charge: null,
    sentAt: NOW,
    unanswered: { outcome: "never_committed" },
    expect: { kind: "void" },
    reads: ["refunded", "voidRecorded", "unanswered"],
  },
  {
    name: "lost reply memory cannot account for: outcome unknown",
    charge: null,
    sentAt: NOW,
    unanswered: { outcome: "unknown" },
    expect: { kind: "outcome_unknown" },
    reads: ["refunded", "voidRecorded", "unanswered"],
  },
];

describe("decideRefund: validity, replay, lost replies", () => {
  it.each(refundRows)("$name", (row) => {
    const reads: string[] = [];
    const facts = logged(
      {
        refunded: row.refunded ?? false,
        voidRecorded: row.voidRecorded ?? false,
        unanswered: row.unanswered ?? ({ outcome: "unknown" } as UnansweredDebit),
      },
      reads,
    );
    expect(decideRefund(row.charge, row.sentAt, facts)).toEqual(row.expect);
    expect(reads).toEqual(row.reads);
  });
});

describe("decideAdjust: idempotency and never below zero", () => {
  it.each<{
    name: string;
    live: Buckets;
    earlier: Buckets | null;
    delta: Buckets;
    expect: AdjustDecision;
  }>([
    {
      name: "credit both buckets",
      live: take(10, 5),
      earlier: null,
      delta: take(3, 4),
      expect: { kind: "apply", next: take(13, 9) },
    },
    {
      name: "debit down to exactly zero",
      live: take(10, 5),
      earlier: null,
      delta: take(-10, -5),
      expect: { kind: "apply", next: take(0, 0) },
    },
    {
      name: "monthly below zero: refused",
      live: take(10, 5),
      earlier: null,
      delta: take(-11, 0),
      expect: { kind: "insufficient" },
    },
    {
      name: "purchased below zero: refused",
      live: take(10, 5),
      earlier: null,
      delta: take(0, -6),
      expect: { kind: "insufficient" },
    },
    {
      name: "one bucket up cannot cover the other below zero",
      live: take(10, 5),
      earlier: null,
      delta: take(100, -6),
      expect: { kind: "insufficient" },
    },
    {
      name: "zero adjustment: applied (an audited no-op)",
      live: take(0, 0),
      earlier: null,
      delta: take(0, 0),
      expect: { kind: "apply", next: take(0, 0) },
    },
    {
      name: "same ref, same amounts: a replay",
      live: take(10, 5),
      earlier: take(3, 4),
      delta: take(3, 4),
      expect: { kind: "replay" },
    },
    {
      name: "same ref, replay even if it would now go below zero",
      live: take(0, 0),
      earlier: take(-3, 0),
      delta: take(-3, 0),
      expect: { kind: "replay" },
    },
    {
      name: "same ref, other monthly: conflict",
      live: take(10, 5),
      earlier: take(3, 4),
      delta: take(2, 4),
      expect: { kind: "conflict" },
    },
    {
      name: "same ref, other purchased: conflict",
      live: take(10, 5),
      earlier: take(3, 4),
      delta: take(3, 5),
      expect: { kind: "conflict" },
    },
  ])("$name", (row) => {
    expect(decideAdjust(row.live, row.earlier, row.delta)).toEqual(row.expect);
  });
});

describe("raisesSpendLimit: what only a person may do (money rule 11)", () => {
  it.each<[number | null, number | null, boolean]>([
    [20_000, 5_000, false],
    [20_000, 20_000, false],
    [20_000, 0, false],
    [20_000, 20_001, true],
    [20_000, null, true],
    [null, 100_000_000, false],
    [null, null, false],
  ])("from %s to %s: %s", (current, next, raises) => {
    expect(raisesSpendLimit(current, next)).toBe(raises);
  });
});

describe("decideLimits: absent keeps, null clears", () => {
  const s = { spend_limit_cents: 20_000, rate_limit_override: 50 };
  it.each<{
    name: string;
    input: { spendLimitCents?: number | null; rateLimitPerMinute?: number | null };
    expect: { spendLimitCents: number | null; rateLimitOverride: number | null };
  }>([
    {
      name: "nothing given: both kept",
      input: {},
      expect: { spendLimitCents: 20_000, rateLimitOverride: 50 },
    },
    {
      name: "spend limit set",
      input: { spendLimitCents: 5_000 },
      expect: { spendLimitCents: 5_000, rateLimitOverride: 50 },
    },
    {
      name: "spend limit cleared",
      input: { spendLimitCents: null },
      expect: { spendLimitCents: null, rateLimitOverride: 50 },
    },
    {
      name: "spend limit zero is a limit, not none",
      input: { spendLimitCents: 0 },
      expect: { spendLimitCents: 0, rateLimitOverride: 50 },
    },
    {
      name: "rate override set",
      input: { rateLimitPerMinute: 7 },
      expect: { spendLimitCents: 20_000, rateLimitOverride: 7 },
    },
    {
      name: "rate override cleared (the plan's)",
      input: { rateLimitPerMinute: null },
      expect: { spendLimitCents: 20_000, rateLimitOverride: null },
    },
    {
      name: "both at once",
      input: { spendLimitCents: null, rateLimitPerMinute: 9 },
      expect: { spendLimitCents: null, rateLimitOverride: 9 },
    },
  ])("$name", (row) => {
    expect(decideLimits(s, row.input)).toEqual(row.expect);
  });
});

describe("decideAutoRecharge: payment method required, the default package", () => {
  type S = { has_payment_method: number; auto_enabled: number; auto_package: string | null };
  it.each<{
    name: string;
    s: S;
    input: { enabled?: boolean; package?: PackageId };
    expect: AutoRechargeDecision;
  }>([
    {
      name: "enable without a payment method: refused",
      s: { has_payment_method: 0, auto_enabled: 0, auto_package: null },
      input: { enabled: true },
      expect: { kind: "refuse", reason: "payment_method_required" },
    },
    {
      name: "enable with a card, no package: the default",
      s: { has_payment_method: 1, auto_enabled: 0, auto_package: null },
      input: { enabled: true },
      expect: { kind: "set", enabled: true, package: "credits_1000" },
    },
    {
      name: "enable keeps the chosen package",
      s: { has_payment_method: 1, auto_enabled: 0, auto_package: "credits_3000" },
      input: { enabled: true },
      expect: { kind: "set", enabled: true, package: "credits_3000" },
    },
    {
      name: "enable with a package: that one",
      s: { has_payment_method: 1, auto_enabled: 0, auto_package: "credits_3000" },
      input: { enabled: true, package: "credits_9000" },
      expect: { kind: "set", enabled: true, package: "credits_9000" },
    },
    {
      name: "an unknown stored package: the default when enabled",
      s: { has_payment_method: 1, auto_enabled: 1, auto_package: "gone" },
      input: {},
      expect: { kind: "set", enabled: true, package: "credits_1000" },
    },
    {
      name: "disable without a card: allowed",
      s: { has_payment_method: 0, auto_enabled: 1, auto_package: "credits_3000" },
      input: { enabled: false },
      expect: { kind: "set", enabled: false, package: "credits_3000" },
    },
    {
      name: "disabled with no package keeps none",
      s: { has_payment_method: 0, auto_enabled: 0, auto_package: null },
      input: { enabled: false },
      expect: { kind: "set", enabled: false, package: null },
    },
    {
      name: "package only, disabled, no card: set, stays off",
      s: { has_payment_method: 0, auto_enabled: 0, auto_package: null },
      input: { package: "credits_9000" },
      expect: { kind: "set", enabled: false, package: "credits_9000" },
    },
    {
      name: "nothing given, enabled: unchanged",
      s: { has_payment_method: 1, auto_enabled: 1, auto_package: "credits_3000" },
      input: {},
      expect: { kind: "set", enabled: true, package: "credits_3000" },
    },
    {
      name: "still on, card removed since, nothing given: kept (only enabling needs one)",
      s: { has_payment_method: 0, auto_enabled: 1, auto_package: "credits_3000" },
      input: {},
      expect: { kind: "set", enabled: true, package: "credits_3000" },
    },
  ])("$name", (row) => {
    expect(decideAutoRecharge(row.s, row.input)).toEqual(row.expect);
  });
});

const view = (id: string, pkg: PackageId, status: RechargeStatus = "pending"): RechargeView => ({
  id,
  kind: "top_up",
  package: pkg,
  credits: 1_000,
  amountCents: 700,
  status,
  createdAt: Date.parse("2026-06-15T12:00:00.000Z"),
});

describe("decideTopUp: replay, conflict, waiting, payment method, spending limit", () => {
  type S = {
    has_payment_method: number;
    spend_limit_cents: number | null;
    suspended_at: number | null;
  };
  const card: S = { has_payment_method: 1, spend_limit_cents: 20_000, suspended_at: null };
  const waiting = view("rch_w", "credits_1000", "requires_action");
  it.each<{
    name: string;
    s: S;
    pkg: PackageId;
    existing?: RechargeView;
    waiting?: RechargeView;
    spent?: number;
    expect: TopUpDecision;
    reads: string[];
  }>([
    {
      name: "new, card, room under the limit: start",
      s: card,
      pkg: "credits_1000",
      expect: { kind: "start" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
    {
      name: "same id, same package: a replay, nothing else read",
      s: card,
      pkg: "credits_1000",
      existing: view("rch_1", "credits_1000"),
      expect: { kind: "replay", recharge: view("rch_1", "credits_1000") },
      reads: ["existing"],
    },
    {
      name: "same id, replay even without a card now",
      s: { has_payment_method: 0, spend_limit_cents: 0, suspended_at: null },
      pkg: "credits_1000",
      existing: view("rch_1", "credits_1000", "succeeded"),
      expect: { kind: "replay", recharge: view("rch_1", "credits_1000", "succeeded") },
      reads: ["existing"],
    },
    {
      name: "same id, other package: conflict",
      s: card,
      pkg: "credits_3000",
      existing: view("rch_1", "credits_1000"),
      expect: { kind: "refuse", reason: "idempotency_conflict" },
      reads: ["existing"],
    },
    {
      name: "a purchase waits for the customer: payment pending",
      s: card,
      pkg: "credits_1000",
      waiting,
      expect: { kind: "payment_pending", waiting },
      reads: ["existing", "waiting"],
    },
    {
      name: "waiting wins over no card",
      s: { has_payment_method: 0, spend_limit_cents: null, suspended_at: null },
      pkg: "credits_1000",
      waiting,
      expect: { kind: "payment_pending", waiting },
      reads: ["existing", "waiting"],
    },
    {
      name: "suspended: refused, spend not read",
      s: { ...card, suspended_at: NOW },
      pkg: "credits_1000",
      expect: { kind: "refuse", reason: "account_suspended" },
      reads: ["existing"],
    },
    {
      name: "suspended, a retry of its first top-up: replayed",
      s: { ...card, suspended_at: NOW },
      pkg: "credits_1000",
      existing: view("rch_1", "credits_1000", "pending"),
      expect: { kind: "replay", recharge: view("rch_1", "credits_1000", "pending") },
      reads: ["existing"],
    },
    {
      name: "no card: payment method required, spend not read",
      s: { has_payment_method: 0, spend_limit_cents: 20_000, suspended_at: null },
      pkg: "credits_1000",
      expect: { kind: "refuse", reason: "payment_method_required" },
      reads: ["existing", "waiting"],
    },
    {
      name: "exactly at the limit after it: start",
      s: { has_payment_method: 1, spend_limit_cents: 1_400, suspended_at: null },
      pkg: "credits_1000",
      spent: 700,
      expect: { kind: "start" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
    {
      name: "one cent over the limit: refused",
      s: { has_payment_method: 1, spend_limit_cents: 1_399, suspended_at: null },
      pkg: "credits_1000",
      spent: 700,
      expect: { kind: "refuse", reason: "spending_limit_reached" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
    {
      name: "the package's price counts, not the default's",
      s: { has_payment_method: 1, spend_limit_cents: 1_000, suspended_at: null },
      pkg: "credits_3000",
      spent: 0,
      expect: { kind: "refuse", reason: "spending_limit_reached" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
    {
      name: "a limit of zero refuses any",
      s: { has_payment_method: 1, spend_limit_cents: 0, suspended_at: null },
      pkg: "credits_1000",
      expect: { kind: "refuse", reason: "spending_limit_reached" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
    {
      name: "no limit: start whatever was spent",
      s: { has_payment_method: 1, spend_limit_cents: null, suspended_at: null },
      pkg: "credits_9000",
      spent: 10_000_000,
      expect: { kind: "start" },
      reads: ["existing", "waiting", "spentThisMonthCents"],
    },
  ])("$name", (row) => {
    const reads: string[] = [];
    const facts = logged(
      {
        existing: row.existing ?? null,
        waiting: row.waiting ?? null,
        spentThisMonthCents: row.spent ?? 0,
      },
      reads,
    );
    expect(decideTopUp(row.s, row.pkg, facts)).toEqual(row.expect);
    expect(reads).toEqual(row.reads);
  });
});

describe("nextRechargeStatus: every (status, event) pair", () => {
  const same: RechargeTransition = { kind: "same" };
  const refuse: RechargeTransition = { kind: "refuse", reason: "already_succeeded" };
  const move = (from: RechargeStatus, to: RechargeStatus): RechargeTransition => ({
    kind: "move",
    from,
    to,
  });
  const table: Array<[RechargeStatus, RechargeEvent, RechargeTransition]> = [
    ["pending", "paid", move("pending", "succeeded")],
    ["pending", "failed", move("pending", "failed")],
    ["pending", "requires_action", move("pending", "requires_action")],
    ["requires_action", "paid", move("requires_action", "succeeded")],
    ["requires_action", "failed", move("requires_action", "failed")],
    ["requires_action", "requires_action", same],
    // A payment that did go through after all is still credited.
    ["failed", "paid", move("failed", "succeeded")],
    // Failed is final otherwise.
    ["failed", "failed", same],
    ["failed", "requires_action", same],
    ["succeeded", "paid", same],
    ["succeeded", "failed", refuse],
    ["succeeded", "requires_action", refuse],
  ];
  it("covers every pair exactly once", () => {
    const statuses: RechargeStatus[] = ["pending", "requires_action", "succeeded", "failed"];
    const events: RechargeEvent[] = ["paid", "failed", "requires_action"];
    const pairs = table.map(([s, e]) => `${s}/${e}`).sort();
    expect(pairs).toEqual(statuses.flatMap((s) => events.map((e) => `${s}/${e}`)).sort());
  });
  it.each(table)("%s + %s", (status, event, expected) => {
    expect(nextRechargeStatus(status, event)).toEqual(expected);
  });
});

describe("decideGrantPurchased: unknown, credits mismatch, replay", () => {
  const r = {
    kind: "auto_recharge" as const,
    package: "credits_1000" as const,
    credits: 1_000,
    status: "pending" as RechargeStatus,
  };
  it.each<{
    name: string;
    recharge: typeof r | null;
    credits: number;
    granted?: boolean;
    expect: GrantPurchasedDecision;
    reads: string[];
  }>([
    {
      name: "unknown recharge",
      recharge: null,
      credits: 1_000,
      expect: { kind: "refuse", reason: "unknown_recharge" },
      reads: [],
    },
    {
      name: "other credits than the recharge's",
      recharge: r,
      credits: 999,
      expect: { kind: "refuse", reason: "credits_mismatch" },
      reads: [],
    },
    {
      name: "mismatch even when already granted",
      recharge: r,
      credits: 3_000,
      granted: true,
      expect: { kind: "refuse", reason: "credits_mismatch" },
      reads: [],
    },
    {
      name: "already granted: a replay",
      recharge: r,
      credits: 1_000,
      granted: true,
      expect: { kind: "replay" },
      reads: ["granted"],
    },
    {
      name: "pending: granted, moves to succeeded",
      recharge: r,
      credits: 1_000,
      expect: {
        kind: "grant",
        credits: 1_000,
        note: "auto_recharge credits_1000",
        transition: { kind: "move", from: "pending", to: "succeeded" },
      },
      reads: ["granted"],
    },
    {
      name: "recorded failed: still granted",
      recharge: { ...r, status: "failed" },
      credits: 1_000,
      expect: {
        kind: "grant",
        credits: 1_000,
        note: "auto_recharge credits_1000",
        transition: { kind: "move", from: "failed", to: "succeeded" },
      },
      reads: ["granted"],
    },
    {
      name: "waiting for the customer, paid there: granted",
      recharge: { ...r, status: "requires_action" },
      credits: 1_000,
      expect: {
        kind: "grant",
        credits: 1_000,
        note: "auto_recharge credits_1000",
        transition: { kind: "move", from: "requires_action", to: "succeeded" },
      },
      reads: ["granted"],
    },
  ])("$name", (row) => {
    const reads: string[] = [];
    expect(
      decideGrantPurchased(
        row.recharge,
        row.credits,
        logged({ granted: row.granted ?? false }, reads),
      ),
    ).toEqual(row.expect);
    expect(reads).toEqual(row.reads);
  });
});

describe("decidePlanChange: staleness and replays", () => {
  const s = { plan: "starter" as const, plan_version: 10, stripe_cycles: 1 };
  type In = {
    plan: "free" | "starter" | "pro";
    version: number;
    cycles: "stripe" | "alarm";
    current?: boolean;
  };
  it.each<{ name: string; input: In; seen?: boolean; expect: PlanChangeDecision; reads: string[] }>(
    [
      {
        name: "newer version: applied",
        input: { plan: "pro", version: 11, cycles: "stripe" },
        expect: { kind: "apply", stripeCycles: 1, changed: true, note: "starter -> pro" },
        reads: ["seen"],
      },
      {
        name: "older version: stale, ref not read",
        input: { plan: "pro", version: 9, cycles: "stripe" },
        expect: { kind: "ignore" },
        reads: [],
      },
      {
        name: "same version: stale",
        input: { plan: "pro", version: 10, cycles: "stripe" },
        expect: { kind: "ignore" },
        reads: [],
      },
      {
        name: "same version read from Stripe's current subscription: applied",
        input: { plan: "pro", version: 10, cycles: "stripe", current: true },
        expect: { kind: "apply", stripeCycles: 1, changed: true, note: "starter -> pro" },
        reads: ["seen"],
      },
      {
        name: "older version even if current: stale",
        input: { plan: "pro", version: 9, cycles: "stripe", current: true },
        expect: { kind: "ignore" },
        reads: [],
      },
      {
        name: "newer but ref seen: a replay",
        input: { plan: "pro", version: 11, cycles: "stripe" },
        seen: true,
        expect: { kind: "ignore" },
        reads: ["seen"],
      },
      {
        name: "same plan, newer version: applied, not changed",
        input: { plan: "starter", version: 11, cycles: "stripe" },
        expect: { kind: "apply", stripeCycles: 1, changed: false, note: "starter -> starter" },
        reads: ["seen"],
      },
      {
        name: "subscription ended: cycles back to the alarm",
        input: { plan: "free", version: 11, cycles: "alarm" },
        expect: { kind: "apply", stripeCycles: 0, changed: true, note: "starter -> free" },
        reads: ["seen"],
      },
    ],
  )("$name", (row) => {
    const reads: string[] = [];
    expect(decidePlanChange(s, row.input, logged({ seen: row.seen ?? false }, reads))).toEqual(
      row.expect,
    );
    expect(reads).toEqual(row.reads);
  });
});
