/**
 * The one emailed-link mechanism behind sign-up, sign-in and invitations: a random token whose
 * SHA-256 is the `signup_tokens` row (with its purpose), single use, expiring. Sign-up and
 * sign-in requests share the rate limits (per client address, per network, per mailbox, and
 * the global ceiling), because both send an email to an address a stranger typed.
 */
import type { Db } from "../db/client";
import {
  insertWithinLimits,
  type LinkPurpose,
  limitClearsAt,
  purgeOlderThan,
} from "../db/signup-tokens";
import { clientPrefixes } from "../platform/client-address";
import { hmacSigner, randomBase62, sha256Hex, toHex } from "../platform/crypto";
import { mailboxKey } from "../platform/email-address";
import type { Bindings } from "../platform/env";
import { alertSignupCeiling } from "./signup-ceiling";
import {
  LIMITS,
  LINK_TTL_MS,
  normalizeEmail,
  PURGE_BATCH,
  RETENTION_MS,
  signupEmailsPerHour,
  TOKEN_LENGTH,
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

/** A new link's token (emailed, never stored) and the hash that is its row. */
export async function newLinkToken(): Promise<{ token: string; tokenHash: string }> {
  const token = randomBase62(TOKEN_LENGTH);
  return { token, tokenHash: await sha256Hex(token) };
}

export type LinkRequest =
  | { ok: true; email: string; emailKey: string; token: string; tokenHash: string }
  | { ok: false; retryAfterSeconds: number };

/**
 * Records a request for a link within the limits (nothing is written past one). `sendsLink`
 * false stores the row already used: it only counts, and its token is never sent anywhere.
 */
export async function recordLinkRequest(
  env: Bindings,
  db: Db,
  input: {
    email: string;
    clientAddress: string | undefined;
    secret: string;
    purpose: LinkPurpose;
    sendsLink: boolean;
  },
  now = Date.now(),
): Promise<LinkRequest> {
  const email = normalizeEmail(input.email);
  const emailKey = mailboxKey(email);
  const client = await clientHashes(input.secret, input.clientAddress);
  const { token, tokenHash } = await newLinkToken();
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
      usedAt: input.sendsLink ? null : now,
      purpose: input.purpose,
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
  return { ok: true, email, emailKey, token, tokenHash };
}
