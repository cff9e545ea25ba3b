import { newId } from "../crypto";
import type { Db } from "../db/client";
import { claimEmail, ensureEmail, markEmailFailed, markEmailSent } from "../db/emails";
import type { Bindings } from "../env";

export interface OutgoingEmail {
  /** Natural key of what the email reports: the same event never sends twice. */
  ref: string;
  accountId: string;
  kind: string;
  to: string;
  subject: string;
  text: string;
}

/** The mail port: production uses Cloudflare's `send_email` binding (Email Service). */
export interface Mailer {
  send(message: { from: string; to: string; subject: string; text: string }): Promise<void>;
}

export function cloudflareMailer(binding: SendEmail): Mailer {
  return {
    async send(message) {
      await binding.send(message);
    },
  };
}

/**
 * Records the email in D1, then sends it once. A failed send is recorded (status `failed`,
 * with the error) rather than thrown: the money has already moved, and the reconciler retries
 * failed emails. Safe to call again for the same ref.
 */
export async function sendEmailOnce(
  env: Pick<Bindings, "EMAIL" | "EMAIL_FROM">,
  db: Db,
  email: OutgoingEmail,
  mailer: Mailer = cloudflareMailer(env.EMAIL),
): Promise<"sent" | "already_sent" | "failed" | "in_progress"> {
  const row = await ensureEmail(db, { id: newId("em"), ...email });
  if (row.status === "sent") return "already_sent";
  // Claim before sending: of racing deliveries of the same event, one sends.
  if (!(await claimEmail(db, row.id))) return "in_progress";
  try {
    await mailer.send({
      from: env.EMAIL_FROM,
      to: row.toAddress,
      subject: row.subject,
      text: row.textBody,
    });
    await markEmailSent(db, row.id);
    return "sent";
  } catch (err) {
    console.error("email send failed", email.ref, String(err));
    await markEmailFailed(db, row.id, String(err));
    return "failed";
  }
}
