/**
 * The proxied request's URL, cut as strings (src/gateway/forward-headers.ts): for every URL the
 * runtime can hand the gateway, the same path, query and upstream URL as parsing with `URL`.
 */
import { describe, expect, it } from "vitest";
import { pathAndQuery, upstreamUrl } from "../../src/gateway/forward-headers";
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
