/**
 * Client addresses as the sign-up limits count them. One subscriber usually holds a whole IPv6
 * /64 (and often a /48), so counting single IPv6 addresses would limit nothing: the narrow key
 * is an IPv4 address or an IPv6 /64, the wide key the IPv4 /24 or IPv6 /48 around it. An
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address it maps.
 */

export type ParsedAddress = { v: 4; octets: number[] } | { v: 6; groups: number[] };

function parseIpv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const octets = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : Number.NaN));
  return octets.every((o) => o >= 0 && o <= 255) ? octets : null;
}

function parseGroups(text: string): number[] | null {
  if (text === "") return [];
  const groups: number[] = [];
  const parts = text.split(":");
  for (const [i, part] of parts.entries()) {
    // An embedded IPv4 address is the last 32 bits (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`).
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part);
      if (!v4) return null;
      groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      continue;
    }
    if (!/^[0-9a-f]{1,4}$/.test(part)) return null;
    groups.push(Number.parseInt(part, 16));
  }
  return groups;
}

/** An IPv4 or IPv6 address in any textual form (brackets, zone id, `::`), else null. */
export function parseAddress(address: string): ParsedAddress | null {
  let a = address.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  if (!a.includes(":")) {
    const octets = parseIpv4(a);
    return octets ? { v: 4, octets } : null;
  }
  a = a.replace(/%.*$/, "");
  const halves = a.split("::");
  if (halves.length > 2) return null;
  const left = parseGroups(halves[0] ?? "");
  const right = halves.length === 2 ? parseGroups(halves[1] ?? "") : [];
  if (!left || !right) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...left, ...Array<number>(missing).fill(0), ...right];
  // IPv4-mapped: ::ffff:a.b.c.d is a.b.c.d.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const hi = groups[6] ?? 0;
    const lo = groups[7] ?? 0;
    return { v: 4, octets: [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff] };
  }
  return { v: 6, groups };
}

const v6Prefix = (groups: number[], n: number) =>
  `${groups
    .slice(0, n / 16)
    .map((g) => g.toString(16))
    .join(":")}::/${n}`;

/**
 * What the per-client limits count: `host` (IPv4 address, IPv6 /64) and `network` (IPv4 /24,
 * IPv6 /48), each in one canonical spelling. Missing: "unknown" for both (every client without
 * an address shares them); unparseable: the trimmed text for both.
 */
export function clientPrefixes(address: string | undefined): { host: string; network: string } {
  const raw = (address ?? "").trim().toLowerCase();
  if (raw === "") return { host: "unknown", network: "unknown" };
  const parsed = parseAddress(raw);
  if (!parsed) return { host: raw, network: raw };
  if (parsed.v === 4) {
    const [a, b, c, d] = parsed.octets;
    return { host: `${a}.${b}.${c}.${d}`, network: `${a}.${b}.${c}.0/24` };
  }
  return { host: v6Prefix(parsed.groups, 64), network: v6Prefix(parsed.groups, 48) };
}
