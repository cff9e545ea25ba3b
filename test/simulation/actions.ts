/**
 * One handler per action: it performs the action against the live system, feeds the model,
 * and checks each HTTP or RPC answer against what the model says the answer must be.
 * A mismatch throws ModelDivergence straight away, naming the action.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import Stripe from "stripe";
import { dbFor } from "../../src/db/client";
import { accounts, transactions } from "../../src/db/schema";
import worker from "../../src/index";
import { ledgerFor } from "../../src/ledger/client";
import { type PackageId, PLANS } from "../../src/pricing";
import type { RechargeJob } from "../../src/purchases/messages";
import { jobFromTransaction } from "../../src/purchases/messages";
import { reconcile } from "../../src/purchases/reconciler";
import { admin, classify, gateway, type TestAccount } from "../helpers/http";
import { type Action, asBillingEvent, type TimelineEvent } from "./generators";
import * as M from "./model";
import { readLedger } from "./observe";

const db = dbFor(env.DB);
const cryptoProvider = Stripe.createSubtleCryptoProvider();
const HOUR = 60 * 60_000;
/** The plans' Stripe prices, made in the local Stripe server by the tests' global setup. */
const PRICES = {
  starter: env.STRIPE_PRICE_STARTER as string,
  pro: env.STRIPE_PRICE_PRO as string,
} as const;

/** The model disagreed with what the live system did or answered. */
export class ModelDivergence extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelDivergence";
  }
}

function expectThat(ok: boolean, what: string): asserts ok {
  if (!ok) throw new ModelDivergence(what);
}

/** What the handlers need from the running simulation. */
export interface ActionContext {
  account: TestAccount;
  customerId: string;
  model: M.ModelState;
  step: number;
  seed: number;
  timeline: TimelineEvent[];
  /** Recharge ids seen settled so far (for redeliveries). */
  settled: string[];
  /** Called when the customer switched auto-recharge on (for invariant 5's history). */
  enabled(): void;
  /** Counts something worth reporting in the run's summary. */
  count(what: string): void;
}

type Handler<K extends Action["kind"]> = (
  c: ActionContext,
  action: Extract<Action, { kind: K }>,
) => Promise<void>;

async function body(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { raw: text };
  }
}

function errorType(b: Record<string, unknown>): unknown {
  return (b.error as { type?: unknown } | undefined)?.type;
}

function sameBalance(b: Record<string, unknown>, s: M.Buckets): boolean {
  return b.monthly === s.monthly && b.purchased === s.purchased && b.total === M.total(s);
}

/** A cost-1 gateway request: 200 means it was debited, 403 that the model had nothing left. */
async function checkCostOneAnswers(c: ActionContext, responses: Response[], label: string) {
  const answers = await Promise.all(responses.map(async (r) => ({ r, b: await body(r) })));
  // All cost 1 and nothing refunded: apply the served ones first, then a refusal is only
  // right if nothing was left at the end (the total only fell during the burst).
  for (const { r } of answers.filter((a) => a.r.status === 200)) {
    expectThat(M.debit(c.model, 1) !== null, `${label}: served without credits to pay for it`);
    expectThat(r.headers.get("X-Credits-Charged") === "1", `${label}: X-Credits-Charged`);
  }
  for (const { r, b } of answers.filter((a) => a.r.status !== 200)) {
    if (r.status === 429) {
      c.count("rate limited");
      continue; // per-key rate limit: refused before any debit
    }
    expectThat(
      r.status === 403 && errorType(b) === "insufficient_credits" && M.total(c.model) === 0,
      `${label}: answered ${r.status} ${JSON.stringify(b)} with ${M.total(c.model)} credits left`,
    );
  }
}

const classifyBurst: Handler<"classify"> = async (c, a) => {
  const responses = await Promise.all(Array.from({ length: a.count }, () => classify(c.account)));
  await checkCostOneAnswers(c, responses, `classify ×${a.count}`);
};

const upstreamFailure: Handler<"upstreamFailure"> = async (c) => {
  const res = await classify(c.account, "/v1/status/503");
  const b = await body(res);
  if (res.status === 429) return c.count("rate limited");
  if (res.status === 403) {
    expectThat(M.total(c.model) === 0, `503 route refused with ${M.total(c.model)} credits`);
    return;
  }
  expectThat(
    res.status === 502 && errorType(b) === "upstream_error",
    `503 upstream answered ${res.status}`,
  );
  // Debited (which may trigger a recharge), then refunded to the same buckets.
  const take = M.debit(c.model, 1);
  expectThat(take !== null, "503 route debited without credits");
  c.model.monthly += take.monthly;
  c.model.purchased += take.purchased;
};

const freeRequest: Handler<"freeRequest"> = async (c) => {
  const res = await gateway("/v1/categories", { key: c.account.api_key });
  await res.arrayBuffer();
  if (res.status === 429) return;
  expectThat(res.status === 200, `free route answered ${res.status}`);
  expectThat(res.headers.get("X-Credits-Charged") === "0", "free route charged");
  M.debit(c.model, 0);
};

const directDebit: Handler<"directDebit"> = async (c, a) => {
  const ref = `sim_dbt_${c.seed}_${c.step}`;
  const result = await ledgerFor(env, c.account.id).debit(a.cost, ref);
  const take = M.debit(c.model, a.cost);
  if (!take) {
    expectThat(!result.ok, `debit of ${a.cost} accepted; the model had ${M.total(c.model)}`);
    return;
  }
  expectThat(result.ok, `debit of ${a.cost} refused: ${JSON.stringify(result)}`);
  expectThat(
    result.charged.monthly === take.monthly && result.charged.purchased === take.purchased,
    `debit split ${JSON.stringify(result.charged)}, expected ${JSON.stringify(take)}`,
  );
  c.model.directDebits.push({ ref, minute: result.minute, ...take, refunded: false });
};

const directRefund: Handler<"directRefund"> = async (c, a) => {
  const debits = c.model.directDebits;
  const picked = debits.length > 0 ? (debits[a.pick % debits.length] as M.DirectDebit) : null;
  const ref = picked?.ref ?? "nope";
  // The gateway's refund: the debit's minute and what it took (an unknown ref passes none).
  const charge = picked
    ? { minute: picked.minute, monthly: picked.monthly, purchased: picked.purchased }
    : null;
  const result = await ledgerFor(env, c.account.id).refund(ref, charge);
  const expected = M.refundDirect(c.model, ref);
  if (expected === "not_found") {
    expectThat(!result.ok, `refund of unknown ${ref} accepted`);
    return;
  }
  expectThat(
    result.ok && result.refunded === (expected === "refunded"),
    `refund of ${ref}: ${JSON.stringify(result)}, expected ${expected}`,
  );
};

async function postCredits(
  c: ActionContext,
  delta: M.Buckets,
  key: string | null,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await admin(`/accounts/${c.account.id}/credits`, {
    method: "POST",
    headers: key ? { "Idempotency-Key": key } : {},
    body: JSON.stringify({ ...delta, reason: `simulation step ${c.step}` }),
  });
  return { status: res.status, body: await body(res) };
}

const setBalance: Handler<"setBalance"> = async (c, a) => {
  const delta = {
    monthly: a.monthly - c.model.monthly,
    purchased: a.purchased - c.model.purchased,
  };
  if (delta.monthly === 0 && delta.purchased === 0) return;
  const res = await postCredits(c, delta, null);
  expectThat(M.adjust(c.model, delta, null) === "applied", "setBalance refused by the model");
  expectThat(
    res.status === 200 && sameBalance(res.body, c.model),
    `setBalance answered ${res.status} ${JSON.stringify(res.body)}`,
  );
};

const adjust: Handler<"adjust"> = async (c, a) => {
  const delta = { monthly: a.monthly, purchased: a.purchased };
  const res = await postCredits(c, delta, a.idempotencyKey);
  const outcome = M.adjust(c.model, delta, a.idempotencyKey);
  if (outcome === "reused") {
    // The same key with other amounts is another request: refused, nothing applied.
    expectThat(
      res.status === 409 && errorType(res.body) === "idempotency_conflict",
      `reused key answered ${res.status} ${JSON.stringify(res.body)}`,
    );
    return;
  }
  if (outcome === "refused") {
    expectThat(
      res.status === 409 &&
        errorType(res.body) === "insufficient_credits" &&
        sameBalance((res.body.error as Record<string, unknown>).balance as never, c.model),
      `refused adjustment answered ${res.status} ${JSON.stringify(res.body)}`,
    );
    return;
  }
  expectThat(
    res.status === 200 && sameBalance(res.body, c.model),
    `adjustment (${outcome}) answered ${res.status} ${JSON.stringify(res.body)}`,
  );
};

const autoRecharge: Handler<"autoRecharge"> = async (c, a) => {
  const input: { enabled?: boolean; package?: PackageId } = {};
  if (a.enabled !== undefined) input.enabled = a.enabled;
  if (a.package !== undefined) input.package = a.package;
  const res = await gateway("/v1/account/auto-recharge", {
    method: "PUT",
    key: c.account.api_key,
    body: JSON.stringify(input),
  });
  const b = await body(res);
  const outcome = M.updateAutoRecharge(c.model, input);
  if (outcome === "payment_method_required") {
    expectThat(
      res.status === 409 && errorType(b) === "payment_method_required",
      `enabling without a card answered ${res.status}`,
    );
    return;
  }
  if (input.enabled === true) c.enabled();
  expectThat(
    res.status === 200 &&
      b.enabled === c.model.autoEnabled &&
      b.package === c.model.autoPackage &&
      b.pending === c.model.autoPending,
    `auto-recharge settings answered ${res.status} ${JSON.stringify(b)}; model ${JSON.stringify({
      enabled: c.model.autoEnabled,
      package: c.model.autoPackage,
      pending: c.model.autoPending,
    })}`,
  );
};

const topUp: Handler<"topUp"> = async (c, a) => {
  const res = await gateway("/v1/account/top-ups", {
    method: "POST",
    key: c.account.api_key,
    headers: a.idempotencyKey ? { "Idempotency-Key": a.idempotencyKey } : {},
    body: JSON.stringify({ package: a.package }),
  });
  const b = await body(res);
  const outcome = M.topUp(c.model, a.package, a.idempotencyKey);
  const expected = {
    started: [202, undefined],
    replayed: [202, undefined],
    idempotency_conflict: [409, "idempotency_conflict"],
    payment_pending: [409, "payment_pending"],
    payment_method_required: [409, "payment_method_required"],
    spending_limit_reached: [409, "spending_limit_reached"],
  }[outcome];
  expectThat(
    res.status === expected[0] && errorType(b) === expected[1],
    `top-up (${outcome}) answered ${res.status} ${JSON.stringify(b)}`,
  );
  if (res.status === 202) {
    expectThat(
      (res.headers.get("Idempotent-Replayed") === "true") === (outcome === "replayed"),
      `top-up (${outcome}) Idempotent-Replayed header`,
    );
  }
};

const attachCard: Handler<"attachCard"> = async (c, a) => {
  const res = await admin(`/accounts/${c.account.id}/payment-method`, {
    method: "POST",
    body: JSON.stringify({ payment_method: a.card }),
  });
  const b = await body(res);
  const declined = M.attachCard(c.model, a.card);
  if (declined) {
    // Stripe declines the card when it is saved: a 400 naming the field, the card on file stays
    // (the check below compares D1 with Stripe's default as after any attach).
    const fields = (b as { error?: { type?: string; fields?: unknown } }).error;
    expectThat(
      res.status === 400 &&
        fields?.type === "invalid_request" &&
        JSON.stringify(fields.fields) ===
          JSON.stringify([{ field: "payment_method", message: declined }]),
      `attaching ${a.card} (declined when saved) answered ${res.status} ${JSON.stringify(b)}`,
    );
  } else {
    expectThat(
      res.status === 200,
      `attaching ${a.card} answered ${res.status} ${JSON.stringify(b)}`,
    );
  }
  // The card we charge (D1) must be the customer's default in Stripe, which the portal and
  // every later sync read.
  const row = await db.select().from(accounts).where(eq(accounts.id, c.account.id)).get();
  const customer = await fetch(`${env.STRIPE_API_URL}/v1/customers/${c.customerId}`, {
    headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  }).then((r) => r.json<{ invoice_settings: { default_payment_method: string | null } }>());
  expectThat(
    row?.paymentMethodId === customer.invoice_settings.default_payment_method,
    `after attaching ${a.card}: D1 charges ${row?.paymentMethodId}, Stripe's default is ${customer.invoice_settings.default_payment_method}`,
  );
};

/** The Stripe Event JSON of a timeline entry, with its own event id. */
function stripeEvent(c: ActionContext, e: TimelineEvent, eventId: string) {
  const price = PRICES[e.plan];
  const subscriptionId = `sub_sim${c.seed}`;
  const object = e.invoice
    ? {
        id: e.invoice.id,
        object: "invoice",
        customer: c.customerId,
        status: "paid",
        billing_reason: e.invoice.billingReason,
        parent: {
          type: "subscription_details",
          subscription_details: { subscription: subscriptionId },
        },
        ...invoiceLines(e, price, subscriptionId),
      }
    : {
        id: subscriptionId,
        object: "subscription",
        customer: c.customerId,
        status: e.type === "customer.subscription.deleted" ? "canceled" : "active",
        items: { object: "list", data: [{ id: "si_sim", price: { id: price } }] },
      };
  return {
    id: eventId,
    object: "event",
    type: e.type,
    created: e.createdSeconds,
    api_version: "2025-01-27.acacia",
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object },
  };
}

/**
 * A cycle invoice bills its plan's line; a proration invoice (a plan change billed at once)
 * credits the unused time on the old price and charges the rest of the period on the new one,
 * so its total is positive only for an upgrade.
 */
function invoiceLines(e: TimelineEvent, price: string, subscription: string) {
  const invoice = e.invoice as NonNullable<TimelineEvent["invoice"]>;
  const period = { start: invoice.periodStart, end: invoice.periodEnd };
  const pricing = (p: string) => ({
    type: "price_details",
    price_details: { price: p, product: "prod_sim" },
  });
  if (!e.from) {
    return {
      lines: {
        object: "list",
        data: [{ id: `il_${invoice.id}`, object: "line_item", period, pricing: pricing(price) }],
      },
    };
  }
  const cents = (plan: keyof typeof PRICES) => PLANS[plan].priceCents;
  const proration = (suffix: string, p: string, amount: number) => ({
    id: `il_${invoice.id}_${suffix}`,
    object: "line_item",
    amount,
    period,
    parent: {
      type: "invoice_item_details",
      invoice_item_details: { invoice_item: `ii_${suffix}`, proration: true, subscription },
    },
    pricing: pricing(p),
  });
  const total = cents(e.plan) - cents(e.from);
  return {
    total,
    amount_paid: Math.max(0, total),
    lines: {
      object: "list",
      data: [
        proration("old", PRICES[e.from], -cents(e.from)),
        proration("new", price, cents(e.plan)),
      ],
    },
  };
}

async function deliver(evt: unknown): Promise<Record<string, unknown>> {
  const payload = JSON.stringify(evt);
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: env.STRIPE_WEBHOOK_SECRET,
    cryptoProvider,
  });
  const res = await gateway("/webhooks/stripe", {
    method: "POST",
    body: payload,
    headers: { "Stripe-Signature": signature },
  });
  const b = await body(res);
  expectThat(res.status === 200 && b.received === true, `webhook answered ${res.status}`);
  return b;
}

const webhook: Handler<"webhook"> = async (c, a) => {
  const e = c.timeline[a.event] as TimelineEvent;
  const eventId = a.delivery === "newEventId" ? `${e.eventId}_again${c.step}` : e.eventId;
  const evt = stripeEvent(c, e, eventId);
  const expected = M.billingEvent(c.model, asBillingEvent(e, eventId));
  if (a.delivery === "concurrent") {
    // Both may pass the event-id check before either records it; the handlers' own
    // idempotency (ledger refs) must make the second one change nothing.
    await Promise.all([deliver(evt), deliver(evt)]);
    return;
  }
  const first = await deliver(evt);
  expectThat(
    (first.duplicate === true) === (expected === "duplicate"),
    `webhook ${eventId}: ${JSON.stringify(first)}, expected ${expected}`,
  );
  if (a.delivery === "twice") {
    const second = await deliver(evt);
    expectThat(second.duplicate === true, `redelivered ${eventId} not seen as a duplicate`);
  }
};

/** The job of a recharge, rebuilt from its D1 row as the reconciler does. */
export async function jobFromRow(rechargeId: string): Promise<RechargeJob | null> {
  const row = await db.select().from(transactions).where(eq(transactions.id, rechargeId)).get();
  return row ? jobFromTransaction(row) : null;
}

/** Delivers `copies` of the job through the worker's own queue handler; returns the acks. */
export async function deliverJob(job: RechargeJob, copies: number, tag: string) {
  const ids = Array.from({ length: copies }, (_, i) => `${tag}_${i}`);
  const batch = createMessageBatch<RechargeJob>(
    "tollgate-recharge",
    ids.map((id) => ({ id, timestamp: new Date(), attempts: 2, body: job })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  // The pool's declaration leaves this untyped; these are the fields it returns.
  const result = (await getQueueResult(batch, ctx)) as {
    explicitAcks: string[];
    retryMessages: Array<{ msgId: string }>;
  };
  return { ids, acked: result.explicitAcks, retried: result.retryMessages.map((m) => m.msgId) };
}

const redeliver: Handler<"redeliver"> = async (c, a) => {
  if (c.settled.length === 0) return;
  const id = c.settled[a.pick % c.settled.length] as string;
  const job = await jobFromRow(id);
  expectThat(job !== null, `no D1 row for settled recharge ${id}`);
  const result = await deliverJob(job, a.copies, `sim${c.seed}_${c.step}`);
  // A settled recharge: every copy finds the work done and is acknowledged.
  expectThat(
    result.acked.length === a.copies,
    `redelivered ${id}: acked ${result.acked.join(",")}, retried ${result.retried.join(",")}`,
  );
};

const reconcileRun: Handler<"reconcile"> = async (c, a) => {
  const report = await reconcile(env, a.later ? { now: Date.now() + HOUR } : {});
  const mine = new Set(c.settled);
  const touched = [
    ...report.credited,
    ...report.failed,
    ...report.redriven,
    ...report.grantsRepaired,
    ...report.attention.map((x) => x.id),
  ].filter((id) => mine.has(id));
  // Nothing is in flight between steps, so there is nothing for it to repair.
  expectThat(touched.length === 0, `reconciler repaired ${touched.join(", ")} at rest`);
};

/** Aborts the account's Durable Object: its memory is gone, storage and alarms remain. */
export async function restartLedger(accountId: string): Promise<void> {
  try {
    await runInDurableObject(ledgerFor(env, accountId), (_instance, state) => {
      state.abort("simulated restart");
    });
  } catch (err) {
    // abort() rejects the call that made it; anything else is a real failure.
    if (!String(err).includes("simulated restart")) throw err;
  }
}

const restart: Handler<"restart"> = async (c) => restartLedger(c.account.id);

/**
 * Makes `extra` more full keys, then revokes every active key at once, the one in use
 * included: exactly one is refused (money rule 11), and the run carries on with the survivor.
 */
const revokeKeys: Handler<"revokeKeys"> = async (c, a) => {
  const made: string[] = [];
  for (let i = 0; i < a.extra; i++) {
    const res = await gateway("/v1/account/keys", {
      method: "POST",
      key: c.account.api_key,
      body: JSON.stringify({ scope: "full", name: `sim-${c.step}-${i}` }),
    });
    const b = await body(res);
    expectThat(
      res.status === 201,
      `creating a full key answered ${res.status} ${JSON.stringify(b)}`,
    );
    made.push(b.key as string);
  }
  const listed = await body(await gateway("/v1/account/keys", { key: c.account.api_key }));
  const active = (listed.data as Array<{ id: string; revoked_at: string | null }>).filter(
    (k) => k.revoked_at === null,
  );
  const results = await Promise.all(
    active.map((k) =>
      gateway(`/v1/account/keys/${k.id}`, { method: "DELETE", key: c.account.api_key }),
    ),
  );
  const statuses = await Promise.all(
    results.map(async (r) => ({ status: r.status, type: errorType(await body(r)) })),
  );
  const refused = statuses.filter((r) => r.status === 409 && r.type === "conflict");
  expectThat(
    refused.length === 1 && statuses.filter((r) => r.status === 200).length === active.length - 1,
    `revoking ${active.length} keys at once answered ${JSON.stringify(statuses)}`,
  );
  // Carry on with whichever key survived.
  for (const key of [c.account.api_key, ...made]) {
    const res = await gateway("/v1/account", { key });
    await res.arrayBuffer();
    if (res.status === 200) {
      c.account.api_key = key;
      c.count("concurrent key revocations");
      return;
    }
  }
  throw new ModelDivergence("no key survived the concurrent revocations");
};

/**
 * Debits in flight when the object dies. Each one is answered only after the write holding it
 * committed (its own, or the one it shares with the debits decided beside it: group commit,
 * src/ledger/debit-batch.ts), so: every acknowledged debit is in storage (durable), nothing is
 * taken that no debit
 * asked for, and the restarted object rebuilds the same balance from its checkpoint and open
 * minutes (the driver's audit compares memory, storage and replay). Debits that died without
 * a reply may or may not have been written; the model takes what storage says they took,
 * one credit each, monthly first. Acknowledged ones can be refunded later, after the restart.
 */
const crashDebits: Handler<"crashDebits"> = async (c, a) => {
  const before = M.total(c.model);
  const ledger = ledgerFor(env, c.account.id);
  const refs = Array.from({ length: a.count }, (_, i) => `sim_crash_${c.seed}_${c.step}_${i}`);
  const calls = refs.map((ref) =>
    ledger.debit(1, ref).then(
      (r) => ({ ref, r }),
      () => ({ ref, r: null }),
    ),
  );
  // Let a few of them through first (each is a separate event for the object).
  await Promise.race([calls[0], new Promise((resolve) => setTimeout(resolve, 0))]);
  await restartLedger(c.account.id);
  const results = await Promise.all(calls);
  const acked = results.filter((x) => x.r?.ok === true);
  const refused = results.filter((x) => x.r !== null && !x.r.ok).length;
  const after = await readLedger(c.account.id);
  const taken = before - (after.monthly + after.purchased);
  c.count(taken > acked.length ? "crash: written, reply lost" : "crash: only acked written");
  expectThat(
    taken >= acked.length && taken <= a.count - refused,
    `after a crash mid-debit ${taken} credits are gone, with ${acked.length} debits acknowledged and ${refused} refused of ${a.count}`,
  );
  for (let i = 0; i < taken; i++) M.debit(c.model, 1);
  for (const { ref, r } of acked) {
    if (r?.ok) c.model.directDebits.push({ ref, minute: r.minute, ...r.charged, refunded: false });
  }
};

const HANDLERS: { [K in Action["kind"]]: Handler<K> } = {
  classify: classifyBurst,
  upstreamFailure,
  freeRequest,
  directDebit,
  directRefund,
  setBalance,
  adjust,
  autoRecharge,
  topUp,
  attachCard,
  webhook,
  redeliver,
  reconcile: reconcileRun,
  restart,
  revokeKeys,
  crashDebits,
};

export function perform(c: ActionContext, action: Action): Promise<void> {
  return (HANDLERS[action.kind] as Handler<typeof action.kind>)(c, action as never);
}

/**
 * Whether the action would start a purchase, asked of a copy of the model (assuming every
 * request is served), so stress is only put where a recharge will run.
 */
export function startsPurchase(c: ActionContext, action: Action): boolean {
  return M.startsPurchase(c.model, (d) => {
    switch (action.kind) {
      case "classify":
        for (let i = 0; i < action.count; i++) M.debit(d, 1);
        return;
      case "upstreamFailure":
        M.debit(d, 1);
        return;
      case "freeRequest":
        M.debit(d, 0);
        return;
      case "directDebit":
        M.debit(d, action.cost);
        return;
      case "crashDebits":
        for (let i = 0; i < action.count; i++) M.debit(d, 1);
        return;
      case "setBalance":
        M.adjust(
          d,
          { monthly: action.monthly - d.monthly, purchased: action.purchased - d.purchased },
          null,
        );
        return;
      case "adjust":
        M.adjust(d, action, action.idempotencyKey);
        return;
      case "autoRecharge":
        M.updateAutoRecharge(d, action);
        return;
      case "topUp":
        M.topUp(d, action.package, action.idempotencyKey);
        return;
      case "webhook":
        M.billingEvent(d, asBillingEvent(c.timeline[action.event] as TimelineEvent));
        return;
      default:
        return;
    }
  });
}
