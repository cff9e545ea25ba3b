/** Form posts of the Billing page: reading the body, the session behind it, CSRF, validation. */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { may, type Permission } from "../../accounts/roles";
import {
  type CsrfPurpose,
  readSession,
  type Session,
  sessionSecret,
  verifyCsrf,
} from "../../accounts/sessions";
import type { AppEnv } from "../../http/context";
import { postedFromThisOrigin } from "../../http/form-token";
import { personActor } from "../../platform/actor";
import { fieldErrors, JSON_BODY_LIMIT, readBodyLimited } from "../../platform/body";
import { pageWords, refusalStatus } from "../../platform/refusals";

/** A failure shown as an HTML page with this status. */
export class PageError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly title: string,
    message: string,
  ) {
    super(message);
    this.name = "PageError";
  }
}

/** No valid session behind a form post: the sign-in form is the answer. */
export class SignedOutError extends Error {
  constructor() {
    super("Your session has ended. Sign in again to continue.");
    this.name = "SignedOutError";
  }
}

export function forbidden(): PageError {
  return new PageError(
    403,
    "This form could not be accepted",
    "It was not sent from this page, or it is out of date. Reload Account / Billing and try again.",
  );
}

/** The fields of a urlencoded form body (first value of each), size-limited like JSON bodies. */
export async function readFields(c: Context): Promise<Record<string, string>> {
  const raw = await readBodyLimited(c.req.raw, JSON_BODY_LIMIT);
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(new TextDecoder().decode(raw))) {
    if (!(name in fields)) fields[name] = value;
  }
  return fields;
}

/** 403 `insufficient_role` as a page: the person's role does not allow this form. */
export function insufficientRole(): PageError {
  const words = pageWords("insufficient_role");
  return new PageError(refusalStatus("insufficient_role"), words.title, words.text);
}

/**
 * The session a form post acts for: signed in (else SignedOutError), sent from this origin,
 * carrying the CSRF token of this form's purpose (else 403) and, when the form needs one, by a
 * person whose role has `permission` (else 403 `insufficient_role`: the page does not offer
 * such a form to them, so only a forged or stale post gets here).
 */
export async function formSession(
  c: Context<AppEnv>,
  purpose: CsrfPurpose,
  fields: Record<string, string>,
  permission?: Permission,
): Promise<{ session: Session; secret: string }> {
  const secret = await sessionSecret(c.env);
  const session = secret ? await readSession(c) : null;
  if (!secret || !session) throw new SignedOutError();
  if (
    !(await postedFromThisOrigin(c)) ||
    !(await verifyCsrf(secret, session, purpose, fields.csrf))
  ) {
    throw forbidden();
  }
  if (permission && !may(session.role, permission)) throw insufficientRole();
  // Who acts, for the audit log: as for the API (gateway/auth.ts), the person signed in.
  c.set("actor", personActor(session.memberId, session.email));
  return { session, secret };
}

/** Validates the fields with zod; a failure is a 400 page naming the fields. */
export function parseFields<S extends z.ZodType>(
  fields: Record<string, string>,
  schema: S,
): z.infer<S> {
  const parsed = schema.safeParse(fields);
  if (!parsed.success) {
    const detail = fieldErrors(parsed.error)
      .map((f) => `${f.field}: ${f.message}`)
      .join("; ");
    throw new PageError(400, "Some fields are not valid", detail);
  }
  return parsed.data;
}
