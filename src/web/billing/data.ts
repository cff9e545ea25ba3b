import { type AccountSnapshot, accountSnapshotJson } from "../../accounts/ledger-json";
/** Everything the signed-in Billing page shows, read in parallel where the reads are independent. */

import { type AccountView, accountView } from "../../accounts/account-view";
import { type AuditJson, auditJson, listAudit } from "../../accounts/audit";
import { listTransactions } from "../../accounts/transactions";
import {
  BUCKET_SECONDS,
  bucketRange,
  loadUsage,
  type UsagePoint,
  usageTotals,
} from "../../accounts/usage";
import { endpointEvents } from "../../accounts/webhook-endpoints";
import { getAccount } from "../../db/accounts";
import { type ListedKey, listActiveKeys } from "../../db/api-keys";
import type { Db } from "../../db/client";
import { type ListedMember, listMembers } from "../../db/members";
import { getTransaction } from "../../db/transactions";
import { activeEndpoints, deliveriesOf } from "../../db/webhooks";
import type { After } from "../../http/cursor";
import { ledgerFor } from "../../ledger/client";
import { minuteOf } from "../../ledger/domain/rules";
import type { Bindings } from "../../platform/env";
import {
  advisePlan,
  MIN_ADVICE_DAYS,
  type PlanAdvice,
  type PurchaseState,
  projectOverCycle,
  purchaseState,
  runwayDays,
  type UnusualDay,
  unusualDays,
  type WaitingPurchase,
} from "./advice";

const DAY_MS = BUCKET_SECONDS.day * 1000;
/** The runway's and the unusual-usage check's trailing window, in days. */
export const TRAILING_DAYS = 7;
/** However old the cycle start, the page never reads more days than this. */
const MAX_DAYS = 60;

/**
 * A history row. `action_url` (where a payment needing the customer is completed) and
 * `invoice_url` (the paid invoice) are optional: the page shows them when the rows carry them.
 */
export type Transaction = NonNullable<
  Awaited<ReturnType<typeof listTransactions>>
>["data"][number] & {
  action_url?: string | null;
  invoice_url?: string | null;
};

/** Transactions the page's history shows at once; older ones a link away (`?history=`). */
export const HISTORY_PAGE = 20;

/** One page of the history: `older` the cursor of the next, `paged` when not the newest. */
export interface HistoryPage {
  older: string | null;
  paged: boolean;
}

/** One key's usage this cycle (`keyId` "" for requests no key made, e.g. an operator's). */
export interface KeyUsage {
  keyId: string;
  requests: number;
  credits: number;
}

/** Entries of the audit log the page shows at once. */
export const ACTIVITY_PAGE = 10;

/** One page of the audit log: `older` the cursor of the next, `paged` when not the newest. */
export interface Activity {
  entries: AuditJson[];
  older: string | null;
  paged: boolean;
}

/** What the plan advisor's numbers rest on, said on the page next to them. */
export interface AdviceEvidence {
  period: "last_cycle" | "this_cycle";
  /** Credits really used in the period. */
  usedCredits: number;
  /** Whole days of the period behind them (this cycle: days elapsed so far). */
  days: number;
  cycleDays: number;
  /** This cycle's usage projected over the whole cycle; null for a whole last cycle. */
  projectedCredits: number | null;
}

export interface BillingModel {
  email: string;
  account: AccountView;
  /** The Stripe subscription D1 mirrors (null without one): a Checkout's return compares it. */
  subscriptionId: string | null;
  snapshot: AccountSnapshot;
  transactions: Transaction[];
  /** Where the history page sits: links to older pages and back to the newest. */
  history: HistoryPage;
  keys: ListedKey[];
  /** Each key's requests and credits this cycle, busiest first (keys with traffic only). */
  keyUsage: KeyUsage[];
  /** Each key's last use (unix seconds, minute precision), by key id. */
  keysLastUsed: Record<string, number>;
  members: ListedMember[];
  /** One point per UTC day of the current cycle, up to today. */
  cycleUsage: UsagePoint[];
  /** UTC days the whole cycle touches: the chart's width, so it shows where in the cycle today is. */
  cycleDays: number;
  runway: number | null;
  /** Days the runway's rate is measured over (the last 7, fewer for a younger account). */
  runwayWindow: number;
  /** Whole days since the account was created. */
  historyDays: number;
  /** Null while there is too little of this cycle to go on (see `evidence`). */
  advice: PlanAdvice | null;
  evidence: AdviceEvidence;
  unusual: UnusualDay[];
  /** Purchases in flight, said once on the page (see `purchaseState`). */
  purchases: PurchaseState;
  /** Who changed what (the audit log), newest first, one page. */
  activity: Activity;
  /** Webhook endpoints, each with its latest deliveries. */
  webhooks: WebhookEndpointView[];
}

export interface WebhookEndpointView {
  id: string;
  url: string;
  events: string[] | null;
  deliveries: {
    id: string;
    type: string;
    status: string;
    attempts: number;
    at: string;
    /** The last attempt's HTTP status, or why it got none (a timeout, a refused URL). */
    code: number | null;
    error: string | null;
  }[];
}

async function loadWebhooks(db: Db, accountId: string): Promise<WebhookEndpointView[]> {
  const endpoints = await activeEndpoints(db, accountId);
  return Promise.all(
    endpoints.map(async (e) => ({
      id: e.id,
      url: e.url,
      events: endpointEvents(e),
      deliveries: (await deliveriesOf(db, e.id, 5)).map((d) => ({
        id: d.id,
        type: d.eventType,
        status: d.status,
        attempts: d.attempts,
        at: d.createdAt,
        code: d.lastStatusCode,
        error: d.lastError,
      })),
    })),
  );
}

/** The same day of the previous month (UTC), clamped like the ledger's `addOneMonth`. */
function oneMonthBefore(ms: number): number {
  const d = new Date(ms);
  const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 0)).getUTCDate();
  return Date.UTC(
    d.getUTCFullYear(),
    d.getUTCMonth() - 1,
    Math.min(d.getUTCDate(), lastDay),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    d.getUTCMilliseconds(),
  );
}

export async function loadBilling(
  env: Bindings,
  db: Db,
  accountId: string,
  now = Date.now(),
  /** The Activity section's page: after this entry (its cursor), else the newest. */
  activityAfter?: After,
  /** The history's page: after this transaction (its cursor), else the newest. */
  historyAfter?: After,
): Promise<BillingModel | null> {
  const ledger = ledgerFor(env, accountId);
  const [snapshot, account, history, keys, awaiting, audit, members, webhooks] = await Promise.all([
    ledger.snapshot().then((a) => (a ? accountSnapshotJson(a) : null)),
    getAccount(db, accountId),
    listTransactions(db, accountId, HISTORY_PAGE, historyAfter),
    listActiveKeys(db, accountId),
    ledger.awaitingAction(),
    listAudit(db, { accountId }, ACTIVITY_PAGE, activityAfter),
    listMembers(db, accountId),
    loadWebhooks(db, accountId),
  ]);
  if (!snapshot || !account || !history) return null;
  // The ledger says what waits (the same check that refuses a top-up); D1 holds each one's link.
  const lastFailure = snapshot.auto_recharge.last_failure;
  const waiting: WaitingPurchase[] = await Promise.all(
    awaiting.map(async (r) => ({
      id: r.id,
      kind: r.kind,
      credits: r.credits,
      amountCents: r.amountCents,
      since: new Date(r.createdAt).toISOString(),
      actionUrl:
        (await getTransaction(db, r.id))?.actionUrl ??
        (lastFailure?.recharge_id === r.id ? lastFailure.action_url : null),
    })),
  );

  const cycleStart = Date.parse(snapshot.cycle_started_at);
  // The cycle's days, plus the week before them so every day of the cycle has a trailing mean.
  const days = bucketRange(
    "day",
    Math.max(cycleStart - TRAILING_DAYS * DAY_MS, now - MAX_DAYS * DAY_MS),
    now,
  );
  // The advisor wants a whole real cycle; an account younger than that gets this cycle so far.
  const previousStart = oneMonthBefore(cycleStart);
  const hasLastCycle = Date.parse(account.createdAt) <= previousStart;
  // Usage is kept per minute for the last day (per hour before that, per day past 90 days): a
  // period starts and ends on minute boundaries, and "now" counts the current minute in full;
  // an older bound counts the rows whose hour starts in the period.
  const [from, to] = hasLastCycle
    ? [minuteOf(previousStart), minuteOf(cycleStart)]
    : [minuteOf(cycleStart), minuteOf(now) + 60];
  const [daily, totals, perKey, keysLastUsed] = await Promise.all([
    loadUsage(env, accountId, days),
    usageTotals(env, accountId, from, to),
    ledger.usage(minuteOf(cycleStart), minuteOf(now) + 60, { byKey: true }),
    ledger.keysLastUsed(),
  ]);
  const byKey = new Map<string, KeyUsage>();
  for (const r of perKey) {
    const k = r.key_id ?? "";
    const u = byKey.get(k) ?? { keyId: k, requests: 0, credits: 0 };
    u.requests += r.requests;
    u.credits += r.credits;
    byKey.set(k, u);
  }
  const keyUsage = [...byKey.values()]
    .filter((u) => u.requests > 0 || u.credits > 0)
    .sort((a, b) => b.credits - a.credits || b.requests - a.requests);

  const cycleEnd = Date.parse(snapshot.cycle_ends_at);
  const cycle = bucketRange("day", cycleStart, cycleEnd);
  const historyDays = Math.max(0, Math.floor((now - Date.parse(account.createdAt)) / DAY_MS));
  // The rate is measured only over days the account existed (today's partial day included).
  const runwayWindow = Math.min(TRAILING_DAYS, historyDays + 1);
  const elapsedSeconds = Math.max(0, Math.floor((now - cycleStart) / 1000));
  const cycleSeconds = Math.max(1, Math.floor((cycleEnd - cycleStart) / 1000));
  const elapsedDays = Math.floor(elapsedSeconds / BUCKET_SECONDS.day);
  const enough = hasLastCycle || elapsedDays >= MIN_ADVICE_DAYS;
  const projectedCredits = hasLastCycle
    ? null
    : projectOverCycle(totals.credits, elapsedSeconds, cycleSeconds);
  const cycleLength = Math.round(cycleSeconds / BUCKET_SECONDS.day);
  const inCycle = (p: { start: string }) => Date.parse(p.start) >= cycle.start * 1000;
  return {
    email: account.email,
    account: accountView(account),
    subscriptionId: account.stripeSubscriptionId,
    snapshot,
    transactions: history.data,
    history: { older: history.next_cursor, paged: historyAfter !== undefined },
    keys,
    keyUsage,
    keysLastUsed,
    members,
    cycleUsage: daily.filter(inCycle),
    cycleDays: (cycle.end - cycle.start) / BUCKET_SECONDS.day,
    runway: runwayDays(
      daily.slice(-runwayWindow).map((d) => d.credits),
      snapshot.total,
    ),
    runwayWindow,
    historyDays,
    advice: enough
      ? advisePlan(
          projectedCredits ?? totals.credits,
          snapshot.plan,
          totals.peakRequestsPerMinute,
          {
            projected: projectedCredits !== null,
          },
        )
      : null,
    evidence: {
      period: hasLastCycle ? "last_cycle" : "this_cycle",
      usedCredits: totals.credits,
      days: hasLastCycle ? cycleLength : elapsedDays,
      cycleDays: cycleLength,
      projectedCredits,
    },
    unusual: unusualDays(daily, { window: TRAILING_DAYS }).filter(inCycle),
    purchases: purchaseState({
      waiting,
      autoRechargeInFlight: snapshot.auto_recharge.pending,
      autoRechargeEnabled: snapshot.auto_recharge.enabled,
    }),
    activity: {
      entries: audit.rows.map(auditJson),
      older: audit.next_cursor,
      paged: activityAfter !== undefined,
    },
    webhooks,
  };
}
