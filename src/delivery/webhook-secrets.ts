/**
 * Webhook signing secrets: `whsec_` and 24 random bytes in base64, as the Standard Webhooks
 * libraries read them. Stored sealed (AES-256-GCM, bound to the endpoint's id) under a key
 * derived from SESSION_SECRET (or ADMIN_TOKEN, as sessions fall back): the secret must be
 * readable to sign each delivery, so it cannot be hashed like an API key.
 */

import { fromBase64Url, hmacSha256, open, seal, toBase64, toBase64Url } from "../platform/crypto";
import type { Bindings } from "../platform/env";

const encoder = new TextEncoder();

export function newWebhookSecret(): string {
  return `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(24)))}`;
}

async function sealKey(env: Pick<Bindings, "SESSION_SECRET" | "ADMIN_TOKEN">): Promise<Uint8Array> {
  const root = env.SESSION_SECRET ?? (env.ADMIN_TOKEN ? `admin:${env.ADMIN_TOKEN}` : null);
  if (!root) throw new Error("webhook secrets need SESSION_SECRET (or ADMIN_TOKEN)");
  return hmacSha256(root, "tollgate/webhook-secrets/v1");
}

export async function sealWebhookSecret(
  env: Pick<Bindings, "SESSION_SECRET" | "ADMIN_TOKEN">,
  endpointId: string,
  secret: string,
): Promise<string> {
  return toBase64Url(
    await seal(await sealKey(env), encoder.encode(secret), encoder.encode(endpointId)),
  );
}

/** The secret, or null when it does not open (a changed SESSION_SECRET, a row moved). */
export async function openWebhookSecret(
  env: Pick<Bindings, "SESSION_SECRET" | "ADMIN_TOKEN">,
  endpointId: string,
  sealed: string,
): Promise<string | null> {
  const plain = await open(await sealKey(env), fromBase64Url(sealed), encoder.encode(endpointId));
  return plain ? new TextDecoder().decode(plain) : null;
}
