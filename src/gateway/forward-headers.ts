/**
 * What the gateway sends upstream in place of the client's headers. Pure, so the rules are
 * unit tested on their own.
 */

/** Methods the proxy forwards; any other is answered by the gateway and costs nothing. */
export const FORWARDED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;
export const ALLOW_HEADER = [...FORWARDED_METHODS, "OPTIONS"].join(", ");

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), the client's credentials, and headers that would let a
 * client speak for the gateway: who the client is (the gateway says that itself) and which
 * method the upstream should pretend it received.
 */
const DROPPED = new Set([
  "authorization",
  "cookie",
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "forwarded",
  "x-real-ip",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "cf-connecting-ip",
]);

function dropped(name: string): boolean {
  return DROPPED.has(name) || name.startsWith("x-forwarded-");
}

/**
 * The upstream request's headers: the client's, less every header above and every header the
 * client's `Connection` header names, plus the gateway's own request id, its X-Forwarded-For
 * (the client's address as the edge saw it) and its own credentials for the upstream.
 */
export function forwardHeaders(
  incoming: Headers,
  gateway: { clientIp: string | null; requestId: string; upstreamToken?: string },
): Headers {
  const named = new Set(
    (incoming.get("Connection") ?? "")
      .split(",")
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
  // Copied whole by the runtime, then the dropped names deleted: cheaper than appending the
  // kept ones one by one from JS (bench:ab on the hot account: about 4% of a request's CPU).
  const out = new Headers(incoming);
  for (const name of incoming.keys()) if (dropped(name) || named.has(name)) out.delete(name);
  out.set("X-Request-Id", gateway.requestId);
  if (gateway.clientIp) out.set("X-Forwarded-For", gateway.clientIp);
  if (gateway.upstreamToken) out.set("Authorization", `Bearer ${gateway.upstreamToken}`);
  return out;
}

/**
 * A request URL's path and query, cut from the URL as the runtime serialized it (already
 * parsed and normalized, so cutting it equals parsing it again: test/unit/forward-headers.test.ts;
 * two URL parses a request were about 2% of the hot account's CPU).
 */
export function pathAndQuery(url: string): { pathname: string; search: string } {
  const scheme = url.indexOf("://");
  let start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  if (start < 0) start = url.length;
  let end = url.indexOf("#", start);
  if (end < 0) end = url.length;
  const query = url.indexOf("?", start);
  const pathEnd = query >= 0 && query < end ? query : end;
  const pathname = url.slice(start, pathEnd) || "/";
  const search = pathEnd < end && end - pathEnd > 1 ? url.slice(pathEnd, end) : "";
  return { pathname, search };
}

const origins = new Map<string, string>();

/**
 * Where a proxied request goes: the upstream's origin, then the request's own path and query
 * (an absolute path replaces any path in UPSTREAM_URL, as URL resolution does). The origin is
 * parsed once per isolate.
 */
export function upstreamUrl(base: string, path: string, search: string): string {
  let origin = origins.get(base);
  if (origin === undefined) {
    origin = new URL(base).origin;
    origins.set(base, origin);
  }
  return origin + path + search;
}
