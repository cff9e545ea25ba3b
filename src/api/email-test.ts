/**
 * `POST /admin/email-test` (`npm run email:test -- you@example.com`): sends one email through
 * the configured sender, the way every customer email goes (recorded in D1, then sent once),
 * and answers what happened, so an operator learns that email works before a customer needs
 * a sign-up link or a receipt. Operator token, like every /admin route.
 */
import { Hono } from "hono";
import { z } from "zod";
import { adminAuth } from "../accounts/operator-auth";
import { OPERATOR_EMAIL_ACCOUNT } from "../accounts/signup-ceiling";
import { listEmails } from "../db/emails";
import { sendEmailOnce } from "../delivery/mailer";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseJson } from "../platform/body";
import { brandOf } from "../platform/brand";

const Body = z.strictObject({ to: z.email().max(254) });

const emailTestDoc = describe({
  summary: "Send one test email through the configured sender",
  tag: "Operators",
  security: "operator",
  body: Body,
});

export const emailTestRoutes = new Hono<AppEnv>()
  .use(adminAuth)
  .post("/", emailTestDoc, async (c) => {
    const { to } = await parseJson(c, Body);
    const brand = brandOf(c.env);
    const ref = `email_test:${crypto.randomUUID()}`;
    const outcome = await sendEmailOnce(c.env, c.get("db"), {
      ref,
      accountId: OPERATOR_EMAIL_ACCOUNT,
      kind: "email_test",
      to,
      subject: `${brand.company}: test email`,
      text: [
        `This is a test email from the ${brand.company} gateway (npm run email:test).`,
        `If you can read it, email from ${c.env.EMAIL_FROM} reaches ${to}: sign-up links, receipts and payment notices will arrive too.`,
      ].join("\n\n"),
    });
    // The row as recorded: its id, and the sender's error when it failed.
    const [row] = (await listEmails(c.get("db"), OPERATOR_EMAIL_ACCOUNT, 5, to)).filter(
      (r) => r.kind === "email_test",
    );
    return c.json(
      {
        status: outcome,
        to,
        from: c.env.EMAIL_FROM,
        environment: c.env.ENVIRONMENT ?? "local",
        sender: "Cloudflare Email Service, through the EMAIL send_email binding",
        email: row ? { id: row.id, status: row.status, error: row.error } : null,
      },
      200,
    );
  });
