import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import type { RechargeJob } from "../../src/purchases/messages";
import { createAccount, gateway, setBalance, type TestAccount } from "./http";
import { attachCard } from "./stripe";

/**
 * The account's queue sends "succeed" but go nowhere, as when the worker dies right after the
 * send: the recharge stays pending and the test drives the consumer's steps itself.
 */
export async function loseQueueSends(account: TestAccount): Promise<RechargeJob[]> {
  const jobs: RechargeJob[] = [];
  await runInDurableObject(ledgerFor(env, account.id), (instance) => {
    const queue = (instance as unknown as { env: Cloudflare.Env }).env.RECHARGE_QUEUE;
    vi.spyOn(queue, "send").mockImplementation(async (body) => {
      jobs.push(body as RechargeJob);
      return undefined as never;
    });
  });
  return jobs;
}

/** A free account with `card` on file, 400 credits and auto-recharge on (1,000 credits). */
export async function autoRechargingAccount(card = "pm_card_visa") {
  const account = await createAccount();
  const pm = await attachCard(account, card);
  await setBalance(account, { monthly: 400, purchased: 0 });
  const res = await gateway("/v1/account/auto-recharge", {
    method: "PUT",
    key: account.api_key,
    body: JSON.stringify({ enabled: true, package: "credits_1000" }),
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  return { account, pm, customer: account.stripe_customer_id as string };
}
