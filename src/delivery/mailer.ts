import type { Db } from "../db/client";
import { claimEmail, ensureEmail, markEmailFailed, markEmailSent, REDACTED } from "../db/emails";
import { type BrandVars, brandOf } from "../platform/brand";
import { newId } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { signature } from "./email-templates";

export interface OutgoingEmail {
  /** Natural key of what the email reports: the same event never sends twice. */
  ref: string;
  accountId: string;
  kind: string;
  to: string;
  subject: string;
  text: string;
  /**
   * A secret the text carries (a sign-up link's token): sent, never stored. The row keeps the
   * text (and any error) with it replaced by `[redacted]`, so it cannot be retried from the row.
   */
  secret?: string;
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
 * Records the email in D1 (its `secret`, if any, redacted), then sends it once. A failed send
 * is recorded (status `failed`, with the error) rather than thrown: the money has already
 * moved, and the reconciler retries failed emails (not redacted ones). Safe to call again for
 * the same ref.
 */
export async function sendEmailOnce(
  env: Pick<Bindings, "EMAIL" | "EMAIL_FROM"> & BrandVars,
  db: Db,
  unsigned: OutgoingEmail,
  mailer: Mailer = cloudflareMailer(env.EMAIL),
): Promise<"sent" | "already_sent" | "failed" | "in_progress"> {
  const email = { ...unsigned, text: `${unsigned.text}\n\n${signature(brandOf(env))}` };
  const { secret, ...fields } = email;
  const redact = (s: string) => (secret ? s.replaceAll(secret, REDACTED) : s);
  const row = await ensureEmail(db, { id: newId("em"), ...fields, text: redact(email.text) });
  if (row.status === "sent") return "already_sent";
  // Claim before sending: of racing deliveries of the same event, one sends.
  if (!(await claimEmail(db, row.id))) return "in_progress";
  try {
    await mailer.send({
      from: env.EMAIL_FROM,
      to: row.toAddress,
      subject: row.subject,
      // The stored text lacks the secret: the caller's text is what goes out.
      text: secret ? email.text : row.textBody,
    });
    await markEmailSent(db, row.id);
    return "sent";
  } catch (err) {
    const error = redact(String(err));
    console.error("email send failed", email.ref, error);
    await markEmailFailed(db, row.id, error);
    return "failed";
  }
}
