import Stripe from "stripe";
import { type Brand, type BrandVars, brandOf } from "../platform/brand";
import type { Bindings } from "../platform/env";
import type { PackageId } from "../pricing";
import { RetryableChargeError } from "./errors";
import type { RechargeJob } from "./messages";

/** What a purchase's outcome says about its Stripe invoice (null where there is none). */
export interface InvoiceRef {
  invoiceId: string | null;
  /** Stripe's hosted invoice page: receipt and PDF once paid, the payment form while open. */
  invoiceUrl: string | null;
  paymentIntentId: string | null;
}

export type ChargeOutcome =
  | ({ status: "succeeded" } & InvoiceRef)
  | ({
      status: "requires_action";
      code: string;
      message: string;
      /** Where the customer completes the payment (the hosted invoice page). */
      actionUrl: string | null;
    } & InvoiceRef)
  | ({ status: "failed"; code: string; message: string } & InvoiceRef);

/** Stripe Price ids of the packages, when configured (test and live differ). */
export type PackagePrices = Pick<
  Bindings,
  "STRIPE_PRICE_CREDITS_1000" | "STRIPE_PRICE_CREDITS_3000" | "STRIPE_PRICE_CREDITS_9000"
>;

export function packagePrice(prices: PackagePrices, pkg: PackageId): string | null {
  const byPackage: Record<PackageId, string | undefined> = {
    credits_1000: prices.STRIPE_PRICE_CREDITS_1000,
    credits_3000: prices.STRIPE_PRICE_CREDITS_3000,
    credits_9000: prices.STRIPE_PRICE_CREDITS_9000,
  };
  return byPackage[pkg] || null;
}

/**
 * The idempotency key of each Stripe step of a recharge. Derived from the recharge id only, so
 * every retry, redelivery and reconciliation repeats exactly the first attempt's requests.
 */
export const purchaseKeys = (rechargeId: string) => ({
  invoice: `${rechargeId}:invoice`,
  item: `${rechargeId}:item`,
  finalize: `${rechargeId}:finalize`,
  pay: `${rechargeId}:pay`,
  void: `${rechargeId}:void`,
});

/** Card error codes that mean "the customer must authenticate this payment". */
const AUTHENTICATION_CODES = new Set([
  // What Stripe Billing answers for an invoice whose PaymentIntent needs 3-D Secure.
  "invoice_payment_intent_requires_action",
  // What a direct off-session confirmation answers (and what `decline_code` may say).
  "authentication_required",
]);

const NEEDS_ACTION_MESSAGE =
  "Your bank asks you to confirm this payment. Complete it on the invoice page.";

/**
 * Buys one recharge as a one-off Stripe invoice: invoice → invoice item → finalize → pay
 * off-session with the recharge's frozen card. Every step's idempotency key comes from the
 * recharge id, and the invoice carries the recharge id in its metadata: before creating, the
 * invoice is looked up by it, so neither a crash between two steps nor an idempotency key that
 * expired (Stripe keeps them 24 hours) can ever make a second invoice. One invoice is paid at
 * most once, so one recharge is charged at most once (money rule 5).
 *
 * The invoice's PaymentIntent is created by Stripe at finalization; neither invoice creation
 * nor `pay` accepts metadata for it (and Stripe does not copy the invoice's), so the recharge
 * id lives on the invoice, and the PaymentIntent is reached through `invoice.payments`.
 */
export async function chargeRecharge(
  stripe: Stripe,
  job: RechargeJob,
  payer: { customerId: string; paymentMethodId: string },
  config: PackagePrices & BrandVars = {},
): Promise<ChargeOutcome> {
  const keys = purchaseKeys(job.recharge_id);
  try {
    let invoice = await findInvoice(stripe, job.recharge_id);
    if (!invoice) invoice = await createInvoice(stripe, job, payer, brandOf(config));
    if (invoice.status === "draft") {
      if (!invoice.lines?.data?.length) {
        const price = packagePrice(config, job.package);
        await stripe.invoiceItems.create(
          {
            customer: payer.customerId,
            invoice: invoice.id,
            ...(price
              ? { pricing: { price } }
              : {
                  amount: job.amount_cents,
                  currency: job.currency,
                  description: describe(job, brandOf(config)),
                }),
            metadata: metadataOf(job),
          },
          { idempotencyKey: keys.item },
        );
      }
      invoice = await stripe.invoices.finalizeInvoice(
        invoiceId(invoice),
        {},
        { idempotencyKey: keys.finalize },
      );
    }
    return await closeIfFailed(
      stripe,
      job.recharge_id,
      invoice,
      await payInvoice(stripe, job, invoice, payer.paymentMethodId),
    );
  } catch (err) {
    if (err instanceof RetryableChargeError) throw err;
    if (
      err instanceof Stripe.errors.StripeIdempotencyError ||
      err instanceof Stripe.errors.StripeInvalidRequestError
    ) {
      // A key reused with other parameters, or a step refused for the invoice's state (already
      // finalized, already paid): whatever the first attempt did is in Stripe under this id.
      const found = await findInvoice(stripe, job.recharge_id).catch(() => null);
      const settled = found ? outcomeOfInvoice(found) : null;
      if (settled) return settled;
      if (err instanceof Stripe.errors.StripeIdempotencyError) {
        throw new RetryableChargeError(
          `recharge ${job.recharge_id}: ${err.message} (its invoice has not settled)`,
          { cause: err },
        );
      }
      // The request itself can never succeed (e.g. the payment method was removed).
      const failed: ChargeOutcome = {
        status: "failed",
        code: err.code ?? "invalid_payment_request",
        message: err.message,
        ...(found ? refOf(found) : { invoiceId: null, invoiceUrl: null, paymentIntentId: null }),
      };
      if (!found) return failed;
      try {
        return await closeIfFailed(stripe, job.recharge_id, found, failed);
      } catch (voidErr) {
        if (voidErr instanceof RetryableChargeError) throw voidErr;
        throw new RetryableChargeError(
          voidErr instanceof Error ? voidErr.message : String(voidErr),
          { cause: voidErr },
        );
      }
    }
    // Stripe 5xx, 429, the network: the queue retries with the same keys.
    throw new RetryableChargeError(err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
}

async function createInvoice(
  stripe: Stripe,
  job: RechargeJob,
  payer: { customerId: string; paymentMethodId: string },
  brand: Brand,
): Promise<Stripe.Invoice> {
  try {
    return await stripe.invoices.create(
      {
        customer: payer.customerId,
        collection_method: "charge_automatically",
        // We pay it ourselves, once; Stripe must not finalize or retry it on its own schedule.
        auto_advance: false,
        // Only this purchase's item, never pending items of the subscription.
        pending_invoice_items_behavior: "exclude",
        default_payment_method: payer.paymentMethodId,
        description: describe(job, brand),
        metadata: metadataOf(job),
      },
      { idempotencyKey: purchaseKeys(job.recharge_id).invoice },
    );
  } catch (err) {
    if (err instanceof Stripe.errors.StripeIdempotencyError) {
      // The first attempt made the invoice (its answer was lost, and search had not indexed it
      // yet): carry on with that one.
      const first = await findInvoice(stripe, job.recharge_id);
      if (first) return first;
    }
    throw err;
  }
}

/**
 * A final failure must not leave a payable invoice behind: an open invoice shows in the
 * customer's portal as owed and can still be paid on its hosted page, which would credit a
 * purchase recorded as "not charged" and take the month past its spending limit (money rules
 * 6, 10). So the failure stands only once the invoice is void; until then the purchase stays
 * pending (a void that did not go through throws, the queue retries it, and past its retries
 * the reconciler's pending pass carries it on: the `:pay` key replays the same decline, then
 * the void is tried again). Paid in between (the customer paid on the page first): succeeded.
 * `requires_action` is not final and is left open for the customer (the reconciler voids it
 * after REQUIRES_ACTION_VOID_AFTER_MS).
 */
async function closeIfFailed(
  stripe: Stripe,
  rechargeId: string,
  invoice: Stripe.Invoice,
  outcome: ChargeOutcome,
): Promise<ChargeOutcome> {
  if (outcome.status !== "failed" || invoice.status !== "open") return outcome;
  // Why it failed goes on the invoice before the void: whoever sees the void invoice first (a
  // redelivery racing this one, the reconciler, the `invoice.voided` webhook) records the
  // decline, not "voided" (`outcomeOfInvoice`).
  await stripe.invoices.update(invoiceId(invoice), {
    metadata: {
      [FAILURE_CODE]: outcome.code,
      [FAILURE_MESSAGE]: outcome.message.slice(0, METADATA_VALUE_MAX),
    },
  });
  const after = await voidPurchaseInvoice(stripe, rechargeId, invoice);
  if (after.status === "paid") return outcomeOfInvoice(after) as ChargeOutcome;
  if (after.status === "void" || after.status === "uncollectible") return outcome;
  throw new RetryableChargeError(`invoice ${after.id} is ${after.status} after voiding it`);
}

/**
 * Voids a purchase's open invoice under its `<id>:void` key, so a repeat replays. Stripe
 * refusing it (already paid, already void) is answered with the invoice as it stands now;
 * anything else (the network, 5xx) is thrown for the caller to retry.
 */
export async function voidPurchaseInvoice(
  stripe: Stripe,
  rechargeId: string,
  invoice: Stripe.Invoice,
): Promise<Stripe.Invoice> {
  try {
    return await stripe.invoices.voidInvoice(
      invoiceId(invoice),
      {},
      { idempotencyKey: purchaseKeys(rechargeId).void },
    );
  } catch (err) {
    if (!(err instanceof Stripe.errors.StripeInvalidRequestError)) throw err;
    // Paid (or voided) between the lookup and the void: what stands now decides.
    return (await findInvoice(stripe, rechargeId)) ?? invoice;
  }
}

/** Pays an open invoice off-session with the card it was created with. */
async function payInvoice(
  stripe: Stripe,
  job: RechargeJob,
  invoice: Stripe.Invoice,
  fallbackPaymentMethod: string,
): Promise<ChargeOutcome> {
  const settled = outcomeOfInvoice(invoice);
  if (settled) return settled; // paid at finalization (the customer's balance covered it), or void
  if (invoice.status !== "open") {
    throw new RetryableChargeError(`invoice ${invoice.id} is ${invoice.status}`);
  }
  // The invoice's own default card is the one the recharge froze when it was created: a retry
  // after the customer changed cards still pays (and replays) exactly as the first attempt.
  const paymentMethod = idOf(invoice.default_payment_method) ?? fallbackPaymentMethod;
  try {
    const paid = await stripe.invoices.pay(
      invoiceId(invoice),
      { payment_method: paymentMethod, off_session: true, expand: ["payments"] },
      { idempotencyKey: purchaseKeys(job.recharge_id).pay },
    );
    const outcome = outcomeOfInvoice(paid);
    if (outcome) return outcome;
    throw new RetryableChargeError(`invoice ${paid.id} is ${paid.status} after payment`);
  } catch (err) {
    if (!(err instanceof Stripe.errors.StripeCardError)) throw err;
    return declinedOutcome(err, invoice);
  }
}

/**
 * What a card error paying a recharge's invoice means: the customer must authenticate, or the
 * payment failed with the most specific code Stripe gave (`insufficient_funds`, `expired_card`
 * …; a generic decline is `card_declined`).
 */
export function declinedOutcome(
  err: Stripe.errors.StripeCardError,
  invoice: Stripe.Invoice,
): ChargeOutcome {
  const ref = refOf(invoice, err.payment_intent?.id ?? null);
  if (
    AUTHENTICATION_CODES.has(err.code ?? "") ||
    AUTHENTICATION_CODES.has(err.decline_code ?? "") ||
    err.payment_intent?.status === "requires_action"
  ) {
    return {
      status: "requires_action",
      code: "authentication_required",
      message: NEEDS_ACTION_MESSAGE,
      actionUrl: invoice.hosted_invoice_url ?? null,
      ...ref,
    };
  }
  const decline =
    err.decline_code && err.decline_code !== "generic_decline" ? err.decline_code : undefined;
  return {
    status: "failed",
    code: decline ?? err.code ?? "card_declined",
    message: err.message,
    ...ref,
  };
}

/** The invoice's and its item's words on the customer's invoice, naming the business. */
function describe(job: RechargeJob, brand: Brand): string {
  const what = job.kind === "auto_recharge" ? "auto-recharge" : "top-up";
  return `${brand.company} ${what}: ${job.credits.toLocaleString("en-US")} credits`;
}

function metadataOf(job: RechargeJob): Record<string, string> {
  return {
    recharge_id: job.recharge_id,
    account_id: job.account_id,
    package: job.package,
    kind: job.kind,
  };
}

function idOf(value: string | { id?: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === "string" ? value : (value.id ?? null);
}

function invoiceId(invoice: Stripe.Invoice): string {
  if (!invoice.id) throw new RetryableChargeError("Stripe returned an invoice without an id");
  return invoice.id;
}

/** The PaymentIntent of the invoice's default payment, when `payments` is there (expanded). */
export function paymentIntentOfInvoice(invoice: Stripe.Invoice): string | null {
  const payments = invoice.payments?.data ?? [];
  const payment = payments.find((p) => p.is_default) ?? payments[0];
  return idOf(payment?.payment?.payment_intent);
}

function refOf(invoice: Stripe.Invoice, paymentIntentId: string | null = null): InvoiceRef {
  return {
    invoiceId: invoice.id ?? null,
    invoiceUrl: invoice.hosted_invoice_url ?? null,
    paymentIntentId: paymentIntentId ?? paymentIntentOfInvoice(invoice),
  };
}

/** Purchase invoices are looked up by the recharge id in their metadata. */
function searchQuery(rechargeId: string): string {
  if (!/^[A-Za-z0-9_:-]+$/.test(rechargeId)) {
    throw new RetryableChargeError(`recharge id ${JSON.stringify(rechargeId)} is not searchable`);
  }
  return `metadata['recharge_id']:'${rechargeId}'`;
}

const STATUS_RANK: Record<string, number> = {
  paid: 0,
  open: 1,
  draft: 2,
  uncollectible: 3,
  void: 4,
};

/**
 * The invoice a recharge created, found by the recharge id in its metadata (there is at most
 * one; should there ever be more, the paid one decides). Note that Stripe's search index can
 * lag a write by up to a minute: within that window the idempotency keys are what prevents a
 * second invoice, after 24 hours (when the keys expire) this lookup is.
 */
export async function findInvoice(
  stripe: Stripe,
  rechargeId: string,
): Promise<Stripe.Invoice | null> {
  const found = await stripe.invoices.search({ query: searchQuery(rechargeId), limit: 10 });
  const mine = found.data.filter((i) => i.metadata?.recharge_id === rechargeId);
  mine.sort((a, b) => (STATUS_RANK[a.status ?? ""] ?? 9) - (STATUS_RANK[b.status ?? ""] ?? 9));
  return mine[0] ?? null;
}

/** The invoice metadata that says why a purchase failed (`closeIfFailed`). */
const FAILURE_CODE = "failure_code";
const FAILURE_MESSAGE = "failure_message";
/** Stripe's limit on one metadata value. */
const METADATA_VALUE_MAX = 500;

/**
 * The outcome an invoice found in Stripe already stands for: paid → succeeded, void or
 * uncollectible → failed, for the reason noted on it when we voided it after a decline, else
 * for being void or uncollectible; null while it is a draft or open (not settled yet).
 */
export function outcomeOfInvoice(invoice: Stripe.Invoice): ChargeOutcome | null {
  if (invoice.status === "paid") return { status: "succeeded", ...refOf(invoice) };
  if (invoice.status === "void" || invoice.status === "uncollectible") {
    const noted = invoice.metadata?.[FAILURE_CODE];
    if (noted)
      return {
        status: "failed",
        code: noted,
        message: invoice.metadata?.[FAILURE_MESSAGE] || "The payment failed.",
        ...refOf(invoice),
      };
    return {
      status: "failed",
      code: invoice.status === "void" ? "invoice_voided" : "invoice_uncollectible",
      message:
        invoice.status === "void"
          ? "The payment was not completed and its invoice was voided."
          : "The invoice was marked uncollectible.",
      ...refOf(invoice),
    };
  }
  return null;
}
