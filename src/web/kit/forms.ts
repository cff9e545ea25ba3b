/** Form posts of the Billing page: reading the body, the session behind it, CSRF, validation. */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import {
  type CsrfPurpose,
  readSession,
  type Session,
  sessionSecret,
  verifyCsrf,
} from "../../accounts/sessions";
import type { AppEnv } from "../../http/context";
import { postedFromThisOrigin } from "../../http/form-token";
import { keyActor } from "../../platform/actor";
import { fieldErrors, JSON_BODY_LIMIT, readBodyLimited } from "../../platform/body";

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

/**
 * The session a form post acts for: signed in (else SignedOutError), sent from this origin and
 * carrying the CSRF token of this form's purpose (else 403).
 */
export async function formSession(
  c: Context<AppEnv>,
  purpose: CsrfPurpose,
  fields: Record<string, string>,
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
  // Who acts, for the audit log: as for the API (gateway/auth.ts), the session's sign-in.
  c.set("actor", keyActor(session.keyId));
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
