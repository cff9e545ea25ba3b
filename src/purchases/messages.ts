import type { TransactionRow } from "../db/transactions";
import { RechargeJob } from "../ledger/domain/recharge-job";
import { CURRENCY, type PackageId } from "../pricing";

export { RechargeJob };

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
