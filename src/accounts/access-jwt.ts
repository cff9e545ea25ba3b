/**
 * Cloudflare Access identities: the `Cf-Access-Jwt-Assertion` header Access adds to every
 * request it let through, an RS256 JWT signed with the team's keys. Verified with `jose`
 * against the team's published key set (fetched and cached per isolate, refetched for an
 * unknown key id), the application's audience, the team as issuer and the expiry. The
 * operator is the token's `email`.
 */
import { createRemoteJWKSet, errors, jwtVerify } from "jose";
import type { Bindings } from "../platform/env";

export interface AccessConfig {
  teamDomain: string;
  audience: string;
  certsUrl: string;
}

/** Access is on when both the team domain and the audience are set; else null. */
export function accessConfig(
  env: Pick<Bindings, "ACCESS_TEAM_DOMAIN" | "ACCESS_AUD" | "ACCESS_CERTS_URL">,
): AccessConfig | null {
  const teamDomain = env.ACCESS_TEAM_DOMAIN?.trim();
  const audience = env.ACCESS_AUD?.trim();
  if (!teamDomain || !audience) return null;
  return {
    teamDomain,
    audience,
    certsUrl: env.ACCESS_CERTS_URL || `https://${teamDomain}/cdn-cgi/access/certs`,
  };
}

/** One key set per URL per isolate: jose caches the keys and refetches on an unknown `kid`. */
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

export type AccessVerdict =
  | { ok: true; email: string }
  /** Refused: bad signature, unknown key, wrong audience or issuer, expired, no email. */
  | { ok: false; reason: string };

export async function verifyAccessJwt(config: AccessConfig, token: string): Promise<AccessVerdict> {
  let keys = keySets.get(config.certsUrl);
  if (!keys) {
    keys = createRemoteJWKSet(new URL(config.certsUrl));
    keySets.set(config.certsUrl, keys);
  }
  try {
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ["RS256"],
      audience: config.audience,
      issuer: `https://${config.teamDomain}`,
      requiredClaims: ["exp", "email"],
    });
    const email = payload.email;
    if (typeof email !== "string" || !email.includes("@"))
      return { ok: false, reason: "no email in the token" };
    return { ok: true, email: email.toLowerCase() };
  } catch (err) {
    // The keys could not be fetched: not the operator's fault, and not a verdict on the token.
    if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) throw err;
    return { ok: false, reason: err.code };
  }
}
