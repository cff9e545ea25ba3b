import type { Context } from "hono";
import type { AppEnv } from "../http/context";
import { forwardableBody } from "../platform/body";
import { randomHex32 } from "../platform/crypto";
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

/**
 * The proxied request, in the contract's order: (auth already done) rate limit, debit through
 * the account's Durable Object, forward, and refund if the upstream failed.
 */
export async function proxyRequest(c: Context<AppEnv>): Promise<Response> {
  const env = c.env;
  const accountId = c.get("accountId");

  const method = c.req.method;
  // Answered here, free: OPTIONS says what is allowed, any other unknown method is refused.
  if (method === "OPTIONS") {
    return c.body(null, 204, { Allow: ALLOW_HEADER });
  }
  if (!FORWARDED.has(method)) {
    throw new ApiError("method_not_allowed", `${method} is not allowed on ${c.req.path}.`, {
      headers: { Allow: ALLOW_HEADER },
    });
  }
  const url = pathAndQuery(c.req.url);
  const path = normalizePath(url.pathname);
  // Size-checked before the debit, so a 413 costs nothing.
  const body =
    method === "GET" || method === "HEAD"
      ? undefined
      : await forwardableBody(c.req.raw, Number(env.MAX_BODY_BYTES) || 1_048_576);

  const cost = routeCost(method, path);
  // The ledger itself, or one of the account's shards (docs/ledger-shards.md).
  const keepAlive = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const target = debitTarget(env, accountId, c.get("shards"), keepAlive);
  const debitRef = `dbt_${randomHex32()}`;
  const sentAt = Date.now();
  // One Durable Object call: the rate limit (step 2) and the debit (step 3) in order.
  const debit = await target.debit(cost, debitRef, c.get("apiKeyId")).catch(async (err) => {
    // Nothing is forwarded (503, mapped in app.ts). Overloaded: refused before it ran, so
    // nothing to undo, and the object is not called again. Otherwise it may have committed:
    // reversed by its ref (a no-op if it never did), so it is never kept silently (rule 8).
    if (durableObjectFailure(err) !== "overloaded") {
      const error = String(err);
      const debit = { accountId, debitRef, sentAt, error };
      await reverseUnansweredDebit(env, c.get("db"), debit, target.reverse).catch(
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

  const headers = forwardHeaders(c.req.raw.headers, {
    clientIp: c.req.header("CF-Connecting-IP") ?? null,
    requestId: c.get("requestId"),
    upstreamToken: env.UPSTREAM_TOKEN,
  });

  const forwardTo = upstreamUrl(env.UPSTREAM_URL, path, url.search);
  const timeoutMs = Number(env.UPSTREAM_TIMEOUT_MS) || 30_000;
  /** The request was not served: its debit goes back, now or, failing that, later (rule 8). */
  // What the debit took, and the minute it was counted in: the refund gives back exactly that.
  // And the key: the refund leaves that key's minute row (per-key usage stays exact).
  const charge = { minute: debit.minute, ...debit.charged, key_id: c.get("apiKeyId") ?? "" };
  const refund = async () => {
    try {
      await target.refund(debitRef, charge);
    } catch (err) {
      await refundLater(env, c.get("db"), { accountId, debitRef, charge, error: String(err) });
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

  c.set("proxied", true);
  const response = new Response(upstream.body, upstream);
  response.headers.set("X-Credits-Charged", String(cost));
  response.headers.set("X-Credits-Remaining", String(debit.balance.total));
  for (const [name, value] of Object.entries(rateHeaders)) response.headers.set(name, value);
  return response;
}
