/**
 * Why a recharge attempt stopped short, and whether trying again can help. The consumer
 * retries what can succeed later (Stripe 5xx, the network, a Durable Object restart) and sends
 * what cannot straight to an operator, instead of burning its retries on it.
 */
export class RechargeError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RechargeError";
  }
}

/** A failure worth trying again later with the same idempotency key (Stripe 5xx, network, 429). */
export class RetryableChargeError extends RechargeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
    this.name = "RetryableChargeError";
  }
}

/** A state no retry can change (the account is gone, the ledger refuses the grant): a bug or data loss. */
export class PermanentRechargeError extends RechargeError {
  constructor(message: string) {
    super(message, false);
    this.name = "PermanentRechargeError";
  }
}

/** Anything not known to be permanent is retried: an unknown error is more often transient. */
export function shouldRetry(err: unknown): boolean {
  return !(err instanceof RechargeError) || err.retry;
}
