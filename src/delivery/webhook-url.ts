/**
 * Where a customer's webhook may be sent (server-side request forgery). Outside local mode: https
 * only, and never a loopback, private, link-local or otherwise internal address. Workers cannot
 * resolve DNS, so a name is judged by itself: `localhost`-like and internal-only names are
 * refused; a public name that resolves to a private address is not caught here (Cloudflare's
 * egress does not reach private networks from a Worker). Pure: checked when an endpoint is
 * added and again before every send.
 */

/** Why `raw` is refused as an endpoint, or null when it may be used. */
export function endpointUrlProblem(raw: string, local: boolean): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL";
  }
  if (url.protocol !== "https:" && !(local && url.protocol === "http:"))
    return local ? "must be an http or https URL" : "must be an https URL";
  if (url.username || url.password) return "must not carry a user name or password";
  if (local) return null;
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (isInternalName(host)) return "must not name a local or internal host";
  if (host.startsWith("[")) {
    if (isInternalIpv6(host.slice(1, -1)))
      return "must not be a private, loopback or link-local address";
  } else if (/^[\d.]+$/.test(host)) {
    if (isInternalIpv4(host)) return "must not be a private, loopback or link-local address";
  }
  return null;
}

function isInternalName(host: string): boolean {
  if (!host.includes(".") && !host.startsWith("[") && !/^\d+$/.test(host)) return true;
  return ["localhost", "local", "internal", "localdomain", "home.arpa"].some(
    (suffix) => host === suffix || host.endsWith(`.${suffix}`),
  );
}

/** The URL parser has already turned `0x7f.1`, `2130706433` and the like into dotted quads. */
function isInternalIpv4(host: string): boolean {
  const parts = host.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    return true;
  const [a = 0, b = 0] = parts;
  return (
    a === 0 || // "this network"
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0) ||
    (a === 198 && (b === 18 || b === 19)) ||
    a >= 224 // multicast and reserved
  );
}

function isInternalIpv6(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "::" || h === "::1") return true;
  // IPv4-mapped (`::ffff:10.0.0.1`, which the parser writes as `::ffff:a00:1`): judge the IPv4.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (mapped) {
    const hi = Number.parseInt(mapped[1] ?? "0", 16);
    const lo = Number.parseInt(mapped[2] ?? "0", 16);
    return isInternalIpv4(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  const first = Number.parseInt(h.split(":")[0] || "0", 16);
  return (
    (first & 0xfe00) === 0xfc00 || // unique local fc00::/7
    (first & 0xffc0) === 0xfe80 || // link-local fe80::/10
    (first & 0xff00) === 0xff00 // multicast
  );
}
