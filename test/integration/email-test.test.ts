/**
 * `POST /admin/email-test` (npm run email:test): one email through the configured sender,
 * recorded like every other, and an answer that says what happened.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/platform/env";
import { admin, expectError, gateway, json } from "../helpers/http";

interface Answer {
  status: string;
  to: string;
  from: string;
  environment: string;
  email: { id: string; status: string; error: string | null } | null;
}

const withSender = (send: (m: unknown) => Promise<unknown>): Bindings =>
  ({ ...env, EMAIL: { send } as unknown as SendEmail }) as Bindings;

describe("POST /admin/email-test", () => {
  it("sends through the EMAIL binding (workerd's own here) and says so", async () => {
    const to = `${crypto.randomUUID()}@example.com`;
    const res = await admin("/email-test", { method: "POST", body: JSON.stringify({ to }) });
    expect(res.status).toBe(200);
    const body = await json<Answer>(res);
    expect(body).toMatchObject({ status: "sent", to, from: env.EMAIL_FROM, environment: "local" });
    expect(body.email).toMatchObject({ status: "sent", error: null });
    expect(body.email?.id).toMatch(/^em_/);
  });

  it("what the sender is given: the business's names and the signature", async () => {
    const sent: { to: string; from: string; subject: string; text: string }[] = [];
    const to = `${crypto.randomUUID()}@example.com`;
    const res = await admin("/email-test", {
      method: "POST",
      body: JSON.stringify({ to }),
      env: withSender(async (m) => {
        sent.push(m as (typeof sent)[number]);
        return { messageId: "m" };
      }),
    });
    expect((await json<Answer>(res)).status).toBe("sent");
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ to, from: env.EMAIL_FROM, subject: "Tollgate: test email" });
    expect(sent[0]?.text).toContain("--\nTollgate · Product Classifier");
  });

  it("a sender that fails: 200 with status failed and the sender's error, recorded", async () => {
    const to = `${crypto.randomUUID()}@example.com`;
    const res = await admin("/email-test", {
      method: "POST",
      body: JSON.stringify({ to }),
      env: withSender(async () => {
        throw new Error("domain not onboarded");
      }),
    });
    const body = await json<Answer>(res);
    expect(body.status).toBe("failed");
    expect(body.email?.status).toBe("failed");
    expect(body.email?.error).toContain("domain not onboarded");
  });

  it("operators only, and a real address", async () => {
    const res = await gateway("/admin/email-test", {
      method: "POST",
      body: JSON.stringify({ to: "a@example.com" }),
    });
    expect(res.status).toBe(401);
    await res.arrayBuffer();
    await expectError(
      await admin("/email-test", { method: "POST", body: JSON.stringify({ to: "nope" }) }),
      400,
      "invalid_request",
    );
  });
});
