import { z } from "zod";
import { PACKAGE_IDS } from "../pricing";

/** A purchase job on the recharge queue. The recharge id is the idempotency key everywhere. */
export const RechargeJob = z.object({
  kind: z.enum(["auto_recharge", "top_up"]),
  recharge_id: z.string().min(1),
  account_id: z.string().min(1),
  package: z.enum(PACKAGE_IDS),
  credits: z.number().int().positive(),
  amount_cents: z.number().int().positive(),
  currency: z.literal("usd"),
  created_at: z.string(),
});
export type RechargeJob = z.infer<typeof RechargeJob>;
