import { describe, expect, it } from "vitest";
import { activityAction, activityActor, activityDetail } from "../../src/web/billing/activity";

const detail = (action: string, details: Record<string, unknown>) =>
  activityDetail({ action, details });

describe("the Billing page's Activity in words", () => {
  it("says what changed, from each action's details", () => {
    expect(
      detail("key.created", { name: "ci", prefix: "tg_live_", last4: "a1b2", scope: "classify" }),
    ).toBe("“ci” tg_live_…a1b2, classify only");
    expect(detail("auto_recharge.updated", { enabled: true, package: "credits_3000" })).toBe(
      "on, 3,000 credits",
    );
    expect(detail("auto_recharge.updated", { enabled: false, package: null })).toBe("off");
    expect(detail("auto_recharge.disabled", { reason: "card_declined" })).toBe(
      "a payment failed (card_declined)",
    );
    expect(detail("limits.updated", { monthly_spend_limit_cents: 5_050 })).toBe(
      "spending limit $50.50 a month",
    );
    expect(
      detail("limits.updated", { monthly_spend_limit_cents: null, rate_limit_per_minute: 60 }),
    ).toBe("no spending limit; rate limit 60 requests a minute");
    expect(detail("alerts.updated", { low_balance_credits: 1_500 })).toBe(
      "at 1,500 credits or below",
    );
    expect(detail("alerts.updated", { low_balance_credits: null })).toBe("off");
    expect(detail("top_up.started", { credits: 1_000, amount_cents: 700 })).toBe(
      "1,000 credits for $7",
    );
    expect(detail("plan.changed", { from: "free", to: "pro" })).toBe("Free → Pro");
    expect(
      detail("credits.adjusted", { monthly: -10, purchased: 2_500, reason: "outage credit" }),
    ).toBe("−10 monthly, +2,500 purchased: outage credit");
    expect(detail("account.created", { plan: "starter", complimentary: true })).toBe(
      "Starter plan (complimentary)",
    );
  });

  it("shows an action it does not know by its name, with no detail, never dropping it", () => {
    expect(activityAction("export.downloaded")).toBe("export.downloaded");
    expect(detail("export.downloaded", { url: "https://example.com" })).toBe("");
    expect(activityAction("key.revoked")).toBe("API key revoked");
    expect(activityAction("webhook.created")).toBe("Webhook endpoint added");
  });

  it("says who joined, was invited, changed role or left, with their role", () => {
    expect(activityAction("member.invited")).toBe("Member invited");
    expect(detail("member.invited", { email: "a@example.com", role: "developer" })).toBe(
      "a@example.com (developer)",
    );
    expect(detail("member.joined", { role: "billing" })).toBe("as billing");
    expect(activityAction("sign_in_link.sent")).toBe("Sign-in link emailed by an operator");
    expect(detail("sign_in_link.sent", { email: "a@example.com", member_id: "mem_1" })).toBe(
      "to a@example.com",
    );
  });

  it("says how a person signed in, and which passkey was added or removed", () => {
    expect(activityAction("passkey.added")).toBe("Passkey added");
    expect(detail("passkey.added", { passkey_id: "AAAAAAAAabcdEFGH" })).toBe("passkey …abcdEFGH");
    expect(detail("passkey.removed", { passkey_id: "xyzabcdEFGH" })).toBe("passkey …abcdEFGH");
    expect(detail("person.signed_in", { method: "passkey" })).toBe("with a passkey");
    expect(detail("person.signed_in", {})).toBe("");
  });

  it("names who acted: a person by their label, anyone else by kind and label", () => {
    expect(activityActor({ type: "person", id: "p1", label: "ana@example.com" })).toBe(
      "ana@example.com",
    );
    expect(activityActor({ type: "api_key", id: "key_1", label: "tg_live_…a1b2" })).toBe(
      "API key tg_live_…a1b2",
    );
    expect(activityActor({ type: "operator", id: "admin_token", label: "admin token" })).toBe(
      "operator admin token",
    );
  });
});
