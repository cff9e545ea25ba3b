import { z } from "zod";
import { CURRENCY, PACKAGE_IDS } from "../../pricing";

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
