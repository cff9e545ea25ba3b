import { describe, expect, it } from "vitest";
import {
  type ConfigInput,
  configProblems,
  configProblemsOnce,
  isLocalOrPlaceholderHost,
} from "../../src/platform/config";

/** A production configuration with nothing wrong; each test breaks one thing. */
const SAFE: ConfigInput = {
  ENVIRONMENT: "production",
  UPSTREAM_URL: "https://classifier.acme.io",
  DASHBOARD_URL: "https://api.acme.io/account/billing",
  STRIPE_SECRET_KEY: "sk_live_x",
  STRIPE_WEBHOOK_SECRET: "whsec_x",
  SESSION_SECRET: "s3cret",
  EMAIL: {},
  EMAIL_FROM: "billing@acme.io",
  SUPPORT_EMAIL: "help@acme.io",
  SIGNUP_STORE_LINKS: "false",
};

describe("configProblems", () => {
  it("finds nothing wrong in a safe production configuration", () => {
    expect(configProblems(SAFE)).toEqual([]);
  });

  it("judges production only: local mode runs on 127.0.0.1 without secrets on purpose", () => {
    const local = { ENVIRONMENT: "local", UPSTREAM_URL: "http://127.0.0.1:8788" };
    expect(configProblems(local)).toEqual([]);
    expect(configProblems({})).toEqual([]);
  });

  it("a misspelt ENVIRONMENT is a problem, not local mode", () => {
    expect(configProblems({ ...SAFE, ENVIRONMENT: "prod" })).toEqual([
      'ENVIRONMENT is neither "local" nor "production"',
    ]);
  });

  it("refuses URL vars on this machine, whatever the spelling", () => {
    for (const host of ["127.0.0.1:8788", "127.9.9.9", "localhost:8787", "[::1]:8787", "0.0.0.0"]) {
      const problems = configProblems({ ...SAFE, UPSTREAM_URL: `http://${host}/` });
      expect(problems, host).toHaveLength(1);
      expect(problems[0]).toMatch(/^UPSTREAM_URL names a local or placeholder host/);
    }
    expect(
      configProblems({ ...SAFE, DASHBOARD_URL: "http://127.0.0.1:8787/account/billing" }),
    ).toEqual(["DASHBOARD_URL names a local or placeholder host (127.0.0.1)"]);
  });

  it("refuses STRIPE_API_URL on a local address; unset means Stripe itself", () => {
    expect(configProblems({ ...SAFE, STRIPE_API_URL: "http://127.0.0.1:12111" })).toEqual([
      "STRIPE_API_URL names a local or placeholder host (127.0.0.1)",
    ]);
    expect(configProblems({ ...SAFE, STRIPE_API_URL: undefined })).toEqual([]);
  });

  it("refuses wrangler.toml's example.com placeholders and plain http", () => {
    expect(configProblems({ ...SAFE, UPSTREAM_URL: "https://classifier.example.com" })).toEqual([
      "UPSTREAM_URL names a local or placeholder host (classifier.example.com)",
    ]);
    expect(
      configProblems({ ...SAFE, DASHBOARD_URL: "http://api.acme.io/account/billing" }),
    ).toEqual(["DASHBOARD_URL is not https"]);
    expect(configProblems({ ...SAFE, UPSTREAM_URL: "not a url" })).toEqual([
      "UPSTREAM_URL is not a URL",
    ]);
  });

  it("accepts a missing UPSTREAM_URL host when a service binding reaches the upstream", () => {
    expect(configProblems({ ...SAFE, UPSTREAM_URL: "http://127.0.0.1", UPSTREAM: {} })).toEqual([]);
    expect(configProblems({ ...SAFE, UPSTREAM_URL: undefined })).toEqual([
      "UPSTREAM_URL is not set",
    ]);
  });

  it("names every missing secret, never its value", () => {
    expect(
      configProblems({
        ...SAFE,
        STRIPE_SECRET_KEY: undefined,
        STRIPE_WEBHOOK_SECRET: " ",
        SESSION_SECRET: "",
      }),
    ).toEqual([
      "the secret STRIPE_SECRET_KEY is not set",
      "the secret STRIPE_WEBHOOK_SECRET is not set",
      "the secret SESSION_SECRET is not set",
    ]);
    expect(configProblems({ ...SAFE, ADMIN_TOKEN: "dev-admin-token" })).toEqual([
      "ADMIN_TOKEN is the local default (dev-admin-token)",
    ]);
  });

  it("needs an email sender: the binding and a real From address", () => {
    expect(configProblems({ ...SAFE, EMAIL: undefined })).toEqual([
      "no email sender: the EMAIL (send_email) binding is missing",
    ]);
    expect(configProblems({ ...SAFE, EMAIL_FROM: undefined })).toEqual(["EMAIL_FROM is not set"]);
    expect(configProblems({ ...SAFE, EMAIL_FROM: "billing@tollgate.example" })).toEqual([
      "EMAIL_FROM is on a local or placeholder domain (tollgate.example)",
    ]);
    expect(configProblems({ ...SAFE, SUPPORT_EMAIL: "support@example.com" })).toEqual([
      "SUPPORT_EMAIL is on a local or placeholder domain (example.com)",
    ]);
  });

  it("refuses the local-only switches", () => {
    expect(configProblems({ ...SAFE, SIGNUP_STORE_LINKS: "true" })).toEqual([
      "SIGNUP_STORE_LINKS is on (local development only: it stores sign-in links)",
    ]);
    expect(configProblems({ ...SAFE, LEDGER_TEST_CLOCK: "true" })).toHaveLength(1);
  });

  it("is computed once per env object", () => {
    const env = { ...SAFE, SIGNUP_STORE_LINKS: "true" };
    const first = configProblemsOnce(env);
    env.SIGNUP_STORE_LINKS = "false";
    expect(configProblemsOnce(env)).toBe(first);
    expect(configProblemsOnce({ ...env })).toEqual([]);
  });
});

describe("isLocalOrPlaceholderHost", () => {
  it("knows this machine and the reserved names, and nothing else", () => {
    for (const h of [
      "localhost",
      "a.localhost",
      "127.0.0.1",
      "[::1]",
      "::1",
      "x.example",
      "example.org",
      "t.test",
      "a.invalid",
    ]) {
      expect(isLocalOrPlaceholderHost(h), h).toBe(true);
    }
    for (const h of ["acme.io", "127.acme.io", "examples.com", "10.0.0.1", "2001:db8::1"]) {
      expect(isLocalOrPlaceholderHost(h), h).toBe(false);
    }
  });
});
