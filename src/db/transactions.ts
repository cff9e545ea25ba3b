/**
 * The `transactions` table: the customer-visible history (purchases, monthly grants,
 * adjustments). Every writer here is idempotent on the row's natural id (the recharge id, the
 * invoice or cycle ref, the adjustment ref), so a retry or redelivery can never add a second row.
 */

import { and, desc, eq, gte, inArray, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import type { RechargeJob } from "../ledger/domain/recharge-job";
import type { HistoryRow } from "../ledger/domain/types";
import { CURRENCY, type PackageId } from "../pricing";
import type { Db } from "./client";
import { transactions } from "./schema";

export type TransactionRow = typeof transactions.$inferSelect;
export type PurchaseKind = "auto_recharge" | "top_up";

export interface PendingPurchase {
  id: string;
  accountId: string;
  kind: PurchaseKind;
  package: PackageId;
  credits: number;
  amountCents: number;
  createdAt: string;
  paymentMethodId?: string | null;
}

const now = () => new Date().toISOString();

/**
 * The row of a purchase, created pending before its job is queued, so every writer (ledger,
 * consumer, dead-letter consumer) can call this and one row results. It is also what the
 * reconciler scans: a purchase is never invisible to operators (money rule 7).
 */
export async function recordPendingPurchase(
  db: Db,
  p: PendingPurchase,
  options: { needsAttention?: boolean } = {},
): Promise<void> {
  const insert = db.insert(transactions).values({
    id: p.id,
    accountId: p.accountId,
    type: p.kind,
    status: "pending",
    credits: p.credits,
    amountCents: p.amountCents,
    currency: CURRENCY,
    package: p.package,
    createdAt: p.createdAt,
    paymentMethodId: p.paymentMethodId ?? null,
    needsAttention: options.needsAttention ?? false,
  });
  if (options.needsAttention) {
    await insert.onConflictDoUpdate({
      target: transactions.id,
      set: { needsAttention: true, updatedAt: now() },
    });
  } else {
    await insert.onConflictDoNothing({ target: transactions.id });
  }
}

/** What Stripe says about a purchase's invoice (any of it may be unknown). */
export interface PurchaseInvoice {
  invoiceId?: string | null;
  invoiceUrl?: string | null;
  paymentIntentId?: string | null;
}

/**
 * Paid. Overrides `failed` and `requires_action`: money taken means credits given (a paid
 * invoice seen after a void or a decline still wins). Known Stripe ids are never cleared.
 */
export async function markPurchaseSucceeded(
  db: Db,
  id: string,
  invoice: PurchaseInvoice,
): Promise<void> {
  await db
    .update(transactions)
    .set({
      status: "succeeded",
      invoiceId: sql`coalesce(${invoice.invoiceId ?? null}, ${transactions.invoiceId})`,
      invoiceUrl: sql`coalesce(${invoice.invoiceUrl ?? null}, ${transactions.invoiceUrl})`,
      paymentIntentId: sql`coalesce(${invoice.paymentIntentId ?? null}, ${transactions.paymentIntentId})`,
      actionUrl: null,
      failureCode: null,
      failureMessage: null,
      updatedAt: now(),
    })
    .where(eq(transactions.id, id));
}

/**
 * Failed (declined, voided, no card), from pending or waiting only: a paid purchase stays paid,
 * and a failed one keeps its first reason (a late `invoice.voided` after a decline), as the
 * ledger does.
 */
export async function markPurchaseFailed(
  db: Db,
  id: string,
  failure: PurchaseInvoice & { code: string; message: string },
): Promise<void> {
  await db
    .update(transactions)
    .set({
      status: "failed",
      invoiceId: sql`coalesce(${failure.invoiceId ?? null}, ${transactions.invoiceId})`,
      invoiceUrl: sql`coalesce(${failure.invoiceUrl ?? null}, ${transactions.invoiceUrl})`,
      paymentIntentId: sql`coalesce(${failure.paymentIntentId ?? null}, ${transactions.paymentIntentId})`,
      actionUrl: null,
      failureCode: failure.code,
      failureMessage: failure.message,
      updatedAt: now(),
    })
    .where(
      and(eq(transactions.id, id), inArray(transactions.status, ["pending", "requires_action"])),
    );
}

/**
 * Waiting for the customer to authenticate on the hosted invoice page. Only from pending: a
 * purchase already paid or failed (a late `payment_action_required`) keeps its state.
 */
export async function markPurchaseRequiresAction(
  db: Db,
  id: string,
  action: PurchaseInvoice & { actionUrl: string | null; code: string; message: string },
): Promise<void> {
  await db
    .update(transactions)
    .set({
      status: "requires_action",
      invoiceId: sql`coalesce(${action.invoiceId ?? null}, ${transactions.invoiceId})`,
      invoiceUrl: sql`coalesce(${action.invoiceUrl ?? null}, ${transactions.invoiceUrl})`,
      paymentIntentId: sql`coalesce(${action.paymentIntentId ?? null}, ${transactions.paymentIntentId})`,
      actionUrl: action.actionUrl,
      failureCode: action.code,
      failureMessage: action.message,
      updatedAt: now(),
    })
    .where(and(eq(transactions.id, id), eq(transactions.status, "pending")));
}

export interface MonthlyGrant {
  id: string;
  accountId: string;
  credits: number;
  at: string;
  /** A paid subscription invoice's amount, id and hosted page (none for alarm-driven cycles). */
  amountCents?: number;
  invoiceId?: string | null;
  invoiceUrl?: string | null;
  /** What the row is, when "monthly grant" does not say it (e.g. "Upgrade to Pro"). */
  description?: string | null;
}

/** A cycle's monthly grant in the history (statement unawaited, so it can join a batch). */
export function monthlyGrantInsert(db: Db, grant: MonthlyGrant) {
  return db
    .insert(transactions)
    .values({
      id: grant.id,
      accountId: grant.accountId,
      type: "monthly_grant",
      status: "succeeded",
      credits: grant.credits,
      amountCents: grant.amountCents ?? 0,
      invoiceId: grant.invoiceId ?? null,
      invoiceUrl: grant.invoiceUrl ?? null,
      description: grant.description ?? null,
      createdAt: grant.at,
    })
    .onConflictDoNothing({ target: transactions.id });
}

/**
 * A history row the ledger decided (a grant, an adjustment), copied from its outbox. Idempotent
 * on the row id: a retried delivery writes nothing twice.
 */
export async function recordHistoryRow(db: Db, row: HistoryRow): Promise<void> {
  await db
    .insert(transactions)
    .values({
      id: row.id,
      accountId: row.account_id,
      type: row.type,
      status: "succeeded",
      credits: row.credits,
      amountCents: row.amount_cents,
      invoiceId: row.invoice_id,
      invoiceUrl: row.invoice_url,
      description: row.description,
      createdAt: row.created_at,
      updatedAt: now(),
    })
    .onConflictDoNothing({ target: transactions.id });
}

/**
 * Freezes the card a purchase pays with, once: the first caller's choice stands, and every
 * later attempt reads it back. For purchases created before the ledger froze it itself.
 */
export async function freezePaymentMethod(
  db: Db,
  id: string,
  paymentMethodId: string,
): Promise<string | null> {
  await db
    .update(transactions)
    .set({ paymentMethodId })
    .where(and(eq(transactions.id, id), isNull(transactions.paymentMethodId)));
  return (await getTransaction(db, id))?.paymentMethodId ?? null;
}

export function getTransaction(db: Db, id: string): Promise<TransactionRow | undefined> {
  return db.select().from(transactions).where(eq(transactions.id, id)).get();
}

const purchase = inArray(transactions.type, ["auto_recharge", "top_up"]);

/** Pending purchases created before `before` or marked for attention: the reconciler's work. */
export function stalePendingPurchases(
  db: Db,
  before: string,
  limit: number,
): Promise<TransactionRow[]> {
  return db
    .select()
    .from(transactions)
    .where(
      and(
        purchase,
        eq(transactions.status, "pending"),
        or(lt(transactions.createdAt, before), eq(transactions.needsAttention, true)),
      ),
    )
    .limit(limit)
    .all();
}

/**
 * Purchases waiting for the customer to authenticate, oldest first: the reconciler checks
 * whether they were paid meanwhile and voids the ones that waited too long.
 */
export function purchasesAwaitingAction(db: Db, limit: number): Promise<TransactionRow[]> {
  return db
    .select()
    .from(transactions)
    .where(and(purchase, eq(transactions.status, "requires_action")))
    .orderBy(transactions.createdAt)
    .limit(limit)
    .all();
}

export function succeededPurchasesSince(
  db: Db,
  since: string,
  limit: number,
): Promise<TransactionRow[]> {
  return db
    .select()
    .from(transactions)
    .where(and(purchase, eq(transactions.status, "succeeded"), gte(transactions.createdAt, since)))
    .limit(limit)
    .all();
}

/** One page of an account's history, newest first, after the (created_at, id) of `after`. */
export function listTransactionPage(
  db: Db,
  accountId: string,
  limit: number,
  after?: { createdAt: string; id: string },
) {
  let older: SQL | undefined;
  if (after) {
    older = or(
      lt(transactions.createdAt, after.createdAt),
      and(eq(transactions.createdAt, after.createdAt), lt(transactions.id, after.id)),
    );
  }
  return db
    .select({
      id: transactions.id,
      type: transactions.type,
      status: transactions.status,
      credits: transactions.credits,
      amount_cents: transactions.amountCents,
      currency: transactions.currency,
      package: transactions.package,
      failure_code: transactions.failureCode,
      description: transactions.description,
      invoice_url: transactions.invoiceUrl,
      action_url: transactions.actionUrl,
      created_at: transactions.createdAt,
    })
    .from(transactions)
    .where(and(eq(transactions.accountId, accountId), older))
    .orderBy(desc(transactions.createdAt), desc(transactions.id))
    .limit(limit)
    .all();
}

/** The D1 row a job stands for. */
export function pendingPurchaseOf(job: RechargeJob): PendingPurchase {
  return {
    id: job.recharge_id,
    accountId: job.account_id,
    kind: job.kind,
    package: job.package,
    credits: job.credits,
    amountCents: job.amount_cents,
    createdAt: job.created_at,
    paymentMethodId: job.payment_method ?? null,
  };
}
