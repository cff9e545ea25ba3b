import { getAccount } from "../db/accounts";
import type { Db } from "../db/client";
import type { BrandVars } from "../platform/brand";
import type { Bindings } from "../platform/env";
import { sendEmailOnce } from "./mailer";

/**
 * Emails the account's owner (the address on the account in D1). `ref` names the event the
 * email reports, so the same event never emails twice. Unknown accounts get nothing.
 */
export async function mailAccount(
  env: Pick<Bindings, "EMAIL" | "EMAIL_FROM"> & BrandVars,
  db: Db,
  email: { ref: string; accountId: string; kind: string; subject: string; text: string },
): Promise<"sent" | "already_sent" | "failed" | "in_progress" | "no_account"> {
  const account = await getAccount(db, email.accountId);
  if (!account) return "no_account";
  return sendEmailOnce(env, db, { ...email, to: account.email });
}
