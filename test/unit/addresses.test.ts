import { describe, expect, it } from "vitest";
import { clientPrefixes, parseAddress } from "../../src/platform/client-address";
import { mailboxKey } from "../../src/platform/email-address";

describe("mailboxKey: one key per inbox", () => {
  it("ignores case, surrounding space and a +tag", () => {
    expect(mailboxKey("  Ann.Lee+Promo@Example.COM ")).toBe("ann.lee@example.com");
    expect(mailboxKey("ann.lee+a+b@example.com")).toBe("ann.lee@example.com");
  });
  it("drops Gmail's dots, and googlemail.com is gmail.com", () => {
    expect(mailboxKey("A.n.N+x@GoogleMail.com")).toBe("ann@gmail.com");
    expect(mailboxKey("a.n.n@gmail.com.")).toBe("ann@gmail.com");
  });
  it("keeps dots elsewhere, a leading + and what is not an address", () => {
    expect(mailboxKey("a.n.n@example.com")).toBe("a.n.n@example.com");
    expect(mailboxKey("+tag@example.com")).toBe("+tag@example.com");
    expect(mailboxKey("no-at-sign")).toBe("no-at-sign");
  });
});

describe("clientPrefixes: the host and network a client counts as", () => {
  it("IPv4: the address and its /24", () => {
    expect(clientPrefixes("203.0.113.7")).toEqual({
      host: "203.0.113.7",
      network: "203.0.113.0/24",
    });
  });
  it("IPv6: the /64 and the /48, whatever the spelling", () => {
    const expected = { host: "2001:db8:a:b::/64", network: "2001:db8:a::/48" };
    for (const spelling of [
      "2001:db8:a:b::1",
      "2001:0DB8:000A:000B:0000:0000:0000:0001",
      "2001:db8:a:b:ffff:ffff:ffff:ffff",
      "[2001:db8:a:b::7]",
      "2001:db8:a:b::1%eth0",
      "2001:db8:a:b:0:0:192.0.2.1",
    ]) {
      expect(clientPrefixes(spelling), spelling).toEqual(expected);
    }
    expect(clientPrefixes("::1")).toEqual({ host: "0:0:0:0::/64", network: "0:0:0::/48" });
    expect(clientPrefixes("2001:db8::")).toEqual({
      host: "2001:db8:0:0::/64",
      network: "2001:db8:0::/48",
    });
  });
  it("a new /64 per request stays in one /48", () => {
    const nets = new Set(
      Array.from({ length: 20 }, (_, i) => clientPrefixes(`2001:db8:1:${i.toString(16)}::1`)),
    );
    expect(new Set([...nets].map((n) => n.host)).size).toBe(20);
    expect(new Set([...nets].map((n) => n.network))).toEqual(new Set(["2001:db8:1::/48"]));
  });
  it("IPv4-mapped IPv6 is the IPv4 address it maps", () => {
    for (const spelling of [
      "::ffff:198.51.100.9",
      "::FFFF:c633:6409",
      "0:0:0:0:0:ffff:198.51.100.9",
    ]) {
      expect(clientPrefixes(spelling), spelling).toEqual({
        host: "198.51.100.9",
        network: "198.51.100.0/24",
      });
    }
  });
  it("no address, or one that does not parse", () => {
    expect(clientPrefixes(undefined)).toEqual({ host: "unknown", network: "unknown" });
    expect(clientPrefixes("  ")).toEqual({ host: "unknown", network: "unknown" });
    for (const bad of [
      "1.2.3",
      "256.1.1.1",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::1",
      "1:2:3:4:5:6:7",
    ]) {
      expect(parseAddress(bad), bad).toBeNull();
      expect(clientPrefixes(bad)).toEqual({ host: bad, network: bad });
    }
  });
});
