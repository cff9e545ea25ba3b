/**
 * Self-service sign-up: asking for a link, and using it.
 *
 * No account enumeration: a request for an address that already has an account does the same
 * work and gets the same answer as one for a new address (a row counted by the same limits,
 * a membership lookup, one email). Only the email differs: a member gets a sign-in link
 * (./sign-in.ts confirms it), anyone else a sign-up link.
 */

import { accountExistsForEmail } from "../db/accounts";
import type { Db } from "../db/client";
import { isActiveMemberAnywhere } from "../db/members";
import { consumeToken, releaseToken, usableToken } from "../db/signup-tokens";
import { signInLink, signupExistingAccount, signupLink } from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import type { LocationHint } from "../ledger/client";
import { brandOf } from "../platform/brand";
import { sha256Hex } from "../platform/crypto";
import { mailboxKey } from "../platform/email-address";
import type { Bindings } from "../platform/env";
import { createAccount } from "./create-account";
import { recordLinkRequest } from "./email-links";
import {
  CONFIRM_PATH,
  EMAIL_KINDS,
  LINK_TTL_MS,
  SIGN_IN_CONFIRM_PATH,
  SIGN_IN_PATH,
  SIGNUP_EMAIL_ACCOUNT,
  signupStoresLinks,
  TOKEN_PATTERN,
} from "./signup-config";

export type SignupRequestResult = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Records the request and emails the address, unless a limit is reached (then nothing). An
 * address that is already a member somewhere gets a sign-in link instead (a `sign_in` row, the
 * same limits): a person who lost their way in signs in, rather than being told to find a key.
 * One that only names an account it is no longer a member of gets no link at all.
 */
export async function requestSignup(
  env: Bindings,
  db: Db,
  input: { email: string; clientAddress: string | undefined; origin: string; secret: string },
  now = Date.now(),
): Promise<SignupRequestResult> {
  const key = mailboxKey(input.email);
  const member = await isActiveMemberAnywhere(db, key);
  const exists = member || (await accountExistsForEmail(db, key));
  const request = await recordLinkRequest(
    env,
    db,
    {
      email: input.email,
      clientAddress: input.clientAddress,
      secret: input.secret,
      purpose: member ? "sign_in" : "signup",
      sendsLink: member || !exists,
    },
    now,
  );
  if (!request.ok) return request;
  const { email, token, tokenHash } = request;
  const minutes = LINK_TTL_MS / 60_000;
  const message = member
    ? signInLink({
        brand: brandOf(env),
        link: `${input.origin}${SIGN_IN_CONFIRM_PATH}?token=${token}`,
        expiresInMinutes: minutes,
        fromSignup: true,
      })
    : exists
      ? signupExistingAccount({ brand: brandOf(env), signInUrl: `${input.origin}${SIGN_IN_PATH}` })
      : signupLink({
          brand: brandOf(env),
          link: `${input.origin}${CONFIRM_PATH}?token=${token}`,
          expiresInMinutes: minutes,
        });
  // A failed send is recorded, never reported to the client: the answer must not depend on
  // the address. The stored copy has the token redacted (links are hashed at rest), so a failed
  // link is not retried: asking again sends a new one. SIGNUP_STORE_LINKS keeps it whole.
  await sendEmailOnce(env, db, {
    ref: `signup:${tokenHash}`,
    accountId: SIGNUP_EMAIL_ACCOUNT,
    kind: member ? EMAIL_KINDS.signIn : exists ? EMAIL_KINDS.existing : EMAIL_KINDS.link,
    to: email,
    ...message,
    secret: signupStoresLinks(env) ? undefined : token,
  });
  return { ok: true };
}

/** The address a link is for, when the link can still be used; null otherwise. */
export async function peekLink(db: Db, token: string, now = Date.now()): Promise<string | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const row = await usableToken(db, await sha256Hex(token), now);
  return row?.email ?? null;
}

export type ConfirmResult =
  | { kind: "invalid" }
  | { kind: "exists"; email: string }
  | { kind: "created"; email: string; apiKey: string; accountId: string; memberId: string };

/**
 * Uses the link (once, atomically) and creates the free account with its first key, its
 * ledger placed by `locationHint` (the region of the person confirming, as for an operator's
 * `POST /admin/accounts`). When creating the account fails, the link is given back so that
 * following it again retries.
 */
export async function confirmSignup(
  env: Bindings,
  db: Db,
  input: { token: string; locationHint?: LocationHint },
  now = Date.now(),
): Promise<ConfirmResult> {
  const { token, locationHint } = input;
  if (!TOKEN_PATTERN.test(token)) return { kind: "invalid" };
  const tokenHash = await sha256Hex(token);
  const used = await consumeToken(db, tokenHash, now, "signup");
  if (used === null) return { kind: "invalid" };
  const email = used.email;
  // An operator (or an earlier link) may have made an account for the address since.
  if (await accountExistsForEmail(db, email)) return { kind: "exists", email };

  let created: Awaited<ReturnType<typeof createAccount>>;
  try {
    // createAccount makes the account's first key `full` (money rule 11).
    // The person is named by the address they proved they read (people get ids in issue 20).
    created = await createAccount(
      env,
      db,
      { email, plan: "free", locationHint },
      { type: "person", id: email, label: email },
    );
  } catch (err) {
    await releaseToken(db, tokenHash);
    throw err;
  }
  return {
    kind: "created",
    email,
    apiKey: created.api_key,
    accountId: created.id,
    memberId: created.owner_member_id,
  };
}
