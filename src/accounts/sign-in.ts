/**
 * Signing a person in by email (contract: "People, roles and sign-in"): asking for a link and
 * using it. The link is a `sign_in` row of the one token mechanism (./email-links.ts), under
 * sign-up's limits.
 *
 * No enumeration: every request does the same work whatever the address (a membership lookup,
 * a row counted by the limits, one email) and gets the same answer. Only the email differs: a
 * member gets a link, anyone else is told no account uses the address (its row is stored
 * already used, and its token is never sent anywhere).
 */
import { accountExists } from "../db/accounts";
import type { Db } from "../db/client";
import { type Membership, membershipsOf, memberToSignIn } from "../db/members";
import { consumeToken, insertOperatorSignIn, usableToken } from "../db/signup-tokens";
import { signInLink, signInNoAccount } from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import type { Actor } from "../platform/actor";
import { brandOf } from "../platform/brand";
import { sha256Hex } from "../platform/crypto";
import { mailboxKey } from "../platform/email-address";
import type { Bindings } from "../platform/env";
import { newLinkToken, recordLinkRequest } from "./email-links";
import { recordOperatorAction } from "./operator-actions";
import { recordSignIn } from "./passkeys";
import {
  EMAIL_KINDS,
  LINK_TTL_MS,
  SIGN_IN_CONFIRM_PATH,
  SIGN_UP_PATH,
  SIGNUP_EMAIL_ACCOUNT,
  signupEnabled,
  signupStoresLinks,
  TOKEN_PATTERN,
} from "./signup-config";

export type SignInRequestResult = { ok: true } | { ok: false; retryAfterSeconds: number };

/** Records the request and emails the address, unless a limit is reached (then nothing). */
export async function requestSignIn(
  env: Bindings,
  db: Db,
  input: { email: string; clientAddress: string | undefined; origin: string; secret: string },
  now = Date.now(),
): Promise<SignInRequestResult> {
  const memberships = await membershipsOf(db, mailboxKey(input.email));
  const member = memberships.length > 0;
  const request = await recordLinkRequest(
    env,
    db,
    {
      email: input.email,
      clientAddress: input.clientAddress,
      secret: input.secret,
      purpose: "sign_in",
      sendsLink: member,
    },
    now,
  );
  if (!request.ok) return request;
  const { email, token, tokenHash } = request;
  const message = member
    ? signInLink({
        brand: brandOf(env),
        link: `${input.origin}${SIGN_IN_CONFIRM_PATH}?token=${token}`,
        expiresInMinutes: LINK_TTL_MS / 60_000,
      })
    : signInNoAccount({
        brand: brandOf(env),
        signUpUrl: signupEnabled(env) ? `${input.origin}${SIGN_UP_PATH}` : null,
      });
  // As sign-up's: a failed send is recorded, never reported (the answer must not depend on it).
  await sendEmailOnce(env, db, {
    ref: `signup:${tokenHash}`,
    accountId: SIGNUP_EMAIL_ACCOUNT,
    kind: member ? EMAIL_KINDS.signIn : EMAIL_KINDS.signInUnknown,
    to: email,
    ...message,
    secret: signupStoresLinks(env) ? undefined : token,
  });
  return { ok: true };
}

export type OperatorSignInLinkResult =
  | { ok: true; memberId: string; email: string; expiresAt: number; delivery: string }
  | { ok: false; reason: "not_initialized" | "member_not_found" };

/**
 * An operator emails a member a sign-in link (`POST /admin/accounts/:id/sign-in-link` and the
 * console's form): the same link, page and single use as one the person asks for, sent to the
 * active member with `email` (default: the account's first owner). Audited with the operator
 * and the reason; the email is the account's, so the console lists it.
 */
export async function sendOperatorSignInLink(
  env: Bindings,
  db: Db,
  input: { accountId: string; email: string | null; origin: string; reason: string },
  actor: Actor,
  now = Date.now(),
): Promise<OperatorSignInLinkResult> {
  if (!(await accountExists(db, input.accountId))) return { ok: false, reason: "not_initialized" };
  const member = await memberToSignIn(
    db,
    input.accountId,
    input.email === null ? null : mailboxKey(input.email),
  );
  if (!member) return { ok: false, reason: "member_not_found" };
  const { token, tokenHash } = await newLinkToken();
  const expiresAt = now + LINK_TTL_MS;
  await insertOperatorSignIn(db, {
    tokenHash,
    email: member.email,
    emailKey: mailboxKey(member.email),
    now,
    expiresAt,
  });
  const delivery = await sendEmailOnce(env, db, {
    ref: `operator-sign-in:${tokenHash}`,
    accountId: input.accountId,
    kind: EMAIL_KINDS.signIn,
    to: member.email,
    ...signInLink({
      brand: brandOf(env),
      link: `${input.origin}${SIGN_IN_CONFIRM_PATH}?token=${token}`,
      expiresInMinutes: LINK_TTL_MS / 60_000,
      fromSupport: true,
    }),
    secret: signupStoresLinks(env) ? undefined : token,
  });
  await recordOperatorAction(db, actor, {
    action: "sign_in_link",
    accountId: input.accountId,
    reason: input.reason,
    detail: { member_id: member.id, email: member.email, delivery },
  });
  return { ok: true, memberId: member.id, email: member.email, expiresAt, delivery };
}

/**
 * What the link's page offers without using it: the accounts its person may sign in to. Null
 * when the link cannot be used (unknown, expired, used) or its person is a member of none now.
 */
export async function peekSignIn(
  db: Db,
  token: string,
  now = Date.now(),
): Promise<{ email: string; memberships: Membership[] } | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const row = await usableToken(db, await sha256Hex(token), now, "sign_in");
  if (!row) return null;
  const memberships = await membershipsOf(db, row.emailKey);
  return memberships.length > 0 ? { email: row.email, memberships } : null;
}

export type SignInConfirmResult =
  | { kind: "invalid" }
  | { kind: "signed_in"; accountId: string; memberId: string; epoch: number; email: string };

/**
 * Uses the link (once, atomically) to sign in to `accountId`, which must be one of the
 * person's accounts now (the page lists them; a person in one account has it preselected).
 * `method: "passkey"` uses instead the account choice a passkey sign-in left (./passkeys.ts).
 */
export async function confirmSignIn(
  db: Db,
  input: { token: string; accountId: string; method?: "email" | "passkey" },
  now = Date.now(),
): Promise<SignInConfirmResult> {
  if (!TOKEN_PATTERN.test(input.token)) return { kind: "invalid" };
  const passkey = input.method === "passkey";
  const purpose = passkey ? "passkey_sign_in" : "sign_in";
  const used = await consumeToken(db, await sha256Hex(input.token), now, purpose);
  if (!used) return { kind: "invalid" };
  const membership = (await membershipsOf(db, used.emailKey)).find(
    (m) => m.accountId === input.accountId,
  );
  if (!membership) return { kind: "invalid" };
  const signedIn = await recordSignIn(db, membership, now, passkey ? { method: "passkey" } : {});
  // The address the link went to (a passkey's person: the member's own).
  return { ...signedIn, email: passkey ? signedIn.email : used.email };
}
