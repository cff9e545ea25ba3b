import { randomBase62, sha256Hex } from "../platform/crypto";

export type KeyMode = "live" | "test";

const KEY_PATTERN = /^tg_(live|test)_[0-9A-Za-z]{32,128}$/;

/** A new API key: the full key (shown once) and what is stored (hash, prefix, last four). */
export async function generateApiKey(mode: KeyMode) {
  const key = `tg_${mode}_${randomBase62(32)}`;
  return { key, hash: await sha256Hex(key), prefix: `tg_${mode}_`, last4: key.slice(-4) };
}

export function looksLikeApiKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}

/** The bearer token of an Authorization header, or null. */
export function bearerToken(header: string | undefined | null): string | null {
  if (!header) return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}
