import { describe, expect, it } from "vitest";
import { formToken } from "../../src/http/form-token";
import {
  fromBase64Url,
  hmacSha256,
  open,
  seal,
  sha256Base64,
  toBase64,
  toBase64Url,
  toHex,
} from "../../src/platform/crypto";

/** What the four hand-written copies did before they became `toBase64Url`. */
const oldBase64Url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");

describe("the crypto module", () => {
  it("base64url: the same text as the copies it replaced, and back", () => {
    for (let length = 0; length < 70; length++) {
      const bytes = crypto.getRandomValues(new Uint8Array(length));
      const text = toBase64Url(bytes);
      expect(text).toBe(oldBase64Url(bytes));
      expect(text).toMatch(/^[\w-]*$/);
      expect(fromBase64Url(text)).toEqual(bytes);
    }
    expect(() => fromBase64Url("%%%")).toThrow();
    expect(toBase64(new Uint8Array([251, 255]))).toBe("+/8=");
  });

  it("HMAC-SHA-256 and SHA-256 match RFC 4231 test case 2 and the known empty digest", async () => {
    expect(toHex(await hmacSha256("Jefe", "what do ya want for nothing?"))).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    expect(await sha256Base64("")).toBe("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  });

  it("seal/open: round trip; another key, another AAD or a flipped bit opens to null", async () => {
    const key = await hmacSha256("secret", "k");
    const aad = new TextEncoder().encode("aad");
    const plain = new TextEncoder().encode("hello");
    const sealed = await seal(key, plain, aad);
    expect(await open(key, sealed, aad)).toEqual(plain);
    expect(await open(await hmacSha256("other", "k"), sealed, aad)).toBeNull();
    expect(await open(key, sealed, new TextEncoder().encode("other"))).toBeNull();
    const flipped = sealed.slice();
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
    expect(await open(key, flipped, aad)).toBeNull();
    expect(await open(key, sealed.slice(0, 27), aad)).toBeNull();
  });

  it("form tokens: 43 base64url characters, different per binding and purpose", async () => {
    const token = await formToken("s", "sessionid", "keys");
    expect(token).toMatch(/^[\w-]{43}$/);
    expect(await formToken("s", "sessionid", "keys")).toBe(token);
    expect(await formToken("s", "sessionid", "portal")).not.toBe(token);
    expect(await formToken("s", "nonce:sessionid", "keys")).not.toBe(token);
    expect(await formToken("t", "sessionid", "keys")).not.toBe(token);
  });
});
