/** The `accounts` table: every read and write of it. Balances are never here (the ledger's). */
import { and, eq, isNull, lt, type SQL, sql } from "drizzle-orm";
import type { Actor } from "../platform/actor";
import { mailboxKey } from "../platform/email-address";
import type { PlanId } from "../pricing";
import { auditInsert } from "./audit-log";
import type { Db } from "./client";
import { accounts } from "./schema";

export type AccountRow = typeof accounts.$inferSelect;
export type NewAccount = typeof accounts.$inferInsert;

export function getAccount(db: Db, id: string): Promise<AccountRow | undefined> {
  return db.select().from(accounts).where(eq(accounts.id, id)).get();
}

export async function accountExists(db: Db, id: string): Promise<boolean> {
  const row = await db.select({ id: accounts.id }).from(accounts).where(eq(accounts.id, id)).get();
  return row !== undefined;
}

export function accountByStripeCustomer(
  db: Db,
  customerId: string,
): Promise<AccountRow | undefined> {
  return db.select().from(accounts).where(eq(accounts.stripeCustomerId, customerId)).get();
}

/**
 * The insert, unawaited, so account creation can batch it with the first key and grant. The
 * mailbox key is always derived here, so no account can be made without one.
 */
export function insertAccount(db: Db, values: Omit<NewAccount, "emailKey">) {
  return db.insert(accounts).values({ ...values, emailKey: mailboxKey(values.email) });
}

export async function setStripeCustomer(db: Db, id: string, customerId: string): Promise<void> {
  await db.update(accounts).set({ stripeCustomerId: customerId }).where(eq(accounts.id, id));
}

export interface CardOnFile {
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
}

/** The payment method on file and its card, for display; null clears both. */
export async function setPaymentMethod(
  db: Db,
  id: string,
  paymentMethodId: string | null,
  card: CardOnFile | null,
): Promise<void> {
  await db
    .update(accounts)
    .set({
      paymentMethodId,
      cardBrand: card?.brand ?? null,
      cardLast4: card?.last4 ?? null,
      cardExpMonth: card?.expMonth ?? null,
      cardExpYear: card?.expYear ?? null,
    })
    .where(eq(accounts.id, id));
}

/**
 * Mirrors the plan for listings. A compare-and-set on the version keeps the newest whatever
 * order the Stripe events that carry it arrive in.
 */
export interface SubscriptionMirror {
  id: string | null;
  status: string | null;
  periodEnd: string | null;
  cancelAtPeriodEnd: boolean;
}

export async function mirrorPlan(
  db: Db,
  id: string,
  plan: PlanId,
  version: number,
  subscription: SubscriptionMirror | string | null,
  who: PlanAudit,
): Promise<boolean> {
  const sub =
    typeof subscription === "string" || subscription === null
      ? { stripeSubscriptionId: subscription }
      : subscriptionColumns(subscription);
  const [, result] = await db.batch([
    planChangeAudit(db, id, plan, who, sql`plan_updated_at < ${version}`),
    db
      .update(accounts)
      // A plan that comes from Stripe is paid for (or free again): never complimentary.
      .set({ plan, planUpdatedAt: version, complimentary: false, ...sub })
      .where(and(eq(accounts.id, id), lt(accounts.planUpdatedAt, version))),
  ]);
  return (result.meta.changes ?? 0) > 0;
}

/** Who changed the plan and the event that said so, for the audit log (money rule 12). */
export interface PlanAudit {
  actor: Actor;
  ref: string;
}

/**
 * The `plan.changed` entry of a mirror update, placed before it in the same batch: written
 * only when the update will apply (`applies`, its own guard) and the plan it shows differs,
 * with the plan it replaces read in the same statement. So a change is logged exactly once,
 * whatever order and however often Stripe delivers.
 */
function planChangeAudit(db: Db, id: string, plan: PlanId, who: PlanAudit, applies: SQL) {
  return auditInsert(
    db,
    {
      accountId: id,
      actor: who.actor,
      action: "plan.changed",
      details: sql`json_object('from', (SELECT plan FROM accounts WHERE id = ${id}), 'to', ${plan}, 'event', ${who.ref})`,
    },
    sql`EXISTS (SELECT 1 FROM accounts WHERE id = ${id} AND plan != ${plan} AND ${applies})`,
  );
}

function subscriptionColumns(subscription: SubscriptionMirror) {
  return {
    stripeSubscriptionId: subscription.id,
    subscriptionStatus: subscription.status,
    subscriptionPeriodEnd: subscription.periodEnd,
    subscriptionCancelAtPeriodEnd: subscription.cancelAtPeriodEnd,
  };
}

/**
 * Rewrites the mirrored subscription fields at the version already stored, and only there: for
 * a second event of the same kind in the same second, whose fields were re-read from Stripe.
 */
export async function mirrorSubscriptionAt(
  db: Db,
  id: string,
  plan: PlanId,
  version: number,
  subscription: SubscriptionMirror,
  who: PlanAudit,
): Promise<void> {
  await db.batch([
    planChangeAudit(db, id, plan, who, sql`plan_updated_at = ${version}`),
    db
      .update(accounts)
      .set({ plan, complimentary: false, ...subscriptionColumns(subscription) })
      .where(and(eq(accounts.id, id), eq(accounts.planUpdatedAt, version))),
  ]);
}

/**
 * Makes `subscriptionId` the account's current subscription if the current one is still
 * `expected` (null: none yet), so two deliveries racing to claim it end with one winner.
 * True when it is now the current one (also when it already was).
 */
export async function claimCurrentSubscription(
  db: Db,
  id: string,
  subscriptionId: string,
  expected: string | null,
): Promise<boolean> {
  if (expected === subscriptionId) return true;
  const result = await db
    .update(accounts)
    .set({ currentSubscriptionId: subscriptionId })
    .where(
      and(
        eq(accounts.id, id),
        expected === null
          ? isNull(accounts.currentSubscriptionId)
          : eq(accounts.currentSubscriptionId, expected),
      ),
    );
  return (result.meta.changes ?? 0) > 0;
}

/**
 * Whether an account uses this mailbox (`mailboxKey`: case, `+tag`, Gmail's dots), through
 * the `email_key` index: sign-up asks this on every request, before its limits.
 */
export async function accountExistsForEmail(db: Db, email: string): Promise<boolean> {
  const row = await db
    .select({ id: accounts.id })
    .from(accounts)
    .where(eq(accounts.emailKey, mailboxKey(email)))
    .limit(1)
    .get();
  return row !== undefined;
}

/** The ledger's suspension mirrored for search, the console and the overview (null: none). */
export async function setSuspension(
  db: Db,
  id: string,
  suspension: { at: number; reason: string } | null,
): Promise<void> {
  await db
    .update(accounts)
    .set({
      suspendedAt: suspension ? new Date(suspension.at).toISOString() : null,
      suspensionReason: suspension?.reason ?? null,
    })
    .where(eq(accounts.id, id));
}

/** The account's escrow shard count (docs/ledger-shards.md); returns the one it replaced. */
export async function setShards(db: Db, id: string, shards: number): Promise<number> {
  const before = await db
    .select({ shards: accounts.shards })
    .from(accounts)
    .where(eq(accounts.id, id))
    .get();
  await db.update(accounts).set({ shards }).where(eq(accounts.id, id));
  return before?.shards ?? 1;
}
