/**
 * What the proxy sends upstream (src/gateway/forward-headers.ts): its URL, cut as strings (for
 * every URL the runtime can hand the gateway, the same path, query and upstream URL as parsing
 * with `URL`), and its headers.
 */
import { describe, expect, it } from "vitest";
import { forwardHeaders, pathAndQuery, upstreamUrl } from "../../src/gateway/forward-headers";
import { normalizePath } from "../../src/pricing";

const REQUESTS = [
  "http://localhost:8787/v1/classify",
  "http://localhost:8787/v1/classify?lang=en",
  "http://localhost:8787/v1/classify?",
  "http://localhost:8787/v1/classify?a=1&b=%20x#frag",
  "http://localhost:8787/v1/classify#only-fragment",
  "https://api.example.com/v1/classify///?q=/path?with?marks",
  "https://api.example.com/v1/a%2Fb/c%20d",
  "https://user:pw@api.example.com:8443/v1/x?y=1",
  "http://localhost:8787",
  "http://localhost:8787/",
  "http://[::1]:8787/v1/classify?x",
];

const BASES = [
  "http://127.0.0.1:9999",
  "http://127.0.0.1:9999/",
  "https://classifier.internal/base/path?ignored=1",
];

describe("the proxied request's URL, cut as strings", () => {
  it.each(REQUESTS)("%s: the path and query URL parsing gives", (raw) => {
    const parsed = new URL(raw);
    expect(pathAndQuery(parsed.href)).toEqual({ pathname: parsed.pathname, search: parsed.search });
  });

  it.each([
    ["/v1/classify", "/v1/classify"],
    ["/v1/classify/", "/v1/classify"],
    ["/v1/classify///", "/v1/classify"],
    ["/v1//classify", "/v1//classify"],
    ["/", "/"],
    ["///", "/"],
    ["", "/"],
  ])("%s is priced and forwarded as %s", (path, normalized) => {
    expect(normalizePath(path)).toBe(normalized);
  });

  it("the upstream URL is what resolving the path and query against UPSTREAM_URL gives", () => {
    for (const base of BASES)
      for (const raw of REQUESTS) {
        const { pathname, search } = pathAndQuery(new URL(raw).href);
        const path = normalizePath(pathname);
        expect(upstreamUrl(base, path, search)).toBe(new URL(path + search, base).href);
      }
  });
});

describe("the upstream request's headers", () => {
  const gateway = { clientIp: "203.0.113.7", requestId: "req_ours", upstreamToken: "up-secret" };

  it("keep the client's own, drop hop-by-hop, credentials and spoofable ones, add the gateway's", () => {
    const incoming = new Headers([
      ["Content-Type", "application/json"],
      ["Accept", "application/json"],
      ["X-Kept", "a"],
      ["x-kept", "b"],
      ["Authorization", "Bearer tg_client"],
      ["Cookie", "s=1"],
      ["Host", "gateway.example"],
      ["Connection", "keep-alive, X-Named-Hop"],
      ["X-Named-Hop", "1"],
      ["Keep-Alive", "timeout=5"],
      ["Content-Length", "2"],
      ["Transfer-Encoding", "chunked"],
      ["Forwarded", "for=6.6.6.6"],
      ["X-Forwarded-For", "6.6.6.6"],
      ["X-Forwarded-Host", "evil.example"],
      ["X-Real-IP", "6.6.6.6"],
      ["X-HTTP-Method-Override", "DELETE"],
      ["CF-Connecting-IP", "203.0.113.7"],
      ["X-Request-Id", "client-id"],
    ]);
    const out = new Headers(forwardHeaders(incoming, gateway));
    expect([...out]).toEqual([
      ["accept", "application/json"],
      ["authorization", "Bearer up-secret"],
      ["content-type", "application/json"],
      ["x-forwarded-for", "203.0.113.7"],
      ["x-kept", "a, b"],
      ["x-request-id", "req_ours"],
    ]);
  });

  it("add no X-Forwarded-For without the client's address and no Authorization without a token", () => {
    const incoming = new Headers({ Authorization: "Bearer tg_client", "X-Kept": "1" });
    const out = new Headers(forwardHeaders(incoming, { clientIp: null, requestId: "req_1" }));
    expect([...out]).toEqual([
      ["x-kept", "1"],
      ["x-request-id", "req_1"],
    ]);
  });

  it("leave the client's headers as they were", () => {
    const incoming = new Headers({ Authorization: "Bearer tg_client", "X-Request-Id": "theirs" });
    forwardHeaders(incoming, gateway);
    expect(incoming.get("Authorization")).toBe("Bearer tg_client");
    expect(incoming.get("X-Request-Id")).toBe("theirs");
  });
});
