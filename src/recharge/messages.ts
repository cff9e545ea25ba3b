import { z } from "zod";
import type { PendingPurchase, TransactionRow } from "../db/transactions";
import { CURRENCY, PACKAGE_IDS, type PackageId } from "../pricing";

/** A purchase job on the recharge queue. The recharge id is the idempotency key everywhere. */
export const RechargeJob = z.object({
  kind: z.enum(["auto_recharge", "top_up"]),
  recharge_id: z.string().min(1),
  account_id: z.string().min(1),
  package: z.enum(PACKAGE_IDS),
  credits: z.number().int().positive(),
  amount_cents: z.number().int().positive(),
  currency: z.literal(CURRENCY),
  created_at: z.string(),
  /**
   * The payment method this recharge pays with, frozen when it was created (jobs written
   * before this field existed carry none: the consumer freezes one at the first attempt).
   */
  payment_method: z.string().nullable().optional(),
});
export type RechargeJob = z.infer<typeof RechargeJob>;

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

/** The job of a purchase, rebuilt from its D1 row (the row holds everything the job carries). */
export function jobFromTransaction(row: TransactionRow): RechargeJob {
  return {
    kind: row.type === "top_up" ? "top_up" : "auto_recharge",
    recharge_id: row.id,
    account_id: row.accountId,
    package: row.package as PackageId,
    credits: row.credits,
    amount_cents: row.amountCents,
    currency: CURRENCY,
    created_at: row.createdAt,
    payment_method: row.paymentMethodId,
  };
}
