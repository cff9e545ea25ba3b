/**
 * Reads the live system into the pure snapshot shapes of invariants.ts: the account's Durable
 * Object (one synchronous pass inside it), D1's purchase rows and Stripe's PaymentIntents.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { and, eq, inArray, isNull } from "drizzle-orm";
import { dbFor } from "../../src/db/client";
import { apiKeys, transactions } from "../../src/db/schema";
import type { AccountLedger } from "../../src/ledger/account-ledger";
import { ledgerFor } from "../../src/ledger/client";
import type {
  LedgerEntry,
  LedgerSnapshot,
  PurchaseRow,
  RechargeRecord,
  StripeInvoice,
  SystemSnapshot,
} from "./invariants";

const db = dbFor(env.DB);

/** The ledger's view, plus what the model and the liveness check compare. */
export interface LiveLedger extends LedgerSnapshot {
  plan: string;
  autoPackage: string | null;
  hasPaymentMethod: boolean;
  lastFailureCode: string | null;
  stripeCycles: boolean;
  cycleEndsAt: number;
  outbox: Array<{ id: string; attempts: number }>;
  alarmAt: number | null;
}

type StateRow = {
  monthly: number;
  purchased: number;
  plan: string;
  auto_enabled: number;
  auto_package: string | null;
  has_payment_method: number;
  last_failure_code: string | null;
  stripe_cycles: number;
  cycle_ends_at: number;
  compacted_until: number;
};

/**
 * The ledger in replay order: the entries, and each debit aggregate (a minute not settled yet,
 * an hour, a day) as one entry placed at the end of its period. Every debit an aggregate holds
 * happened before that point, so the replay at any point is at least the balance then was, and
 * a negative point in it is a real one.
 */
function replayOrder(sql: SqlStorage, settledUntil: number): LedgerEntry[] {
  type Row = {
    at: number;
    seq: number;
    ref: string;
    kind: string;
    m: number;
    p: number;
    note: string | null;
  };
  const rows = sql
    .exec<Row>(
      `SELECT at, seq, ref, kind, monthly_delta AS m, purchased_delta AS p, note FROM ledger
       UNION ALL SELECT (minute + 60) * 1000 - 1, 0, 'debits:minute:' || minute, 'debits',
         -debit_monthly, -debit_purchased, NULL FROM debit_minutes WHERE minute >= ?
       UNION ALL SELECT (hour + 3600) * 1000 - 1, 0, 'debits:hour:' || hour || ':' || key_id, 'debits',
         -debit_monthly, -debit_purchased, NULL FROM usage_hours
       UNION ALL SELECT (day + 86400) * 1000 - 1, 0, 'debits:day:' || day || ':' || key_id, 'debits',
         -debit_monthly, -debit_purchased, NULL FROM usage_days`,
      settledUntil,
    )
    .toArray();
  // Entries in their own order (seq) where times tie; an aggregate after them.
  return rows
    .sort((a, b) => a.at - b.at || (a.seq || Infinity) - (b.seq || Infinity))
    .map((r, seq) => ({
      seq: seq + 1,
      ref: r.ref,
      kind: r.kind,
      monthly_delta: r.m,
      purchased_delta: r.p,
      note: r.note,
    }));
}

/**
 * Everything in one callback inside the object: no await between the reads, so they see one
 * state (the object's input gate keeps other events out of a synchronous run).
 */
export async function readLedger(accountId: string): Promise<LiveLedger> {
  // A fresh stub each time: a stub to an aborted object stays broken.
  return runInDurableObject(ledgerFor(env, accountId), async (instance, state) => {
    const sql = state.storage.sql;
    const s = sql
      .exec<StateRow>(
        `SELECT monthly, purchased, plan, auto_enabled, auto_package, has_payment_method,
           last_failure_code, stripe_cycles, cycle_ends_at, compacted_until FROM state WHERE id = 1`,
      )
      .one();
    const ledger = replayOrder(sql, s.compacted_until);
    // The balance as storage alone gives it (what a restarted object rebuilds): the settled
    // buckets less the debits of the minutes not settled yet. audit() compares it with memory.
    const open = sql
      .exec<{ m: number | null; p: number | null }>(
        "SELECT SUM(debit_monthly) AS m, SUM(debit_purchased) AS p FROM debit_minutes WHERE minute >= ?",
        s.compacted_until,
      )
      .one();
    const monthly = s.monthly - (open.m ?? 0);
    const purchased = s.purchased - (open.p ?? 0);
    const recharges = sql
      .exec<RechargeRecord & Record<string, SqlStorageValue>>(
        "SELECT id, kind, package, credits, amount_cents, status FROM recharges",
      )
      .toArray();
    const outbox = sql
      .exec<{ id: string; attempts: number }>("SELECT id, attempts FROM outbox")
      .toArray();
    const audit = (instance as AccountLedger).audit();
    return {
      monthly,
      purchased,
      autoEnabled: s.auto_enabled === 1,
      ledger: ledger.map((e) => ({ ...e })),
      recharges: recharges.map((r) => ({ ...r })),
      audit,
      plan: s.plan,
      autoPackage: s.auto_package,
      hasPaymentMethod: s.has_payment_method === 1,
      lastFailureCode: s.last_failure_code,
      stripeCycles: s.stripe_cycles === 1,
      cycleEndsAt: s.cycle_ends_at,
      outbox: outbox.map((o) => ({ ...o })),
      alarmAt: await state.storage.getAlarm(),
    };
  });
}

export async function readPurchaseRows(accountId: string): Promise<PurchaseRow[]> {
  const rows = await db
    .select({
      id: transactions.id,
      status: transactions.status,
      credits: transactions.credits,
      amountCents: transactions.amountCents,
      invoiceId: transactions.invoiceId,
      needsAttention: transactions.needsAttention,
    })
    .from(transactions)
    .where(
      and(
        eq(transactions.accountId, accountId),
        inArray(transactions.type, ["auto_recharge", "top_up"]),
      ),
    )
    .all();
  return rows;
}

interface InvoicePage {
  data: Array<{ id: string; status: string; total: number; metadata: Record<string, string> }>;
  has_more: boolean;
}

/** Every invoice Stripe holds for the customer (each purchase is one), through the list's pages. */
export async function readStripeInvoices(customerId: string): Promise<StripeInvoice[]> {
  const out: StripeInvoice[] = [];
  let after: string | null = null;
  for (;;) {
    const url = new URL(`${env.STRIPE_API_URL}/v1/invoices`);
    url.searchParams.set("customer", customerId);
    url.searchParams.set("limit", "100");
    if (after) url.searchParams.set("starting_after", after);
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    });
    if (res.status !== 200) throw new Error(`listing invoices: ${res.status}`);
    const page = await res.json<InvoicePage>();
    for (const invoice of page.data) {
      out.push({
        id: invoice.id,
        status: invoice.status,
        amount: invoice.total,
        rechargeId: invoice.metadata?.recharge_id ?? null,
      });
    }
    if (!page.has_more || page.data.length === 0) return out;
    after = page.data[page.data.length - 1]?.id ?? null;
  }
}

export interface Observed {
  ledger: LiveLedger;
  system: SystemSnapshot;
}

export async function readSystem(accountId: string, customerId: string): Promise<Observed> {
  const ledger = await readLedger(accountId);
  const [d1, stripe, activeFullKeys] = await Promise.all([
    readPurchaseRows(accountId),
    readStripeInvoices(customerId),
    countActiveFullKeys(accountId),
  ]);
  return { ledger, system: { ...ledger, d1, stripe, activeFullKeys } };
}

async function countActiveFullKeys(accountId: string): Promise<number> {
  const rows = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(
      and(eq(apiKeys.accountId, accountId), eq(apiKeys.scope, "full"), isNull(apiKeys.revokedAt)),
    )
    .all();
  return rows.length;
}

/** Nothing in flight: no pending recharge in the ledger or D1, nothing waiting in the outbox. */
export function busyWith(ledger: LiveLedger, d1: PurchaseRow[]): string | null {
  const pending = ledger.recharges.filter((r) => r.status === "pending").map((r) => r.id);
  const pendingRows = d1.filter((r) => r.status === "pending").map((r) => r.id);
  if (pending.length > 0) return `ledger recharges pending: ${pending.join(", ")}`;
  if (pendingRows.length > 0) return `D1 purchases pending: ${pendingRows.join(", ")}`;
  if (ledger.outbox.length > 0) return `outbox holds ${ledger.outbox.map((o) => o.id).join(", ")}`;
  return null;
}
