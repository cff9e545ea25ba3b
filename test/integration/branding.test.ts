/**
 * PRODUCT_NAME, COMPANY_NAME and SUPPORT_EMAIL name the business on its pages and in its emails
 * (API.md "Production"); unset, local mode keeps saying Tollgate and Product Classifier.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/platform/env";
import type { RechargeJob } from "../../src/purchases/messages";
import { chargeRecharge } from "../../src/purchases/payments";
import { stripeFor } from "../../src/stripe/client";
import { gateway, setBalance } from "../helpers/http";
import { autoRechargingAccount, loseQueueSends } from "../helpers/recharge";
import { invoicesOf } from "../helpers/stripe";

const ACME = {
  PRODUCT_NAME: "Acme Tagger",
  COMPANY_NAME: "Acme Corp",
  SUPPORT_EMAIL: "help@acme.io",
};

type SentEmail = { to: string; subject: string; text: string };

/** The test environment with ACME's names and a mail server that records what it is given. */
function acmeWithMailbox() {
  const sent: SentEmail[] = [];
  const EMAIL = {
    async send(message: unknown) {
      sent.push(message as SentEmail);
      return { messageId: "m" };
    },
  } as unknown as SendEmail;
  return { env: { ...env, ...ACME, EMAIL } as Bindings, sent };
}

const freshIp = () => {
  const r = crypto.getRandomValues(new Uint8Array(3));
  return `10.${r[0]}.${r[1]}.${r[2]}`;
};

describe("branding", () => {
  it("a page names the product and the company, and nothing of Tollgate", async () => {
    const res = await gateway("/account/billing", { env: { ...env, ...ACME } as Bindings });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("<title>Sign in · Account / Billing · Acme Corp</title>");
    expect(html).toContain("We email you a link that signs you in.");
    expect(html).not.toMatch(/Tollgate|Product Classifier/);
  });

  it("the sign-up page and its email name the business; the email ends with where to write", async () => {
    const mailbox = acmeWithMailbox();
    const email = `${crypto.randomUUID()}@example.com`;
    const res = await gateway("/v1/signup", {
      method: "POST",
      headers: { "CF-Connecting-IP": freshIp() },
      body: JSON.stringify({ email }),
      env: mailbox.env,
    });
    expect(res.status).toBe(202);
    const message = mailbox.sent.find((m) => m.to === email);
    expect(message?.subject).toBe("Your Acme Corp sign-up link");
    expect(message?.text).toContain(
      "asked to create an account with Acme Corp for this email address",
    );
    expect(message?.text).toMatch(
      /\n\n--\nAcme Corp · Acme Tagger\nQuestions\? Write to help@acme\.io$/,
    );
    expect(message?.text).not.toMatch(/Tollgate|Product Classifier/);
  });

  it("unset, local mode says what it always said", async () => {
    const res = await gateway("/account/billing");
    const html = await res.text();
    expect(html).toContain("<title>Sign in · Account / Billing · Tollgate</title>");
    expect(html).toContain("We email you a link that signs you in.");
  });

  it("a purchase's Stripe invoice is described with COMPANY_NAME", async () => {
    const { account, pm, customer } = await autoRechargingAccount();
    const jobs = await loseQueueSends(account);
    await setBalance(account, { monthly: 0, purchased: 100 });
    const outcome = await chargeRecharge(
      stripeFor(env),
      jobs[0] as RechargeJob,
      { customerId: customer, paymentMethodId: pm },
      { COMPANY_NAME: "Acme Corp" },
    );
    expect(outcome.status).toBe("succeeded");
    const [invoice] = await invoicesOf(customer);
    expect(invoice?.description).toBe("Acme Corp auto-recharge: 1,000 credits");
  });
});
