/** Delivers the account ledger's outbox items once the write that made them has committed. */
import { recordBalance } from "../db/account-balances";
import { dbFor } from "../db/client";
import {
  getTransaction,
  markPurchaseFailed,
  markPurchaseRequiresAction,
  markPurchaseSucceeded,
  pendingPurchaseOf,
  recordHistoryRow,
  recordPendingPurchase,
} from "../db/transactions";
import type { OutboxItem, PurchaseProjection } from "../ledger/domain/types";
import { brandOf } from "../platform/brand";
import type { Bindings } from "../platform/env";
import { mailAccount } from "./account-mail";
import * as templates from "./email-templates";
import { webhookEventOf } from "./webhook-events";
import { fanOut } from "./webhooks";

/**
 * Sends one outbox item: recharge jobs go to the queue (their D1 row first); projections are
 * written to D1's history, idempotent on the row id (a balance, kept only if newer); a
 * recharge's new status to its D1 row, then its email; notices go out as email, deduplicated
 * in D1 by their reference. An item that is also a customer's event (a crossing, a pause, a
 * recharge's outcome) then fans out to the account's webhook endpoints. Throws when it could
 * not; the caller keeps the row for the alarm, and each step is idempotent when replayed.
 */
export async function deliverItem(env: Bindings, item: OutboxItem): Promise<void> {
  await deliverEffect(env, item);
  const event = webhookEventOf(item);
  if (event) await fanOut(env, dbFor(env.DB), event);
}

async function deliverEffect(env: Bindings, item: OutboxItem): Promise<void> {
  // Nothing of its own: it exists for the fan-out below.
  if (item.type === "event") return;
  if (item.type === "projection") {
    await recordHistoryRow(dbFor(env.DB), item.row);
    return;
  }
  if (item.type === "balance") {
    await recordBalance(dbFor(env.DB), item.balance);
    return;
  }
  if (item.type === "recharge") {
    await recordPendingPurchase(dbFor(env.DB), pendingPurchaseOf(item.job));
    await env.RECHARGE_QUEUE.send(item.job);
    return;
  }
  if (item.type === "purchase") {
    await deliverPurchase(env, item);
    return;
  }
  const mail =
    item.kind === "low_balance"
      ? templates.lowBalance({
          brand: brandOf(env),
          level: item.level,
          total: item.total,
          situation: item.situation,
          dashboardUrl: env.DASHBOARD_URL,
        })
      : templates.autoRechargePaused({
          limitCents: item.limit_cents,
          resumesAt: item.resumes_at,
          dashboardUrl: env.DASHBOARD_URL,
        });
  await mailAccount(env, dbFor(env.DB), {
    ref: item.ref,
    accountId: item.account_id,
    kind: item.kind,
    ...mail,
  });
}

/**
 * A recharge's status as the ledger decided it: D1's purchase row (whose guards make a replay
 * change nothing: failed keeps its first reason, waiting is reached only from pending), then
 * the customer's email, once per recharge and outcome.
 */
async function deliverPurchase(env: Bindings, p: PurchaseProjection): Promise<void> {
  const db = dbFor(env.DB);
  const id = p.recharge_id;
  const code = p.code ?? "unknown";
  const message = p.message ?? "";
  // The pending row comes first with the job; written here too, so no update finds no row.
  await recordPendingPurchase(db, {
    id,
    accountId: p.account_id,
    kind: p.kind,
    package: p.package,
    credits: p.credits,
    amountCents: p.amount_cents,
    createdAt: p.created_at,
  });
  let mail: { subject: string; text: string };
  if (p.status === "succeeded") {
    await markPurchaseSucceeded(db, id, p.payment);
    mail = templates.rechargeSucceeded({
      kind: p.kind,
      credits: p.credits,
      amountCents: p.amount_cents,
      rechargeId: id,
      balanceTotal: p.balance_total,
      dashboardUrl: env.DASHBOARD_URL,
    });
  } else if (p.status === "failed") {
    await markPurchaseFailed(db, id, { ...p.payment, code, message });
    mail = templates.rechargeFailed({
      kind: p.kind,
      amountCents: p.amount_cents,
      code,
      message,
      rechargeId: id,
      // The page of an invoice that an earlier attempt opened, when this outcome names none.
      invoiceUrl: p.payment.invoiceUrl ?? (await getTransaction(db, id))?.invoiceUrl ?? null,
      dashboardUrl: env.DASHBOARD_URL,
    });
  } else {
    await markPurchaseRequiresAction(db, id, {
      ...p.payment,
      code,
      message,
      actionUrl: p.action_url,
    });
    mail = templates.rechargeNeedsAction({
      kind: p.kind,
      amountCents: p.amount_cents,
      credits: p.credits,
      actionUrl: p.action_url,
      rechargeId: id,
      dashboardUrl: env.DASHBOARD_URL,
    });
  }
  const kind = `recharge_${p.status}`;
  await mailAccount(env, db, { ref: `${kind}:${id}`, accountId: p.account_id, kind, ...mail });
}
