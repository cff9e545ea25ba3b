/**
 * Passkeys (WebAuthn), with `@simplewebauthn/server`: a signed-in person adds one on the
 * Billing page, and later signs in with it instead of an emailed link. A passkey belongs to the
 * person (`email_key`), not to one account: after it signs in, the person picks an account as
 * with the link (the same page, fed by a `passkey_sign_in` row of the one token mechanism).
 *
 * Challenges are random, single-use and five minutes long: only their SHA-256 is stored in D1
 * (`passkey_challenges`), and the statement that checks one deletes it, so a replayed response
 * finds nothing. Origin and RP ID are the dashboard's (`publicOrigin`: DASHBOARD_URL, else the
 * request's origin), never what the browser claims.
 */
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import type { Db } from "../db/client";
import { type Membership, markSignedIn, membershipsOf } from "../db/members";
import {
  type ChallengePurpose,
  consumeChallenge,
  deletePasskeyOf,
  getPasskey,
  insertChallenge,
  insertPasskey,
  markPasskeyUsed,
  passkeysOf,
} from "../db/passkeys";
import { insertPasskeySignIn } from "../db/signup-tokens";
import { personActor } from "../platform/actor";
import { fromBase64Url, randomBase62, sha256Hex, toBase64Url } from "../platform/crypto";
import { recordAudit } from "./audit";

export const CHALLENGE_TTL_MS = 5 * 60_000;
/** How long the account choice after a passkey sign-in may wait. */
export const PASSKEY_CHOICE_TTL_MS = 5 * 60_000;

/** Where the ceremony is valid: the dashboard's origin and its host name as RP ID. */
export interface RelyingParty {
  origin: string;
  name: string;
}

const rpId = (rp: RelyingParty) => new URL(rp.origin).hostname;

async function newChallenge(
  db: Db,
  purpose: ChallengePurpose,
  emailKey: string | null,
  now: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  await insertChallenge(
    db,
    { challengeHash: await sha256Hex(toBase64Url(bytes)), purpose, emailKey },
    now,
    CHALLENGE_TTL_MS,
  );
  return bytes;
}

/** The challenge the browser signed, read from its clientDataJSON (null if unreadable). */
function signedChallenge(clientDataJSON: unknown): string | null {
  if (typeof clientDataJSON !== "string" || clientDataJSON.length > 4096) return null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(fromBase64Url(clientDataJSON))) as {
      challenge?: unknown;
    };
    return typeof parsed.challenge === "string" && /^[A-Za-z0-9_-]{16,128}$/.test(parsed.challenge)
      ? parsed.challenge
      : null;
  } catch {
    return null;
  }
}

/** Uses the challenge the response carries, once; null when it was never issued or is spent. */
async function useChallenge(
  db: Db,
  clientDataJSON: unknown,
  purpose: ChallengePurpose,
  now: number,
): Promise<{ challenge: string; emailKey: string | null } | null> {
  const challenge = signedChallenge(clientDataJSON);
  if (!challenge) return null;
  const row = await consumeChallenge(db, await sha256Hex(challenge), purpose, now);
  return row ? { challenge, emailKey: row.emailKey } : null;
}

export type PasskeyRefusal =
  | "challenge"
  | "unknown_credential"
  | "not_verified"
  | "already_added"
  | "no_account";

// ---------------------------------------------------------------- registration

export function listPasskeys(db: Db, emailKey: string) {
  return passkeysOf(db, emailKey);
}

/** The options for "Add a passkey": a fresh challenge, and the person's passkeys excluded. */
export async function registrationOptions(
  db: Db,
  rp: RelyingParty,
  person: { emailKey: string; email: string },
  now = Date.now(),
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await passkeysOf(db, person.emailKey);
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rpId(rp),
    userName: person.email,
    // A stable, opaque handle: the same person on every authenticator, no address in it.
    userID: new Uint8Array(new TextEncoder().encode(await sha256Hex(person.emailKey))),
    challenge: await newChallenge(db, "register", person.emailKey, now),
    attestationType: "none",
    excludeCredentials: existing.map((p) => ({ id: p.id })),
    authenticatorSelection: { residentKey: "required", userVerification: "required" },
  });
}

/** Verifies "Add a passkey"'s response and stores the passkey for the session's person. */
export async function addPasskey(
  db: Db,
  rp: RelyingParty,
  session: { accountId: string; memberId: string; email: string; emailKey: string },
  response: RegistrationResponseJSON,
  now = Date.now(),
): Promise<{ ok: true; id: string } | { ok: false; reason: PasskeyRefusal }> {
  const used = await useChallenge(db, response?.response?.clientDataJSON, "register", now);
  // A challenge issued to another person (another session) is no challenge for this one.
  if (!used || used.emailKey !== session.emailKey) return { ok: false, reason: "challenge" };
  let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verified = await verifyRegistrationResponse({
      response,
      expectedChallenge: used.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rpId(rp),
      requireUserVerification: true,
    });
  } catch {
    return { ok: false, reason: "not_verified" };
  }
  if (!verified.verified) return { ok: false, reason: "not_verified" };
  const { credential } = verified.registrationInfo;
  const added = await insertPasskey(db, {
    id: credential.id,
    emailKey: session.emailKey,
    publicKey: toBase64Url(credential.publicKey),
    counter: credential.counter,
    transports: credential.transports ?? [],
  });
  if (!added) return { ok: false, reason: "already_added" };
  await recordAudit(
    db,
    session.accountId,
    personActor(session.memberId, session.email),
    "passkey.added",
    { passkey_id: credential.id },
  );
  return { ok: true, id: credential.id };
}

/** Removes one of the session's person's passkeys (another person's id removes nothing). */
export async function removePasskey(
  db: Db,
  session: { accountId: string; memberId: string; email: string; emailKey: string },
  id: string,
): Promise<boolean> {
  if (!(await deletePasskeyOf(db, id, session.emailKey))) return false;
  await recordAudit(
    db,
    session.accountId,
    personActor(session.memberId, session.email),
    "passkey.removed",
    { passkey_id: id },
  );
  return true;
}

// ---------------------------------------------------------------- authentication

/** The options for "Sign in with a passkey": discoverable credentials, no address asked. */
export async function authenticationOptions(
  db: Db,
  rp: RelyingParty,
  now = Date.now(),
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rpId(rp),
    challenge: await newChallenge(db, "authenticate", null, now),
    userVerification: "required",
  });
}

export type PasskeySignInResult =
  | { kind: "invalid"; reason: PasskeyRefusal }
  | { kind: "signed_in"; accountId: string; memberId: string; epoch: number; email: string }
  | { kind: "choose"; token: string; email: string; memberships: Membership[] };

/** Signs the member in, as the emailed link does, and says how in the audit log. */
export async function recordSignIn(
  db: Db,
  membership: Membership,
  now: number,
  details: Record<string, unknown>,
) {
  await markSignedIn(db, membership.memberId, now);
  await recordAudit(
    db,
    membership.accountId,
    personActor(membership.memberId, membership.email),
    "person.signed_in",
    details,
  );
  return {
    kind: "signed_in" as const,
    accountId: membership.accountId,
    memberId: membership.memberId,
    epoch: membership.sessionEpoch,
    email: membership.email,
  };
}

/**
 * Verifies a passkey sign-in. The challenge is used first (so a refused response spends it
 * too), then the credential is looked up, then the library checks origin, RP ID, user
 * verification, the signature and the counter. A person in one account is signed in; a person
 * in several gets a single-use choice token for the account page.
 */
export async function verifyPasskeySignIn(
  db: Db,
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  now = Date.now(),
): Promise<PasskeySignInResult> {
  const used = await useChallenge(db, response?.response?.clientDataJSON, "authenticate", now);
  if (!used) return { kind: "invalid", reason: "challenge" };
  const passkey = typeof response.id === "string" ? await getPasskey(db, response.id) : undefined;
  if (!passkey) return { kind: "invalid", reason: "unknown_credential" };
  let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
  try {
    verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: used.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rpId(rp),
      requireUserVerification: true,
      credential: {
        id: passkey.id,
        publicKey: new Uint8Array(fromBase64Url(passkey.publicKey)),
        counter: passkey.counter,
        transports: JSON.parse(passkey.transports),
      },
    });
  } catch {
    return { kind: "invalid", reason: "not_verified" };
  }
  if (!verified.verified) return { kind: "invalid", reason: "not_verified" };
  await markPasskeyUsed(db, passkey.id, verified.authenticationInfo.newCounter, now);
  const memberships = await membershipsOf(db, passkey.emailKey);
  const [first] = memberships;
  if (!first) return { kind: "invalid", reason: "no_account" };
  if (memberships.length === 1) return recordSignIn(db, first, now, { method: "passkey" });
  const token = randomBase62(32);
  await insertPasskeySignIn(db, {
    tokenHash: await sha256Hex(token),
    email: first.email,
    emailKey: passkey.emailKey,
    now,
    expiresAt: now + PASSKEY_CHOICE_TTL_MS,
  });
  return { kind: "choose", token, email: first.email, memberships };
}
