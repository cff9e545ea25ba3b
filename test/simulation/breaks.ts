/**
 * Deliberately broken variants of the live system, one or more per invariant, to show the
 * simulation notices. Each patches the running account's Durable Object (its private helpers
 * are looked up on `this` at call time, so an own property on the instance replaces them) or
 * the Stripe client the worker uses, then the caller runs a few simulation steps.
 *
 * RPC calls dispatch to the class's prototype methods and ignore own properties on the
 * instance (checked in this workerd), which is why the patches target internal helpers, SQL
 * statements or the Stripe client rather than RPC methods. `restartLedger` (an abort) undoes
 * every instance patch; Stripe spies are restored by the caller.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { type MockInstance, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import { PACKAGES, type PackageId, PLANS } from "../../src/pricing";
import { stripeFor } from "../../src/stripe/client";

type Instance = Record<string, unknown>;

function patch(
  accountId: string,
  apply: (instance: Instance, storage: DurableObjectStorage) => void,
) {
  return runInDurableObject(ledgerFor(env, accountId), (instance, state) => {
    apply(instance as unknown as Instance, state.storage);
  });
}

/**
 * Invariant 1. Every code path is stopped from writing a negative bucket three times over
 * (splitDebit, the guarded UPDATE, the table's CHECK), so this variant corrupts storage
 * instead: a schema regression drops the CHECK constraints and a write takes the settled
 * `purchased` below zero, with a ledger entry to match (so only invariant 1 has anything to say).
 */
export function negativeBucket(accountId: string) {
  return patch(accountId, (_instance, storage) => {
    const sql = storage.sql;
    storage.transactionSync(() => {
      sql.exec("CREATE TABLE state_unchecked AS SELECT * FROM state");
      sql.exec("DROP TABLE state");
      sql.exec("ALTER TABLE state_unchecked RENAME TO state");
      const { purchased } = sql.exec<{ purchased: number }>("SELECT purchased FROM state").one();
      sql.exec("UPDATE state SET purchased = -40");
      sql.exec(
        "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at) VALUES ('break:negative', 'adjustment', 0, ?, ?)",
        -40 - purchased,
        Date.now(),
      );
    });
  }).then(() => reloadMemory(accountId));
}

/** After a break written to storage: the object rebuilds its memory from it, as on a restart. */
function reloadMemory(accountId: string) {
  return patch(accountId, (instance) => {
    (instance.reload as () => void).call(instance);
  });
}

/** Invariant 2: refunds put the credits back but never write their ledger entry. */
export function refundsSkipTheLedger(accountId: string) {
  return patch(accountId, (instance) => {
    const append = (instance.appendLedger as (...args: unknown[]) => void).bind(instance);
    instance.appendLedger = (...args: unknown[]) => {
      if (args[1] !== "refund") append(...args);
    };
  });
}

/**
 * Invariant 3, charge without credit: the ledger believes every recharge was already granted,
 * so a paid purchase is never credited.
 */
export function grantsThinkTheyAreDone(accountId: string) {
  return patch(accountId, (instance) => {
    const has = (instance.hasLedgerRef as (ref: string) => boolean).bind(instance);
    instance.hasLedgerRef = (ref: string) => ref.startsWith("rch_") || has(ref);
  });
}

/**
 * Invariant 3, credit without charge: the payment step reports a declined card as paid, so
 * the purchase is credited while its invoice in Stripe stays open (no charge).
 */
export function declinesLookPaid(): MockInstance {
  const invoices = stripeFor(env).invoices;
  const pay = invoices.pay.bind(invoices);
  return vi.spyOn(invoices, "pay").mockImplementation((async (...args: Parameters<typeof pay>) => {
    try {
      return await pay(...args);
    } catch (err) {
      if (!(err instanceof Stripe.errors.StripeCardError)) throw err;
      return { id: args[0], object: "invoice", status: "paid", metadata: {} };
    }
  }) as never);
}

/**
 * Invariant 3, charged twice: a retry that does not reuse the recharge's keys (a lost first
 * attempt, forgotten and started again under fresh keys), so Stripe holds and charges a second
 * invoice for the same recharge.
 */
export function retriesWithFreshKeys(): MockInstance {
  const stripe = stripeFor(env);
  const invoices = stripe.invoices;
  const create = invoices.create.bind(invoices);
  return vi.spyOn(invoices, "create").mockImplementation((async (
    params: Parameters<typeof create>[0],
    options?: Parameters<typeof create>[1],
  ) => {
    const lost = `${options?.idempotencyKey}:lost`;
    const first = await create(params, { ...options, idempotencyKey: lost });
    const pkg = params?.metadata && (params.metadata as Record<string, string>).package;
    await stripe.invoiceItems.create(
      {
        customer: params?.customer,
        invoice: first.id,
        amount: PACKAGES[pkg as PackageId].priceCents,
        currency: "usd",
      },
      { idempotencyKey: `${lost}:item` },
    );
    await invoices.finalizeInvoice(first.id as string, {}, { idempotencyKey: `${lost}:fin` });
    await invoices.pay(
      first.id as string,
      { payment_method: params?.default_payment_method, off_session: true },
      { idempotencyKey: `${lost}:pay` },
    );
    return create(params, options);
  }) as never);
}

/** Invariant 4: the trigger never sees the recharge already in flight. */
export function triggerIgnoresPending(accountId: string) {
  return patch(accountId, (instance) => {
    instance.pendingAutoRecharge = () => false;
  });
}

/**
 * Invariant 5: a failed payment is recorded, but the statement that records it no longer
 * switches auto-recharge off.
 */
export function failuresKeepAutoRechargeOn(accountId: string) {
  return patch(accountId, (instance) => {
    const sql = instance.sql as SqlStorage;
    instance.sql = {
      exec: (query: string, ...bindings: unknown[]) =>
        sql.exec(
          query.replace("SET auto_enabled = 0, last_failure_at", "SET last_failure_at"),
          ...bindings,
        ),
    };
  });
}

/**
 * Invariant 6: an upgrade forgets the largest allowance already granted this cycle and adds
 * the difference to the current plan each time, as before the fix, so plan flip-flops mint
 * monthly credits.
 */
export function upgradesForgetTheCycle(accountId: string) {
  return patch(accountId, (instance) => {
    const current = (instance.current as () => Record<string, unknown> | null).bind(instance);
    instance.current = () => {
      const s = current();
      return s
        ? { ...s, cycle_max_monthly: PLANS[s.plan as keyof typeof PLANS].monthlyCredits }
        : s;
    };
  });
}

/** Invariant 7: a revocation guard that lets the last full key go (every key revoked). */
export async function everyKeyRevoked(accountId: string) {
  await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE account_id = ?")
    .bind(new Date().toISOString(), accountId)
    .run();
}
