/**
 * Deliberately broken variants of the live system, one or more per invariant, to show the
 * simulation notices. None touches the Durable Object's code or private members (a refactor of
 * the object must not break them): each plants its bug where a test may reach, in the object's
 * storage (`state.storage`: a schema regression, or an SQLite trigger that does what the buggy
 * code would have done to the rows), in D1, or in the Stripe client the worker uses. Then the
 * caller runs a few simulation steps.
 *
 * A trigger runs inside the statement that fires it, so inside the object's own transaction:
 * what the object reads back afterwards (and keeps in memory) is the broken state, as it would
 * be with the bug in its code. Each break gets a fresh account; Stripe spies are restored by the
 * caller.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { type MockInstance, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import { PACKAGES, type PackageId, PLANS } from "../../src/pricing";
import { stripeFor } from "../../src/stripe/client";
import { restartLedger } from "./actions";

/** Runs `statements` in one transaction on the account's ledger storage. */
function plant(accountId: string, statements: (sql: SqlStorage) => void) {
  return runInDurableObject(ledgerFor(env, accountId), (_instance, state) => {
    state.storage.transactionSync(() => statements(state.storage.sql));
  });
}

/**
 * Invariant 1. Every code path is stopped from writing a negative bucket three times over
 * (splitDebit, the guarded UPDATE, the table's CHECK), so this variant corrupts storage
 * instead: a schema regression drops the CHECK constraints and a write takes the settled
 * `purchased` below zero, with a ledger entry to match (so only invariant 1 has anything to say).
 * The object then restarts, rebuilding its memory from that storage.
 */
export async function negativeBucket(accountId: string) {
  await plant(accountId, (sql) => {
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
  await restartLedger(accountId);
}

/** Invariant 2: refunds put the credits back but their ledger entry is never kept. */
export function refundsSkipTheLedger(accountId: string) {
  return plant(accountId, (sql) => {
    sql.exec(`CREATE TRIGGER break_refunds_skip_ledger AFTER INSERT ON ledger
      WHEN NEW.kind = 'refund'
      BEGIN DELETE FROM ledger WHERE seq = NEW.seq; END`);
  });
}

/**
 * Invariant 3, charge without credit: the ledger believes every recharge was already granted
 * (an entry under the recharge's id, written with the recharge, credits nothing), so a paid
 * purchase is never credited.
 */
export function grantsThinkTheyAreDone(accountId: string) {
  return plant(accountId, (sql) => {
    sql.exec(`CREATE TRIGGER break_grants_think_done AFTER INSERT ON recharges
      BEGIN
        INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at, note)
        VALUES (NEW.id, 'adjustment', 0, 0, NEW.created_at, 'break: looks granted');
      END`);
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

/**
 * Invariant 4: a second auto-recharge starts while one is in flight. (The pending check reads
 * the same rows the invariant does, so no storage change can blind it alone: this plants what
 * a blind check does, a second auto-recharge written beside the first, without its job.)
 */
export function triggerIgnoresPending(accountId: string) {
  return plant(accountId, (sql) => {
    sql.exec(`CREATE TRIGGER break_second_auto_recharge AFTER INSERT ON recharges
      WHEN NEW.kind = 'auto_recharge'
      BEGIN
        INSERT INTO recharges (id, kind, package, credits, amount_cents, status, created_at,
          payment_method)
        VALUES (NEW.id || '_second', NEW.kind, NEW.package, NEW.credits, NEW.amount_cents,
          NEW.status, NEW.created_at, NEW.payment_method);
      END`);
  });
}

/**
 * Invariant 5: a failed payment is recorded, but auto-recharge stays on (the statement that
 * records the failure no longer switches it off).
 */
export function failuresKeepAutoRechargeOn(accountId: string) {
  return plant(accountId, (sql) => {
    sql.exec(`CREATE TRIGGER break_failures_keep_auto AFTER UPDATE OF last_failure_at ON state
      WHEN NEW.last_failure_at IS NOT OLD.last_failure_at AND NEW.last_failure_at IS NOT NULL
      BEGIN UPDATE state SET auto_enabled = OLD.auto_enabled WHERE id = 1; END`);
  });
}

/**
 * Invariant 6: an upgrade forgets the largest allowance already granted this cycle and adds
 * the difference to the current plan each time, as before the fix, so plan flip-flops mint
 * monthly credits: whatever is written, the cycle's largest allowance stays the current plan's.
 */
export function upgradesForgetTheCycle(accountId: string) {
  const allowance = Object.entries(PLANS)
    .map(([plan, p]) => `WHEN '${plan}' THEN ${p.monthlyCredits}`)
    .join(" ");
  return plant(accountId, (sql) => {
    sql.exec(`CREATE TRIGGER break_upgrades_forget_cycle AFTER UPDATE ON state
      BEGIN
        UPDATE state SET cycle_max_monthly = CASE NEW.plan ${allowance} END WHERE id = 1;
      END`);
  });
}

/** Invariant 7: a revocation guard that lets the last full key go (every key revoked). */
export async function everyKeyRevoked(accountId: string) {
  await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE account_id = ?")
    .bind(new Date().toISOString(), accountId)
    .run();
}
