// @ts-check
/**
 * Stripe's request encoding: `application/x-www-form-urlencoded` bodies (and query strings for
 * GET/DELETE) whose keys use bracket notation for nested objects and arrays, as the API
 * reference shows it ("metadata[order_id]=6735", "expand[]=customer",
 * "line_items[0][price]=price_…"). Values are always strings; an empty string unsets a field.
 */

export class FormError extends Error {}

/**
 * Splits `a[b][0][]` into ["a", "b", "0", ""]; throws on a malformed key.
 * @param {string} key
 */
export function keyPath(key) {
  const open = key.indexOf("[");
  if (open === 0) throw new FormError(`Invalid parameter name: ${key}`);
  if (open < 0) {
    if (key.includes("]")) throw new FormError(`Invalid parameter name: ${key}`);
    return [key];
  }
  const parts = [key.slice(0, open)];
  let rest = key.slice(open);
  while (rest.length > 0) {
    const m = /^\[([^[\]]*)\]/.exec(rest);
    if (!m) throw new FormError(`Invalid parameter name: ${key}`);
    parts.push(m[1]);
    rest = rest.slice(m[0].length);
  }
  return parts;
}

/** @typedef {any} FormValue  a string, or an object or array of FormValues */

/**
 * Decodes a form body into nested objects and arrays. Arrays come from `[]` (appended) or
 * integer indexes (`[0]`, `[1]`: ordered by index). A key used both as a scalar and as an
 * object, or an array mixing indexes and names, is a malformed request.
 * @param {string} text
 * @returns {Record<string, FormValue>}
 */
export function parseForm(text) {
  /** @type {Record<string, any>} */
  const root = {};
  if (!text) return root;
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    let key;
    let value;
    try {
      key = decodeURIComponent(rawKey.replaceAll("+", " "));
      value = decodeURIComponent(rawValue.replaceAll("+", " "));
    } catch {
      throw new FormError(`Invalid percent-encoding in ${rawKey}`);
    }
    const path = keyPath(key);
    /** @type {any} */
    let node = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      const isArrayNode = node instanceof ArrayBuilder;
      if (isArrayNode) {
        if (seg !== "" && !/^\d+$/.test(seg))
          throw new FormError(`Invalid array index ${JSON.stringify(seg)} in ${key}`);
      }
      if (last) {
        if (isArrayNode) node.set(seg, value, key);
        else {
          if (seg === "") throw new FormError(`Invalid parameter name: ${key}`);
          if (seg in node) throw new FormError(`Duplicate parameter: ${key}`);
          node[seg] = value;
        }
        break;
      }
      const nextSeg = path[i + 1];
      const wantArray = nextSeg === "" || /^\d+$/.test(nextSeg);
      /** @type {any} */
      let child = isArrayNode ? node.get(seg, key, wantArray) : node[seg];
      if (!isArrayNode) {
        if (child === undefined) {
          child = wantArray ? new ArrayBuilder() : {};
          node[seg] = child;
        }
      }
      if (typeof child === "string")
        throw new FormError(`Parameter ${key} is both a value and an object`);
      if (wantArray !== child instanceof ArrayBuilder)
        throw new FormError(`Parameter ${key} mixes array and object notation`);
      node = child;
    }
  }
  return /** @type {Record<string, FormValue>} */ (finish(root));
}

class ArrayBuilder {
  constructor() {
    /** @type {Map<number, any>} */
    this.items = new Map();
    this.next = 0;
  }
  /** @param {string} seg @param {string} value @param {string} key */
  set(seg, value, key) {
    const index = seg === "" ? this.next : Number(seg);
    if (this.items.has(index)) throw new FormError(`Duplicate parameter: ${key}`);
    this.items.set(index, value);
    this.next = Math.max(this.next, index + 1);
  }
  /** @param {string} seg @param {string} key @param {boolean} wantArray */
  get(seg, key, wantArray) {
    // `a[][b]=1&a[][c]=2` is ambiguous; Stripe's own clients always send indexes for objects.
    if (seg === "") throw new FormError(`Use indexes for arrays of objects: ${key}`);
    const index = Number(seg);
    let child = this.items.get(index);
    if (child === undefined) {
      child = wantArray ? new ArrayBuilder() : {};
      this.items.set(index, child);
      this.next = Math.max(this.next, index + 1);
    }
    return child;
  }
}

/** @param {any} node @returns {any} */
function finish(node) {
  if (node instanceof ArrayBuilder) {
    return [...node.items.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => finish(v));
  }
  if (node && typeof node === "object") {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = finish(v);
    return out;
  }
  return node;
}

/**
 * Encodes nested params the way the API reference's curl examples do (indexes for arrays), for
 * this suite's own clients.
 * @param {Record<string, unknown>} params
 */
export function encodeForm(params) {
  /** @type {string[]} */
  const pairs = [];
  /** @param {string} key @param {unknown} value */
  const walk = (key, value) => {
    if (value === undefined) return;
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(`${key}[${i}]`, v);
    } else if (value && typeof value === "object")
      for (const [k, v] of Object.entries(value)) walk(`${key}[${k}]`, v);
    else pairs.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value ?? ""))}`);
  };
  for (const [k, v] of Object.entries(params)) walk(k, v);
  return pairs.join("&");
}
