// @ts-check
/**
 * The layering rule of `src/` (docs/architecture.md, "Layers"), checked on every import:
 * a file may import its own part and parts of a lower layer, never a part beside it or above
 * it; and no file imports itself through a chain of others (a cycle). Run by `npm run check`;
 * exits 1 and lists every import against the rule and every cycle.
 *
 *   node scripts/check-layers.mjs          # check
 *   node scripts/check-layers.mjs --list   # also print every part and its layer
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Parts of the system, outermost first: [path prefix under src/, layer]. The longest prefix
 * names a file's part. Higher layers are the edges (entry, routes, pages, queue handlers),
 * lower ones the core (the ledger's pure rules, storage, platform).
 */
export const PARTS = [
  ["index.ts", 9],
  ["app.ts", 8],
  ["web/", 7],
  ["api/", 7],
  ["admin/", 7],
  ["webhooks/", 6],
  ["gateway/", 6],
  ["purchases/", 5],
  ["subscriptions/", 5],
  ["accounts/", 4],
  ["ledger/", 3],
  ["delivery/", 2],
  ["http/", 2],
  ["ledger/store/", 1],
  ["stripe/", 1],
  ["db/", 1],
  ["ledger/domain/", 0],
  ["pricing.ts", -1],
  ["platform/", -1],
];

/** @param {string} rel a path under src/ */
export function partOf(rel) {
  let best = null;
  for (const [prefix, layer] of PARTS) {
    if ((rel === prefix || rel.startsWith(prefix)) && (!best || prefix.length > best[0].length))
      best = [prefix, layer];
  }
  return best ? { name: String(best[0]), layer: Number(best[1]) } : null;
}

/** @param {string} dir */
function files(dir) {
  /** @type {string[]} */
  const out = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...files(full));
    else if (/\.tsx?$/.test(name) && !name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["'](\.{1,2}\/[^"']+)["']/g;
const EXTS = ["", ".ts", ".tsx", "/index.ts"];

/** @param {string} srcDir */
export function violations(srcDir) {
  /** @type {string[]} */
  const found = [];
  /** @type {string[]} */
  const unplaced = [];
  /** @type {Map<string, string[]>} */
  const edges = new Map();
  for (const file of files(srcDir)) {
    const rel = path.relative(srcDir, file).split(path.sep).join("/");
    const from = partOf(rel);
    if (!from) {
      unplaced.push(rel);
      continue;
    }
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(IMPORT)) {
      const spec = /** @type {string} */ (match[1]);
      const base = path.resolve(path.dirname(file), spec);
      const target = EXTS.map((e) => base + e).find((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      });
      if (!target) continue;
      const trel = path.relative(srcDir, target).split(path.sep).join("/");
      edges.set(rel, [...(edges.get(rel) ?? []), trel]);
      const to = partOf(trel);
      if (!to || to.name === from.name) continue;
      if (to.layer >= from.layer)
        found.push(
          `${rel} (${from.name}, layer ${from.layer}) imports ${trel} (${to.name}, layer ${to.layer})`,
        );
    }
  }
  return { found, unplaced, cycles: cyclesOf(edges) };
}

/**
 * Import cycles between files, each reported once (depth-first search; a back edge closes one).
 * @param {Map<string, string[]>} edges
 */
export function cyclesOf(edges) {
  /** @type {string[]} */
  const cycles = [];
  /** @type {Map<string, number>} 1: on the current path, 2: done */
  const state = new Map();
  /** @type {string[]} */
  const stack = [];
  /** @param {string} node */
  const visit = (node) => {
    state.set(node, 1);
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === 1)
        cycles.push([...stack.slice(stack.indexOf(next)), next].join(" -> "));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 2);
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { found, unplaced, cycles } = violations(path.join(root, "src"));
  if (process.argv.includes("--list")) for (const [p, l] of PARTS) console.log(`${l}\t${p}`);
  for (const u of unplaced) console.error(`not in any part of the layering: src/${u}`);
  for (const v of found) console.error(`against the layering: src/${v}`);
  for (const c of cycles) console.error(`import cycle: ${c}`);
  if (found.length || unplaced.length || cycles.length) {
    console.error(
      `${found.length} import(s) against the layering, ${unplaced.length} file(s) in no part, ${cycles.length} cycle(s) (docs/architecture.md, "Layers")`,
    );
    process.exit(1);
  }
  console.log("layers: every import in src/ runs to its own part or a lower layer, and no cycle");
}
