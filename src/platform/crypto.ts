/**
 * The one place with cryptographic plumbing: random ids and tokens, SHA-256, HMAC-SHA-256,
 * constant-time comparison, AES-GCM sealing and base64/base64url. Every other module calls
 * these instead of `crypto.subtle` or `btoa`, so a primitive is written (and reviewed) once.
 */
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const encoder = new TextEncoder();

/** `length` uniformly random base62 characters (rejection sampling: no modulo bias). */
export function randomBase62(length: number): string {
  let out = "";
  const buf = new Uint8Array(length * 2);
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const byte of buf) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

/** A prefixed random id such as `acct_3fK…` (24 base62 chars ≈ 143 bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBase62(24)}`;
}

/** 32 random hex characters (a UUID v4 without dashes: 122 random bits), for prefixed refs. */
export function randomHex32(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

export async function sha256Hex(value: string): Promise<string> {
  return toHex(await sha256(value));
}

/** `'sha256-…'`-style digest: standard base64 with padding, as CSP source hashes are written. */
export async function sha256Base64(value: string): Promise<string> {
  return toBase64(await sha256(value));
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(value)));
}

export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** HMAC-SHA-256 of `message` under `secret` (both UTF-8). */
export async function hmacSha256(secret: string, message: string): Promise<Uint8Array> {
  return (await hmacSigner(secret))(message);
}

/** One imported key for several messages under the same secret. */
export async function hmacSigner(
  secret: string,
): Promise<(message: string) => Promise<Uint8Array>> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return async (message) =>
    new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

/**
 * Compares two secrets in constant time. Both sides are hashed first so the comparison
 * length never depends on the secret's length.
 */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(ha, hb);
}

// ---------------------------------------------------------------- AES-256-GCM

const IV_BYTES = 12;
const TAG_BYTES = 16;

function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** Encrypts and authenticates `plain` under a 32-byte key: a random IV, then the ciphertext. */
export async function seal(
  key: Uint8Array,
  plain: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: aad },
      await aesKey(key),
      plain,
    ),
  );
  const out = new Uint8Array(IV_BYTES + sealed.length);
  out.set(iv);
  out.set(sealed, IV_BYTES);
  return out;
}

/** The plaintext `seal` produced, or null when it is too short, forged or sealed otherwise. */
export async function open(
  key: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array | null> {
  if (sealed.length < IV_BYTES + TAG_BYTES) return null;
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: sealed.slice(0, IV_BYTES), additionalData: aad },
        await aesKey(key),
        sealed.slice(IV_BYTES),
      ),
    );
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- base64

/** Standard base64 with padding. A loop, not `String.fromCharCode(...bytes)`: no stack limit. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** base64url without padding (RFC 4648 §5): safe in cookies, URLs and form fields. */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** Decodes base64url (padding optional); throws on anything that is not base64. */
export function fromBase64Url(text: string): Uint8Array {
  return Uint8Array.from(atob(text.replaceAll("-", "+").replaceAll("_", "/")), (ch) =>
    ch.charCodeAt(0),
  );
}
