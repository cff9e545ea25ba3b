/**
 * Passkeys (issue 20 item 7) without a browser: a software authenticator (a P-256 key made
 * here, its assertions signed here as an authenticator would) against the real verification
 * in workerd and real D1. What a browser cannot easily show: an unknown credential, a replayed
 * or expired challenge, a wrong origin or RP ID, a registration challenge of another person,
 * and the account choice token's single use. test/e2e/passkeys.e2e.test.ts adds and uses a
 * passkey in Chromium.
 */
import { env } from "cloudflare:workers";
import { isoCBOR } from "@simplewebauthn/server/helpers";
import { and, desc, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  addPasskey,
  authenticationOptions,
  registrationOptions,
  verifyPasskeySignIn,
} from "../../src/accounts/passkeys";
import { confirmSignIn } from "../../src/accounts/sign-in";
import { dbFor } from "../../src/db/client";
import { insertMember } from "../../src/db/members";
import { auditLog, members, passkeys } from "../../src/db/schema";
import { fromBase64Url, sha256Hex, toBase64Url } from "../../src/platform/crypto";
import { mailboxKey } from "../../src/platform/email-address";
import { createAccount } from "../helpers/http";
import { follow, page, setCookiePair, signIn, tokenFor } from "../helpers/page";

const db = dbFor(env.DB);
const RP = { origin: "https://gateway.example.com", name: "Tollgate" };
const RP_ID = "gateway.example.com";
const enc = new TextEncoder();

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const sha256 = async (bytes: Uint8Array) =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));

/** WebCrypto's raw r‖s signature as the DER sequence WebAuthn carries. */
function der(raw: Uint8Array): Uint8Array {
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v: Uint8Array = b.slice(i);
    if ((v[0] ?? 0) & 0x80) v = concat([0], v);
    return concat([0x02, v.length], v);
  };
  const r = int(raw.slice(0, 32));
  const s = int(raw.slice(32));
  return concat([0x30, r.length + s.length], r, s);
}

/** A software authenticator's credential: a P-256 key and its COSE public key. */
async function softCredential() {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  const cose = isoCBOR.encode(
    new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, fromBase64Url(jwk.x ?? "")],
      [-3, fromBase64Url(jwk.y ?? "")],
    ]),
  );
  return { id: toBase64Url(crypto.getRandomValues(new Uint8Array(16))), pair, cose };
}

type Credential = Awaited<ReturnType<typeof softCredential>>;

/** Stores the credential as a passkey of `email`'s person (as "Add a passkey" would). */
async function register(credential: Credential, email: string) {
  await db.insert(passkeys).values({
    id: credential.id,
    emailKey: mailboxKey(email),
    publicKey: toBase64Url(credential.cose),
    counter: 0,
    transports: "[]",
  });
}

/** The authenticator's answer to `challenge`, as the browser would post it. */
async function assertion(
  credential: Credential,
  challenge: string,
  options: { origin?: string; rpId?: string; counter?: number } = {},
) {
  const clientData = enc.encode(
    JSON.stringify({
      type: "webauthn.get",
      challenge,
      origin: options.origin ?? RP.origin,
      crossOrigin: false,
    }),
  );
  const authData = new Uint8Array(37);
  authData.set(await sha256(enc.encode(options.rpId ?? RP_ID)), 0);
  authData[32] = 0x05; // user present, user verified
  new DataView(authData.buffer).setUint32(33, options.counter ?? 1);
  const signed = concat(authData, await sha256(clientData));
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      credential.pair.privateKey,
      signed,
    ),
  );
  return {
    id: credential.id,
    rawId: credential.id,
    type: "public-key" as const,
    clientExtensionResults: {},
    response: {
      clientDataJSON: toBase64Url(clientData),
      authenticatorData: toBase64Url(authData),
      signature: toBase64Url(der(raw)),
    },
  };
}

async function challenge(now = Date.now()) {
  return (await authenticationOptions(db, RP, now)).challenge;
}

async function signInsOf(accountId: string) {
  return db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.accountId, accountId), eq(auditLog.action, "person.signed_in")))
    .orderBy(desc(auditLog.id))
    .all();
}

describe("passkey sign-in (software authenticator, real verification)", () => {
  it("signs a member in once; the same response replayed is refused (its challenge is spent)", async () => {
    const account = await createAccount();
    const credential = await softCredential();
    await register(credential, account.email);
    const response = await assertion(credential, await challenge());

    const first = await verifyPasskeySignIn(db, RP, response);
    expect(first).toMatchObject({ kind: "signed_in", accountId: account.id });
    const [entry] = await signInsOf(account.id);
    expect(entry?.details).toBe(JSON.stringify({ method: "passkey" }));
    const stored = await db.select().from(passkeys).where(eq(passkeys.id, credential.id)).get();
    expect(stored?.counter).toBe(1);
    expect(stored?.lastUsedAt).not.toBeNull();

    const replay = await verifyPasskeySignIn(db, RP, response);
    expect(replay).toEqual({ kind: "invalid", reason: "challenge" });
  });

  it("refuses a challenge the server never issued, and one past its five minutes", async () => {
    const account = await createAccount();
    const credential = await softCredential();
    await register(credential, account.email);
    const invented = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
    expect(await verifyPasskeySignIn(db, RP, await assertion(credential, invented))).toEqual({
      kind: "invalid",
      reason: "challenge",
    });
    const issuedAt = Date.now();
    const old = await assertion(credential, await challenge(issuedAt));
    expect(await verifyPasskeySignIn(db, RP, old, issuedAt + 5 * 60_000 + 1)).toEqual({
      kind: "invalid",
      reason: "challenge",
    });
  });

  it("refuses an unknown credential, even with a valid signature", async () => {
    const stranger = await softCredential();
    const result = await verifyPasskeySignIn(db, RP, await assertion(stranger, await challenge()));
    expect(result).toEqual({ kind: "invalid", reason: "unknown_credential" });
  });

  it("refuses an answer made for another origin or another RP ID, and leaves the passkey untouched", async () => {
    const account = await createAccount();
    const credential = await softCredential();
    await register(credential, account.email);
    for (const options of [{ origin: "https://evil.example" }, { rpId: "evil.example" }]) {
      const response = await assertion(credential, await challenge(), options);
      expect(await verifyPasskeySignIn(db, RP, response), JSON.stringify(options)).toEqual({
        kind: "invalid",
        reason: "not_verified",
      });
    }
    const stored = await db.select().from(passkeys).where(eq(passkeys.id, credential.id)).get();
    expect(stored).toMatchObject({ counter: 0, lastUsedAt: null });
    expect(await signInsOf(account.id)).toEqual([]);
  });

  it("refuses a passkey whose person is a member of no account now", async () => {
    const credential = await softCredential();
    await register(credential, `${crypto.randomUUID()}@example.com`);
    const result = await verifyPasskeySignIn(
      db,
      RP,
      await assertion(credential, await challenge()),
    );
    expect(result).toEqual({ kind: "invalid", reason: "no_account" });
  });

  it("a person in several accounts picks one with a single-use token the email confirm refuses", async () => {
    const first = await createAccount();
    const second = await createAccount();
    await insertMember(db, {
      id: `mem_${crypto.randomUUID().replaceAll("-", "")}`,
      accountId: second.id,
      email: first.email,
      role: "viewer",
    });
    const credential = await softCredential();
    await register(credential, first.email);
    const result = await verifyPasskeySignIn(
      db,
      RP,
      await assertion(credential, await challenge()),
    );
    if (result.kind !== "choose") throw new Error(`expected a choice, got ${result.kind}`);
    expect(result.memberships.map((m) => m.accountId).sort()).toEqual([first.id, second.id].sort());
    // Not an emailed link: the email confirm does not take it.
    expect(await confirmSignIn(db, { token: result.token, accountId: second.id })).toEqual({
      kind: "invalid",
    });
    const chosen = await confirmSignIn(db, {
      token: result.token,
      accountId: second.id,
      method: "passkey",
    });
    expect(chosen).toMatchObject({ kind: "signed_in", accountId: second.id });
    const [entry] = await signInsOf(second.id);
    expect(entry?.details).toBe(JSON.stringify({ method: "passkey" }));
    expect(
      await confirmSignIn(db, { token: result.token, accountId: second.id, method: "passkey" }),
    ).toEqual({ kind: "invalid" });
  });
});

describe("adding a passkey", () => {
  it("refuses a registration challenge issued to another person", async () => {
    const a = await createAccount();
    const b = await createAccount();
    const owner = (email: string, accountId: string) =>
      db
        .select()
        .from(members)
        .where(and(eq(members.accountId, accountId), eq(members.emailKey, mailboxKey(email))))
        .get();
    const memberA = await owner(a.email, a.id);
    const memberB = await owner(b.email, b.id);
    if (!memberA || !memberB) throw new Error("owners missing");
    const options = await registrationOptions(db, RP, {
      email: memberA.email,
      emailKey: memberA.emailKey,
    });
    const clientDataJSON = toBase64Url(
      enc.encode(
        JSON.stringify({
          type: "webauthn.create",
          challenge: options.challenge,
          origin: RP.origin,
        }),
      ),
    );
    const response = {
      id: "x",
      rawId: "x",
      type: "public-key" as const,
      clientExtensionResults: {},
      response: { clientDataJSON, attestationObject: "" },
    };
    const asB = {
      accountId: b.id,
      memberId: memberB.id,
      email: memberB.email,
      emailKey: memberB.emailKey,
    };
    expect(await addPasskey(db, RP, asB, response)).toEqual({ ok: false, reason: "challenge" });
    // Spent by that refusal: A cannot use it after B tried.
    const asA = {
      accountId: a.id,
      memberId: memberA.id,
      email: memberA.email,
      emailKey: memberA.emailKey,
    };
    expect(await addPasskey(db, RP, asA, response)).toEqual({ ok: false, reason: "challenge" });
  });
});

describe("the pages' passkey forms", () => {
  const dashboard = new URL(env.DASHBOARD_URL);
  const AT_DASHBOARD = { origin: dashboard.origin, rpId: dashboard.hostname };

  /** The sign-in page's passkey form: its token, nonce cookie and challenge. */
  async function passkeyForm() {
    const res = await page("/account/sign-in");
    const html = await res.text();
    const options = /data-passkey="authenticate" data-options="([^"]*)"/.exec(html)?.[1] ?? "";
    return {
      csrf: tokenFor(html, "/account/sign-in/passkey"),
      cookie: setCookiePair(res, "tg_signin"),
      challenge: (JSON.parse(options.replaceAll("&quot;", '"')) as { challenge: string }).challenge,
    };
  }

  it("signs in by a posted assertion at the dashboard's origin, once; a replay gets the refusal page", async () => {
    const account = await createAccount();
    const credential = await softCredential();
    await register(credential, account.email);
    const form = await passkeyForm();
    const response = JSON.stringify(await assertion(credential, form.challenge, AT_DASHBOARD));
    const post = () =>
      page("/account/sign-in/passkey", {
        cookie: form.cookie,
        form: { csrf: form.csrf, response },
      });
    const res = await post();
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/account/billing");
    expect(setCookiePair(res, "tg_session")).toMatch(/^tg_session=.+/);
    const replay = await post();
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain("Your passkey did not sign you in");
  });

  it("refuses a post without the sign-in form's token, before looking at the passkey", async () => {
    const form = await passkeyForm();
    const res = await page("/account/sign-in/passkey", {
      form: { csrf: form.csrf, response: "{}" },
    });
    expect(res.status).toBe(403);
    // The challenge was not spent by the forged post.
    const row = await env.DB.prepare(
      "SELECT count(*) AS n FROM passkey_challenges WHERE challenge_hash = ?",
    )
      .bind(await sha256Hex(form.challenge))
      .first<{ n: number }>();
    expect(row?.n).toBe(1);
  });

  it("the Billing page offers “Add a passkey”; an answer that does not verify adds nothing", async () => {
    const account = await createAccount();
    const cookie = await signIn(account);
    const html = await (await page("/account/billing", { cookie })).text();
    expect(html).toContain('data-passkey="register"');
    const res = await page("/account/billing/passkeys", {
      cookie,
      form: { csrf: tokenFor(html, "/account/billing/passkeys"), response: '{"id":"x"}' },
    });
    expect(await follow(res, cookie)).toContain("No passkey was added");
    const rows = await db
      .select()
      .from(passkeys)
      .where(eq(passkeys.emailKey, mailboxKey(account.email)))
      .all();
    expect(rows).toEqual([]);
  });

  it("removes a passkey of the person's own from the page; another person's id removes nothing", async () => {
    const account = await createAccount();
    const other = await createAccount();
    const mine = await softCredential();
    const theirs = await softCredential();
    await register(mine, account.email);
    await register(theirs, other.email);
    const cookie = await signIn(account);
    const html = await (await page("/account/billing", { cookie })).text();
    const remove = (id: string) =>
      page(`/account/billing/passkeys/${encodeURIComponent(id)}/remove`, {
        cookie,
        form: { csrf: tokenFor(html, `/account/billing/passkeys/${mine.id}/remove`) },
      });
    expect(await follow(await remove(theirs.id), cookie)).toContain("nothing was removed");
    expect(await follow(await remove(mine.id), cookie)).toContain("The passkey was removed");
    const left = await db.select({ id: passkeys.id }).from(passkeys).all();
    expect(left.map((p) => p.id)).toContain(theirs.id);
    expect(left.map((p) => p.id)).not.toContain(mine.id);
    const entry = await db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.accountId, account.id), eq(auditLog.action, "passkey.removed")))
      .get();
    expect(entry?.details).toBe(JSON.stringify({ passkey_id: mine.id }));
    // Removed: it signs in no more.
    const result = await verifyPasskeySignIn(db, RP, await assertion(mine, await challenge()));
    expect(result).toEqual({ kind: "invalid", reason: "unknown_credential" });
  });
});
