/**
 * The operator's alarm for the global sign-up ceiling: reaching it means sign-ups are being
 * refused for everyone, most likely because someone is spraying sign-up requests from many
 * networks. Logged at error level (once per isolate per hour, not once per refused request)
 * and, when `OPERATOR_EMAIL` is set, emailed there once per hour (the email's ref is the hour,
 * so every isolate's attempt after the first finds it already sent).
 */
import type { Db } from "../db/client";
import { signupCeilingReached } from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import { type BrandVars, brandOf } from "../platform/brand";
import type { Bindings } from "../platform/env";

const HOUR_MS = 60 * 60_000;
/** Operator emails have no account: they are recorded under this account id. */
export const OPERATOR_EMAIL_ACCOUNT = "operator";

let loggedHour = "";

export async function alertSignupCeiling(
  env: Pick<Bindings, "EMAIL" | "EMAIL_FROM" | "OPERATOR_EMAIL"> & BrandVars,
  db: Db,
  limit: number,
  now: number,
): Promise<void> {
  const hour = new Date(now - (now % HOUR_MS)).toISOString();
  if (loggedHour === hour) return;
  loggedHour = hour;
  console.error(
    "sign-up email ceiling reached: every sign-up is refused until requests age out",
    `limit=${limit}/hour`,
    `hour=${hour}`,
  );
  if (!env.OPERATOR_EMAIL) return;
  await sendEmailOnce(env, db, {
    ref: `signup_ceiling:${hour}`,
    accountId: OPERATOR_EMAIL_ACCOUNT,
    kind: "signup_ceiling",
    to: env.OPERATOR_EMAIL,
    ...signupCeilingReached({ brand: brandOf(env), limit, hour }),
  });
}
