/**
 * Low-balance alerts (`/v1/account/alerts`): one email each time the total falls to or below
 * the customer's level, not again until it has been above it, worded by what auto-recharge
 * will do at that moment (on, off, paused by the spending limit, failed).
 */
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { dbFor } from "../../src/db/client";
import { emails } from "../../src/db/schema";
import { ledgerFor } from "../../src/ledger/client";
import {
  admin,
  balanceOf,
  classify,
  createAccount,
  expectError,
  gateway,
  json,
  setBalance,
  type TestAccount,
} from "../helpers/http";
import { autoRechargingAccount } from "../helpers/recharge";
import { attachCard, eventually } from "../helpers/stripe";
import { Prng } from "../simulation/prng";

const db = dbFor(env.DB);

async function putAlerts(account: TestAccount, body: unknown, key = account.api_key) {
  return gateway("/v1/account/alerts", { method: "PUT", key, body: JSON.stringify(body) });
}

async function setLevel(account: TestAccount, level: number | null) {
  const res = await putAlerts(account, { low_balance_credits: level });
  expect(res.status).toBe(200);
  expect(await json(res)).toEqual({ low_balance_credits: level });
}

async function alertsOf(account: TestAccount) {
  const res = await gateway("/v1/account/alerts", { key: account.api_key });
  expect(res.status).toBe(200);
  return json<{ low_balance_credits: number | null }>(res);
}

async function lowBalanceEmails(accountId: string) {
  const rows = await db.select().from(emails).where(eq(emails.accountId, accountId)).all();
  return rows.filter((r) => r.kind === "low_balance");
}

async function spend(account: TestAccount, n: number) {
  for (let i = 0; i < n; i++) {
    const res = await classify(account);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
}

describe("GET and PUT /v1/account/alerts", () => {
  it("a new account has no alert; PUT sets and GET reads the level; null turns it off", async () => {
    const account = await createAccount();
    expect(await alertsOf(account)).toEqual({ low_balance_credits: null });
    await setLevel(account, 50);
    expect(await alertsOf(account)).toEqual({ low_balance_credits: 50 });
    // Operators see it beside the limits.
    const view = await json<{ alerts: unknown; balance: Record<string, unknown> }>(
      await admin(`/accounts/${account.id}`),
    );
    expect(view.alerts).toEqual({ low_balance_credits: 50 });
    expect(view.balance).not.toHaveProperty("alerts");
    await setLevel(account, null);
    expect(await alertsOf(account)).toEqual({ low_balance_credits: null });
  });

  it("bad input is 400 invalid_request naming low_balance_credits", async () => {
    const account = await createAccount();
    for (const body of [
      { low_balance_credits: -1 },
      { low_balance_credits: 1.5 },
      { low_balance_credits: "50" },
      { low_balance_credits: 1_000_001 },
      {},
    ]) {
      const res = await putAlerts(account, body);
      const err = await expectError(res, 400, "invalid_request");
      expect(err.error.fields?.map((f) => f.field)).toEqual(["low_balance_credits"]);
    }
    const extra = await putAlerts(account, { low_balance_credits: 5, email: "x@example.com" });
    const err = await expectError(extra, 400, "invalid_request");
    expect(err.error.fields?.map((f) => f.field)).toEqual(["email"]);
    expect(await alertsOf(account)).toEqual({ low_balance_credits: null });
    // The largest level is accepted.
    await setLevel(account, 1_000_000);
  });

  it("a classify key reads the alert but cannot change it (403 insufficient_scope)", async () => {
    const account = await createAccount();
    await setLevel(account, 10);
    const made = await gateway("/v1/account/keys", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ name: "classify only", scope: "classify" }),
    });
    expect(made.status).toBe(201);
    const { key } = await json<{ key: string }>(made);
    await expectError(
      await putAlerts(account, { low_balance_credits: 99 }, key),
      403,
      "insufficient_scope",
    );
    const read = await gateway("/v1/account/alerts", { key });
    expect(read.status).toBe(200);
    expect(await json(read)).toEqual({ low_balance_credits: 10 });
  });
});

describe("once per crossing", () => {
  it("debits to the level (exactly) and below send one email; above and down again sends a second", async () => {
    const account = await createAccount();
    await setLevel(account, 50);
    await setBalance(account, { monthly: 52, purchased: 0 });
    await spend(account, 1); // 51: above
    expect(await lowBalanceEmails(account.id)).toHaveLength(0);
    await spend(account, 1); // 50: exactly at the level counts
    const [first] = await lowBalanceEmails(account.id);
    expect(first).toMatchObject({ status: "sent", kind: "low_balance" });
    expect(first?.textBody).toContain("Your Tollgate balance is 50 credits");
    await spend(account, 2); // 49, 48: still below, no second email
    await setBalance(account, { monthly: 30, purchased: 0 }); // an adjustment down, still below
    expect(await lowBalanceEmails(account.id)).toHaveLength(1);

    // Above the level again (an operator grant), then down to it: the second crossing.
    await setBalance(account, { monthly: 51, purchased: 0 });
    expect(await lowBalanceEmails(account.id)).toHaveLength(1);
    await spend(account, 1);
    const all = await lowBalanceEmails(account.id);
    expect(all).toHaveLength(2);
    expect(new Set(all.map((e) => e.ref)).size).toBe(2);
    expect((await balanceOf(account)).total).toBe(50);
  });

  it("a refund (the upstream failed) does not re-arm it: retries at the level email once", async () => {
    const account = await createAccount();
    const ledger = ledgerFor(env, account.id);
    await setLevel(account, 50);
    await setBalance(account, { monthly: 51, purchased: 0 });
    for (let attempt = 0; attempt < 3; attempt++) {
      // Each retry crosses the level (51 → 50) and is refunded (back to 51).
      const d = await ledger.debit(1, `dbt_retry_${attempt}`);
      if (!d.ok) throw new Error(d.reason);
      const r = await ledger.refund(`dbt_retry_${attempt}`, { minute: d.minute, ...d.charged });
      expect(r).toMatchObject({ ok: true, refunded: true });
    }
    expect((await balanceOf(account)).total).toBe(51);
    expect(await lowBalanceEmails(account.id)).toHaveLength(1);
    // Credits that really arrive (an operator grant) re-arm it.
    await setBalance(account, { monthly: 60, purchased: 0 });
    await spend(account, 10);
    expect(await lowBalanceEmails(account.id)).toHaveLength(2);
  });

  it("an adjustment that takes the total to the level emails, as a debit does", async () => {
    const account = await createAccount();
    await setLevel(account, 100);
    await setBalance(account, { monthly: 60, purchased: 40 });
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.textBody).toContain("Your Tollgate balance is 100 credits");
  });

  it("a new cycle that lowers the total below the level emails", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 900, purchased: 0 });
    await setLevel(account, 600);
    const now = Date.now();
    const cycle = await ledgerFor(env, account.id).startCycle({
      ref: `cycle:${account.id}:test`,
      plan: "free",
      version: 0,
      startsAt: now,
      endsAt: now + 40 * 86_400_000,
      source: "alarm",
    });
    expect(cycle).toMatchObject({ ok: true, started: true, balance: { total: 500 } });
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.textBody).toContain("Your Tollgate balance is 500 credits");
  });

  it("setting a level at or above the balance sends nothing now; the next fall after a rise does", async () => {
    const account = await createAccount();
    await setBalance(account, { monthly: 40, purchased: 0 });
    await setLevel(account, 50);
    await spend(account, 2);
    expect(await lowBalanceEmails(account.id)).toHaveLength(0);
    await setBalance(account, { monthly: 51, purchased: 0 });
    await spend(account, 1);
    expect(await lowBalanceEmails(account.id)).toHaveLength(1);
  });

  it("null turns it off: no email at any level", async () => {
    const account = await createAccount();
    await setLevel(account, 50);
    await setLevel(account, null);
    await setBalance(account, { monthly: 51, purchased: 0 });
    await spend(account, 3);
    await setBalance(account, { monthly: 0, purchased: 0 });
    expect(await lowBalanceEmails(account.id)).toHaveLength(0);
  });
});

describe("the email's wording follows auto-recharge at the crossing", () => {
  it("off: turn on auto-recharge or buy credits", async () => {
    const account = await createAccount();
    await setLevel(account, 50);
    await setBalance(account, { monthly: 51, purchased: 0 });
    await spend(account, 1);
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.subject).toBe("Action needed: low balance, 50 credits left");
    expect(mail?.textBody).toContain("Auto-recharge is off");
    expect(mail?.textBody).toContain("turn on auto-recharge or buy credits");
  });

  it("on: nothing to do, the package it will buy at the threshold", async () => {
    const { account } = await autoRechargingAccount();
    await setLevel(account, 300);
    await setBalance(account, { monthly: 301, purchased: 0 });
    await spend(account, 1);
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.subject).toBe("Low balance: 300 credits left (auto-recharge is on)");
    expect(mail?.textBody).toContain(
      "when your balance reaches 100 credits, it buys 1,000 credits for $7.00",
    );
    expect(mail?.textBody).toContain("No action is needed.");
  });

  it("on, at the threshold: the recharge that debit started is being bought", async () => {
    const { account } = await autoRechargingAccount();
    await setLevel(account, 100);
    await setBalance(account, { monthly: 101, purchased: 0 });
    await spend(account, 1);
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.textBody).toContain("Auto-recharge is buying 1,000 credits for $7.00");
    // The recharge lands; the total is above the level again, so the alert is armed.
    await eventually(async () => expect((await balanceOf(account)).purchased).toBe(1_000));
    await setBalance(account, { monthly: 0, purchased: 101 });
    await spend(account, 1);
    await eventually(async () => expect(await lowBalanceEmails(account.id)).toHaveLength(2));
  });

  it("paused by the spending limit: raise the limit", async () => {
    const account = await createAccount();
    await attachCard(account);
    const limit = await gateway("/v1/account/limits", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ monthly_spend_limit_cents: 500 }),
    });
    expect(limit.status).toBe(200);
    await limit.arrayBuffer();
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true, package: "credits_1000" }),
    });
    expect(on.status).toBe(200);
    await on.arrayBuffer();
    await setLevel(account, 100);
    await setBalance(account, { monthly: 101, purchased: 0 });
    await spend(account, 1); // 100: the trigger pauses ($7 > $5), and the alert says so
    const settings = await json<{ paused: string | null }>(
      await gateway("/v1/account/auto-recharge", { key: account.api_key }),
    );
    expect(settings.paused).toBe("spending_limit_reached");
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.subject).toBe(
      "Action needed: low balance, 100 credits left (auto-recharge is paused)",
    );
    expect(mail?.textBody).toContain("monthly spending limit of $5.00");
    expect(mail?.textBody).toContain("raise or remove the spending limit");
  });

  for (const [card, code, expected] of [
    ["pm_card_chargeCustomerFail", "card_declined", "Update your payment method"],
    ["pm_card_authenticationRequired", "authentication_required", "complete the authentication"],
  ] as const) {
    it(`failed (${code}): the reason, and what to do about it`, async () => {
      const { account } = await autoRechargingAccount(card);
      await setBalance(account, { monthly: 0, purchased: 5 });
      await eventually(async () => {
        const s = await json<{ enabled: boolean; last_failure: { code: string } | null }>(
          await gateway("/v1/account/auto-recharge", { key: account.api_key }),
        );
        expect(s).toMatchObject({ enabled: false, last_failure: { code } });
      });
      await setLevel(account, 4);
      await spend(account, 1);
      const [mail] = await lowBalanceEmails(account.id);
      expect(mail?.subject).toBe(
        "Action needed: low balance, 4 credits left (your last auto-recharge failed)",
      );
      expect(mail?.textBody).toContain(`(${code}: `);
      expect(mail?.textBody).toContain(expected);
    });
  }
});

describe("auto-recharge turned back on while one waits for authentication", () => {
  it("the email asks for the authentication, with its link, instead of saying no action is needed", async () => {
    const { account } = await autoRechargingAccount("pm_card_authenticationRequired");
    await setBalance(account, { monthly: 0, purchased: 5 });
    await eventually(async () => {
      const s = await json<{ enabled: boolean; last_failure: { code: string } | null }>(
        await gateway("/v1/account/auto-recharge", { key: account.api_key }),
      );
      expect(s).toMatchObject({
        enabled: false,
        last_failure: { code: "authentication_required" },
      });
    });
    const on = await gateway("/v1/account/auto-recharge", {
      method: "PUT",
      key: account.api_key,
      body: JSON.stringify({ enabled: true }),
    });
    const settings = await json<{ pending: boolean; last_failure: { action_url: string } }>(on);
    expect(settings.pending).toBe(true);
    await setLevel(account, 4);
    await spend(account, 1);
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.textBody).toContain("is waiting for you to confirm the payment");
    expect(mail?.textBody).toContain(
      `complete the authentication here: ${settings.last_failure.action_url}`,
    );
    expect(mail?.textBody).not.toContain("No action is needed");
  });
});

describe("failed after a top-up", () => {
  it("a declined top-up: the email names the purchase that failed", async () => {
    const account = await createAccount();
    await attachCard(account, "pm_card_chargeCustomerFail");
    const res = await gateway("/v1/account/top-ups", {
      method: "POST",
      key: account.api_key,
      body: JSON.stringify({ package: "credits_1000" }),
    });
    expect(res.status).toBe(202);
    await res.arrayBuffer();
    await eventually(async () => {
      const s = await json<{ last_failure: { code: string } | null }>(
        await gateway("/v1/account/auto-recharge", { key: account.api_key }),
      );
      expect(s.last_failure?.code).toBe("card_declined");
    });
    await setLevel(account, 400);
    await setBalance(account, { monthly: 400, purchased: 0 });
    const [mail] = await lowBalanceEmails(account.id);
    expect(mail?.subject).toBe(
      "Action needed: low balance, 400 credits left (your last credit purchase failed)",
    );
    expect(mail?.textBody).toContain("Your last credit purchase did not go through (card_declined");
  });
});

describe("a seeded random walk matches the rule, step by step", () => {
  for (const seed of [13, 2026, 7, 90210]) {
    it(`seed ${seed}: debits, refunds, adjustments and level changes email once per crossing`, async () => {
      const rng = new Prng(seed);
      const account = await createAccount();
      const ledger = ledgerFor(env, account.id);
      // The model: the rule as the contract states it, over the totals alone.
      let total = 500;
      let level: number | null = rng.int(100, 400);
      let armed = total > level;
      let expected = 0;
      await setLevel(account, level);
      const refundable: Array<{ ref: string; minute: number; monthly: number; purchased: number }> =
        [];
      const follow = () => {
        if (level === null) return;
        if (armed && total <= level) {
          expected++;
          armed = false;
        } else if (!armed && total > level) armed = true;
      };
      for (let step = 0; step < 60; step++) {
        const roll = rng.next();
        if (roll < 0.55 && total > 0) {
          const cost = rng.int(1, Math.min(total, 40));
          const ref = `dbt_${seed}_${step}`;
          const d = await ledger.debit(cost, ref);
          if (!d.ok) throw new Error(`debit refused at step ${step}: ${d.reason}`);
          refundable.push({ ref, minute: d.minute, ...d.charged });
          total -= cost;
        } else if (roll < 0.7 && refundable.length > 0) {
          const c = refundable.splice(rng.int(0, refundable.length - 1), 1)[0] as {
            ref: string;
            minute: number;
            monthly: number;
            purchased: number;
          };
          const r = await ledger.refund(c.ref, c);
          expect(r).toMatchObject({ ok: true, refunded: true });
          total += c.monthly + c.purchased;
          // A refund never arms the alert (nor, raising the total, fires it).
          expect(await lowBalanceEmails(account.id), `emails at step ${step}`).toHaveLength(
            expected,
          );
          continue;
        } else if (roll < 0.8 && total > 0) {
          // An operator takes credits away, monthly first.
          const b = await balanceOf(account);
          const down = rng.int(1, Math.min(total, 120));
          const monthly = Math.min(b.monthly, down);
          const r = await ledger.adjust({
            ref: `adj_${seed}_${step}`,
            monthly: -monthly,
            purchased: -(down - monthly),
            reason: "walk down",
          });
          expect(r.ok).toBe(true);
          total -= down;
        } else if (roll < 0.95) {
          const up = rng.int(1, 150);
          const r = await ledger.adjust({
            ref: `adj_${seed}_${step}`,
            monthly: 0,
            purchased: up,
            reason: "walk up",
          });
          expect(r.ok).toBe(true);
          total += up;
        } else {
          // Near the balance, so the walk goes on crossing it; now and then none.
          level = rng.chance(0.15) ? null : rng.int(Math.max(0, total - 80), total + 10);
          await setLevel(account, level);
          armed = level !== null && total > level;
          continue;
        }
        follow();
        expect((await balanceOf(account)).total, `total at step ${step}`).toBe(total);
        expect(await lowBalanceEmails(account.id), `emails at step ${step}`).toHaveLength(expected);
      }
      expect(expected, "the walk crossed the level at least once").toBeGreaterThan(0);
    });
  }
});
