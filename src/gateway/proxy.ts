import type { Db } from "../db/client";
import { forwardableBody } from "../platform/body";
import { randomHex32 } from "../platform/crypto";
import type { Bindings } from "../platform/env";
import { ApiError, durableObjectFailure } from "../platform/errors";
import { refusal } from "../platform/refusals";
import { normalizePath, routeCost } from "../pricing";
import { debitTarget } from "./debit-target";
import {
  ALLOW_HEADER,
  FORWARDED_METHODS,
  forwardHeaders,
  pathAndQuery,
  upstreamUrl,
} from "./forward-headers";
import { rateLimitHeaders } from "./rate-limit";
import { refundLater, reverseUnansweredDebit } from "./refunds";

const FORWARDED = new Set<string>(FORWARDED_METHODS);

/** A proxied request, authenticated: what the proxy needs, whoever routed it. */
export interface ProxyCall {
  env: Bindings;
  request: Request;
  /** The path as routed (percent-decoded), for messages. */
  path: string;
  requestId: string;
  accountId: string;
  apiKeyId: string | undefined;
  /** The account's escrow shards (docs/ledger-shards.md). */
  shards: number | undefined;
  /** The request's `waitUntil`. */
  keepAlive: (p: Promise<unknown>) => void;
  /** D1, only on the paths that record a refund or a reversal for later. */
  db: () => Db;
}

/**
 * The proxied request, in the contract's order: (auth already done) rate limit, debit through
 * the account's Durable Object, forward, and refund if the upstream failed. Its errors are
 * thrown (typed) for the caller's one error mapping (http/error-response.ts); a response
 * returned comes from the upstream (or is the free OPTIONS answer).
 */
export async function proxyRequest(call: ProxyCall): Promise<Response> {
  const { env, request, accountId, keepAlive } = call;

  const method = request.method;
  // Answered here, free: OPTIONS says what is allowed, any other unknown method is refused.
  if (method === "OPTIONS") {
    return new Response(null, { status: 204, headers: { Allow: ALLOW_HEADER } });
  }
  if (!FORWARDED.has(method)) {
    throw new ApiError("method_not_allowed", `${method} is not allowed on ${call.path}.`, {
      headers: { Allow: ALLOW_HEADER },
    });
  }
  const url = pathAndQuery(request.url);
  const path = normalizePath(url.pathname);
  // Size-checked before the debit, so a 413 costs nothing.
  const body =
    method === "GET" || method === "HEAD"
      ? undefined
      : await forwardableBody(request, Number(env.MAX_BODY_BYTES) || 1_048_576);

  const cost = routeCost(method, path);
  // The ledger itself, or one of the account's shards (docs/ledger-shards.md).
  const target = debitTarget(env, accountId, call.shards, keepAlive);
  const debitRef = `dbt_${randomHex32()}`;
  const sentAt = Date.now();
  // One Durable Object call: the rate limit (step 2) and the debit (step 3) in order.
  const debit = await target.debit(cost, debitRef, call.apiKeyId).catch(async (err) => {
    // Nothing is forwarded (503, mapped in http/error-response.ts). Overloaded: refused before
    // it ran, so nothing to undo, and the object is not called again. Otherwise it may have
    // committed: reversed by its ref (a no-op if it never did), so it is never kept silently
    // (rule 8).
    if (durableObjectFailure(err) !== "overloaded") {
      const error = String(err);
      const debit = { accountId, debitRef, sentAt, error };
      await reverseUnansweredDebit(env, call.db(), debit, target.reverse).catch(
        // Ledger, queue and D1 all unreachable: the log is what is left; the answer stays 503.
        (lost) => console.error("debit reversal not recorded", accountId, debitRef, String(lost)),
      );
    }
    throw err;
  });
  const rateHeaders = debit.rate ? rateLimitHeaders(debit.rate) : {};
  if (!debit.ok) {
    if (debit.reason === "rate_limited") {
      throw refusal("rate_limited", {
        headers: { ...rateHeaders, "Retry-After": String(debit.rate.resetSeconds) },
        extra: { retry_after_seconds: debit.rate.resetSeconds },
      });
    }
    if (debit.reason === "insufficient_credits") {
      throw refusal("insufficient_credits", {
        extra: { balance: debit.balance, cost },
        headers: rateHeaders,
      });
    }
    throw refusal(debit.reason);
  }

  const headers = forwardHeaders(request.headers, {
    clientIp: request.headers.get("CF-Connecting-IP"),
    requestId: call.requestId,
    upstreamToken: env.UPSTREAM_TOKEN,
  });

  const forwardTo = upstreamUrl(env.UPSTREAM_URL, path, url.search);
  const timeoutMs = Number(env.UPSTREAM_TIMEOUT_MS) || 30_000;
  /** The request was not served: its debit goes back, now or, failing that, later (rule 8). */
  // What the debit took, and the minute it was counted in: the refund gives back exactly that.
  // And the key: the refund leaves that key's minute row (per-key usage stays exact).
  const charge = { minute: debit.minute, ...debit.charged, key_id: call.apiKeyId ?? "" };
  const refund = async () => {
    try {
      const refunded = await target.refund(debitRef, charge);
      // The object that answered the debit does not know it: a bug, never a client's doing.
      // Logged, so an operator can find it (the audit shows the credit as spent).
      if (!refunded.ok)
        console.error(
          "refund refused",
          accountId,
          debitRef,
          refunded.reason,
          JSON.stringify(charge),
        );
    } catch (err) {
      await refundLater(env, call.db(), { accountId, debitRef, charge, error: String(err) });
    }
  };
  let upstream: Response;
  try {
    const init: RequestInit = {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    };
    upstream = env.UPSTREAM
      ? await env.UPSTREAM.fetch(forwardTo, init)
      : await fetch(forwardTo, init);
  } catch (err) {
    await refund();
    const timedOut =
      err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    throw timedOut
      ? new ApiError("upstream_timeout", `The classifier did not answer within ${timeoutMs} ms.`)
      : new ApiError("upstream_error", "The classifier could not be reached.");
  }
  if (upstream.status >= 500) {
    await upstream.body?.cancel();
    await refund();
    throw new ApiError("upstream_error", `The classifier failed with status ${upstream.status}.`, {
      extra: { upstream_status: upstream.status },
    });
  }

  const response = new Response(upstream.body, upstream);
  response.headers.set("X-Credits-Charged", String(cost));
  response.headers.set("X-Credits-Remaining", String(debit.balance.total));
  for (const [name, value] of Object.entries(rateHeaders)) response.headers.set(name, value);
  return response;
}
