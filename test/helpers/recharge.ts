import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import type { RechargeJob } from "../../src/purchases/messages";
import { createAccount, gateway, setBalance, type TestAccount } from "./http";
import { attachCard } from "./stripe";

/**
 * The account's queue sends "succeed" but go nowhere, as when the worker dies right after the
 * send: the recharge stays pending and the test drives the consumer's steps itself. The test's
 * queue binding is the very object every ledger sends through (one isolate), so the sends of
 * every account are lost until the spy is restored; `_account` names the one the test means.
 */
export async function loseQueueSends(_account: TestAccount): Promise<RechargeJob[]> {
  const jobs: RechargeJob[] = [];
  vi.spyOn(env.RECHARGE_QUEUE, "send").mockImplementation(async (body) => {
    jobs.push(body as RechargeJob);
    return undefined as never;
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
