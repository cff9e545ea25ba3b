/** Delivers the account ledger's outbox items once the write that made them has committed. */
import { recordBalance } from "../db/account-balances";
import { dbFor } from "../db/client";
import { pendingPurchaseOf, recordHistoryRow, recordPendingPurchase } from "../db/transactions";
import type { OutboxItem } from "../ledger/domain/types";
import type { Bindings } from "../platform/env";
import { mailAccount } from "./account-mail";
import * as templates from "./email-templates";

/**
 * Sends one outbox item: recharge jobs go to the queue (their D1 row first); projections are
 * written to D1's history, idempotent on the row id (a balance, kept only if newer); notices go out as email, deduplicated in
 * D1 by their reference. Throws when it could not; the caller keeps the row for the alarm.
 */
export async function deliverItem(env: Bindings, item: OutboxItem): Promise<void> {
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
  const mail =
    item.kind === "low_balance"
      ? templates.lowBalance({
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
