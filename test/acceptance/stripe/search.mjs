// @ts-check
/**
 * Stripe's search query language (docs.stripe.com/search): clauses `field:value` (exact),
 * `field~"sub"` (substring, at least 3 characters), `field>n` / `<` / `>=` / `<=` (numbers),
 * `-field:value` (negation), `metadata["key"]:"value"` (single or double quotes), `field:null`,
 * joined by `AND` or by `OR` (not both in one query), at most 10 clauses. Each resource lists
 * the fields it can be searched by.
 */

export class QueryError extends Error {}

/**
 * @typedef {{ field: string, metaKey: string | null, op: string, value: string | number | null,
 *   negate: boolean }} Clause
 */

/**
 * @param {string} query
 * @param {string[]} fields  the resource's searchable fields (`metadata` for metadata[…])
 * @param {string} resource  for messages, e.g. "invoices"
 * @returns {{ clauses: Clause[], join: "AND" | "OR" }}
 */
export function parseQuery(query, fields, resource) {
  let rest = query.trim();
  if (!rest) throw new QueryError("The query is empty.");
  /** @type {Clause[]} */
  const clauses = [];
  /** @type {Set<string>} */
  const joins = new Set();
  while (rest.length > 0) {
    const m =
      /^(-)?([a-z_][a-z0-9_.]*)(?:\[(?:"([^"]*)"|'([^']*)')\])?\s*(:|~|>=|<=|>|<)\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(-?\d+(?:\.\d+)?)|(null))/.exec(
        rest,
      );
    if (!m) throw new QueryError(`Query syntax error near: ${rest.slice(0, 40)}`);
    const [, neg, field, mk1, mk2, op, dq, sq, num, nul] = m;
    const metaKey = mk1 ?? mk2 ?? null;
    if (metaKey !== null && field !== "metadata")
      throw new QueryError(`Only metadata takes a key: ${field}[…]`);
    if (field === "metadata" && metaKey === null)
      throw new QueryError('metadata must name a key: metadata["key"]');
    if (!fields.includes(field))
      throw new QueryError(
        `Field \`${field}\` is an unsupported search field for resource \`${resource}\`. See http://stripe.com/docs/search#query-fields-for-${resource.replace("_", "-")} for a list of supported fields.`,
      );
    const isString = dq !== undefined || sq !== undefined;
    const value = isString
      ? (dq ?? sq).replace(/\\(.)/g, "$1")
      : num !== undefined
        ? Number(num)
        : nul !== undefined
          ? null
          : null;
    if (op === "~" && (!isString || String(value).length < 3))
      throw new QueryError(
        "The substring operator ~ takes a quoted value of 3 or more characters.",
      );
    if ([">", "<", ">=", "<="].includes(op) && typeof value !== "number")
      throw new QueryError(`The ${op} operator takes a number.`);
    if (
      op === ":" &&
      !isString &&
      value !== null &&
      field !== "created" &&
      field !== "total" &&
      field !== "amount"
    )
      throw new QueryError(`String values must be quoted: ${field}:${num}`);
    clauses.push({ field, metaKey, op, value, negate: neg === "-" });
    rest = rest.slice(m[0].length).trim();
    if (!rest) break;
    const j = /^(AND|OR)\s+/.exec(rest);
    if (!j)
      throw new QueryError(`Query syntax error: expected AND or OR near: ${rest.slice(0, 40)}`);
    joins.add(j[1]);
    rest = rest.slice(j[0].length);
  }
  if (joins.size > 1) throw new QueryError("A query cannot combine AND and OR.");
  if (clauses.length > 10) throw new QueryError("A query can have at most 10 clauses.");
  return { clauses, join: joins.has("OR") ? "OR" : "AND" };
}

/**
 * @param {{ clauses: Clause[], join: "AND" | "OR" }} parsed
 * @param {(field: string, metaKey: string | null) => unknown} get
 */
export function matches(parsed, get) {
  const test = (/** @type {Clause} */ c) => {
    const actual = get(c.field, c.metaKey);
    let ok;
    if (c.op === ":") {
      if (c.value === null) ok = actual === null || actual === undefined;
      else if (typeof c.value === "number") ok = Number(actual) === c.value;
      else ok = actual !== null && actual !== undefined && String(actual) === c.value;
    } else if (c.op === "~") {
      ok =
        typeof actual === "string" && actual.toLowerCase().includes(String(c.value).toLowerCase());
    } else {
      const n = Number(actual);
      const v = Number(c.value);
      ok = c.op === ">" ? n > v : c.op === "<" ? n < v : c.op === ">=" ? n >= v : n <= v;
    }
    return c.negate ? !ok : ok;
  };
  return parsed.join === "AND" ? parsed.clauses.every(test) : parsed.clauses.some(test);
}
