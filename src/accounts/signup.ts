/**
 * Self-service sign-up: asking for a link, and using it.
 *
 * No account enumeration: a request for an address that already has an account does the same
 * work and gets the same answer as one for a new address (a row counted by the same limits,
 * an account lookup, one email). Only the email differs: an existing account is told it
 * already has one and how to sign in, and gets no link (its row is stored already used, and
 * its token is never sent anywhere).
 */

import { accountExistsForEmail } from "../db/accounts";
import type { Db } from "../db/client";
import {
  consumeToken,
  insertWithinLimits,
  limitClearsAt,
  purgeOlderThan,
  releaseToken,
  usableToken,
} from "../db/signup-tokens";
import { signupExistingAccount, signupLink } from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import type { LocationHint } from "../ledger/client";
import { brandOf } from "../platform/brand";
import { clientPrefixes } from "../platform/client-address";
import { hmacSigner, randomBase62, sha256Hex, toHex } from "../platform/crypto";
import { mailboxKey } from "../platform/email-address";
import type { Bindings } from "../platform/env";
import { createAccount } from "./create-account";
import { identify, type KeyIdentity } from "./identity";
import { alertSignupCeiling } from "./signup-ceiling";
import {
  CONFIRM_PATH,
  EMAIL_KINDS,
  LIMITS,
  LINK_TTL_MS,
  normalizeEmail,
  PURGE_BATCH,
  RETENTION_MS,
  SIGNUP_EMAIL_ACCOUNT,
  signupEmailsPerHour,
  signupStoresLinks,
  TOKEN_LENGTH,
  TOKEN_PATTERN,
} from "./signup-config";

/**
 * The stored forms of a client address, its host (IPv4 address, IPv6 /64) and its network
 * (IPv4 /24, IPv6 /48): HMACs under the server's secret, because a plain hash of an IPv4
 * address is reversed by trying all 2^32 of them.
 */
export async function clientHashes(
  secret: string,
  address: string | undefined,
): Promise<{ host: string; network: string }> {
  const sign = await hmacSigner(secret);
  const mac = async (message: string) => toHex(await sign(message));
  const { host, network } = clientPrefixes(address);
  return {
    host: await mac(`tollgate/signup-client/v1\n${host}`),
    network: await mac(`tollgate/signup-network/v1\n${network}`),
  };
}

export type SignupRequestResult = { ok: true } | { ok: false; retryAfterSeconds: number };

/** Records the request and emails the address, unless a limit is reached (then nothing). */
export async function requestSignup(
  env: Bindings,
  db: Db,
  input: { email: string; clientAddress: string | undefined; origin: string; secret: string },
  now = Date.now(),
): Promise<SignupRequestResult> {
  const email = normalizeEmail(input.email);
  const emailKey = mailboxKey(email);
  const client = await clientHashes(input.secret, input.clientAddress);
  const token = randomBase62(TOKEN_LENGTH);
  const tokenHash = await sha256Hex(token);
  const exists = await accountExistsForEmail(db, emailKey);
  const limits = { ...LIMITS, global: signupEmailsPerHour(env) };

  const inserted = await insertWithinLimits(
    db,
    {
      tokenHash,
      email,
      emailKey,
      clientHash: client.host,
      clientNetHash: client.network,
      now,
      expiresAt: now + LINK_TTL_MS,
      usedAt: exists ? now : null,
    },
    limits,
  );
  if (!inserted) {
    const refused = await limitClearsAt(
      db,
      { emailKey, clientHash: client.host, clientNetHash: client.network, now },
      limits,
    );
    if (refused.ceiling) await alertSignupCeiling(env, db, limits.global, now);
    const wait = refused.clearsAt === null ? 1 : Math.ceil((refused.clearsAt - now) / 1000);
    return { ok: false, retryAfterSeconds: Math.max(1, wait) };
  }
  await purgeOlderThan(db, now - RETENTION_MS, PURGE_BATCH);

  const message = exists
    ? signupExistingAccount({ brand: brandOf(env), signInUrl: `${input.origin}/account/billing` })
    : signupLink({
        brand: brandOf(env),
        link: `${input.origin}${CONFIRM_PATH}?token=${token}`,
        expiresInMinutes: LINK_TTL_MS / 60_000,
      });
  // A failed send is recorded, never reported to the client: the answer must not depend on
  // the address. The stored copy has the token redacted (links are hashed at rest), so a failed
  // link is not retried: asking again sends a new one. SIGNUP_STORE_LINKS keeps it whole.
  await sendEmailOnce(env, db, {
    ref: `signup:${tokenHash}`,
    accountId: SIGNUP_EMAIL_ACCOUNT,
    kind: exists ? EMAIL_KINDS.existing : EMAIL_KINDS.link,
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
  | { kind: "created"; email: string; apiKey: string; identity: KeyIdentity };

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
  const email = await consumeToken(db, tokenHash, now);
  if (email === null) return { kind: "invalid" };
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
  const identity = await identify(env.DB, created.api_key);
  if (!identity) throw new Error(`the first key of ${created.id} is not active`);
  return { kind: "created", email, apiKey: created.api_key, identity };
}
