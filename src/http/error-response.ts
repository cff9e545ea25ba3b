/**
 * The one place an error becomes the contract's envelope: an `ApiError` as it says, Hono's
 * own exceptions by their status, the payment provider's and the Durable Objects' failures as
 * ours, anything else as a logged 500 that shows the client nothing but the request id. Used
 * by the app's `onError`; `finishResponse` by the request id middleware.
 */
import { HTTPException } from "hono/http-exception";
import Stripe from "stripe";
import { ApiError, type ErrorType, serviceUnavailable } from "../platform/errors";

/** What an HTTPException's status means in the contract; its status is kept either way. */
const HTTP_EXCEPTION_TYPES: Partial<Record<number, ErrorType>> = {
  400: "invalid_request",
  401: "invalid_api_key",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  429: "rate_limited",
  503: "service_unavailable",
};

/** The envelope for `err`, as `application/json`; `finishResponse` adds the rest. */
export function errorResponse(err: unknown, requestId: string | undefined): Response {
  const mapped = asApiError(err, requestId);
  return jsonResponse(mapped.toBody(), mapped.status, mapped.headers);
}

function asApiError(err: unknown, requestId: string | undefined): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof HTTPException) {
    const status = err.status;
    const type =
      HTTP_EXCEPTION_TYPES[status] ?? (status >= 500 ? "internal_error" : "invalid_request");
    return new ApiError(type, err.message || "The request could not be processed.", { status });
  }
  if (err instanceof Stripe.errors.StripeError) {
    // The payment provider failed or refused a call a route made: never the client's fault
    // unless a route mapped it first (see stripe/errors.ts).
    console.error("payment provider error", requestId, err.type, err.code ?? "");
    return new ApiError(
      "payment_provider_error",
      "The payment provider could not complete the request.",
      { extra: { provider_code: err.code ?? err.type } },
    );
  }
  // A Durable Object overloaded or unreachable: the client may retry, nothing is broken.
  const unavailable = serviceUnavailable(err);
  if (unavailable) {
    console.warn("durable object unavailable", requestId, String(err));
    return unavailable;
  }
  // A bug: log it with the request id, never show its message to the client.
  console.error(
    "unhandled error",
    requestId,
    err instanceof Error ? (err.stack ?? err.message) : String(err),
  );
  return new ApiError(
    "internal_error",
    "Something went wrong on our side. Quote the request id to support.",
  );
}

/** A JSON response as Hono's `c.json` makes it. */
export function jsonResponse(
  body: unknown,
  status: number,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...headers, "Content-Type": "application/json" },
  });
}

/**
 * What every response leaves with: the request id; and the gateway's own JSON (never a
 * proxied response, whose headers are the upstream's) an explicit charset, `no-store`
 * (balances and freshly created keys must not sit in a cache that ignores Authorization) and
 * `nosniff`.
 */
export function finishResponse(res: Response, requestId: string, proxied: boolean): void {
  res.headers.set("X-Request-Id", requestId);
  if (!proxied && res.headers.get("Content-Type")?.startsWith("application/json")) {
    res.headers.set("Content-Type", "application/json; charset=utf-8");
    res.headers.set("Cache-Control", "no-store");
    res.headers.set("X-Content-Type-Options", "nosniff");
  }
}
