import type { Context } from "hono";
import type { AppEnv } from "../env";
import { ApiError, refusal } from "../errors";
import { readBodyLimited } from "../http/body";
import { ledgerFor } from "../ledger/client";
import { routeCost } from "../pricing";
import { rateLimitHeaders } from "./rate-limit";

/** Headers that describe one hop, or carry the client's credentials, and are never forwarded. */
const DROPPED_REQUEST_HEADERS = [
  "authorization",
  "cookie",
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
];

/**
 * The proxied request, in the contract's order: (auth already done) rate limit, debit through
 * the account's Durable Object, forward, and refund if the upstream failed.
 */
export async function proxyRequest(c: Context<AppEnv>): Promise<Response> {
  const env = c.env;
  const accountId = c.get("accountId");

  const method = c.req.method;
  const url = new URL(c.req.url);
  // Read (and size-check) the body before the debit, so a 413 costs nothing.
  const body =
    method === "GET" || method === "HEAD"
      ? undefined
      : await readBodyLimited(c.req.raw, Number(env.MAX_BODY_BYTES) || 1_048_576);

  const cost = routeCost(method, url.pathname);
  const ledger = ledgerFor(env, accountId);
  const debitRef = `dbt_${crypto.randomUUID().replaceAll("-", "")}`;
  // One Durable Object call: the rate limit (step 2) and the debit (step 3) in order.
  const debit = await ledger.debit(cost, debitRef, c.get("apiKeyId"));
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

  const headers = new Headers(c.req.raw.headers);
  for (const name of DROPPED_REQUEST_HEADERS) headers.delete(name);
  headers.set("X-Request-Id", c.get("requestId"));
  if (env.UPSTREAM_TOKEN) headers.set("Authorization", `Bearer ${env.UPSTREAM_TOKEN}`);

  const target = new URL(url.pathname + url.search, env.UPSTREAM_URL);
  const timeoutMs = Number(env.UPSTREAM_TIMEOUT_MS) || 30_000;
  let upstream: Response;
  try {
    const init: RequestInit = {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    };
    upstream = env.UPSTREAM ? await env.UPSTREAM.fetch(target, init) : await fetch(target, init);
  } catch (err) {
    await ledger.refund(debitRef);
    const timedOut =
      err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    throw timedOut
      ? new ApiError("upstream_timeout", `The classifier did not answer within ${timeoutMs} ms.`)
      : new ApiError("upstream_error", "The classifier could not be reached.");
  }
  if (upstream.status >= 500) {
    await upstream.body?.cancel();
    await ledger.refund(debitRef);
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
