// @ts-check
/**
 * Parameter schemas: every endpoint declares the parameters the API reference lists for it.
 * Anything else is refused the way Stripe refuses it (400 `invalid_request_error`,
 * `parameter_unknown`, "Received unknown parameter: x[y]"), as are missing required ones
 * (`parameter_missing`) and values of the wrong form (`parameter_invalid_integer`, …).
 */

export class ParamError extends Error {
  /** @param {string} message @param {string} code @param {string} param */
  constructor(message, code, param) {
    super(message);
    this.code = code;
    this.param = param;
  }
}

/**
 * @typedef {{ kind: string, required?: boolean, parse: (v: any, name: string) => any }} Schema
 */

/** @param {Schema} s @returns {Schema} */
export const required = (s) => ({ ...s, required: true });

/** @type {Schema} */
export const str = {
  kind: "string",
  parse: (v, name) => {
    if (typeof v !== "string")
      throw new ParamError(`Invalid string: ${name}`, "parameter_invalid_string", name);
    return v;
  },
};

/** @type {Schema} */
export const int = {
  kind: "integer",
  parse: (v, name) => {
    if (typeof v !== "string" || !/^-?\d+$/.test(v))
      throw new ParamError(
        `Invalid integer: ${typeof v === "string" ? v : "(object)"}`,
        "parameter_invalid_integer",
        name,
      );
    return Number(v);
  },
};

/** @type {Schema} */
export const bool = {
  kind: "boolean",
  parse: (v, name) => {
    if (v === "true") return true;
    if (v === "false") return false;
    throw new ParamError(`Invalid boolean: ${v}`, "parameter_invalid_boolean", name);
  },
};

/** @param {...string} values @returns {Schema} */
export const oneOf = (...values) => ({
  kind: "enum",
  parse: (v, name) => {
    if (typeof v !== "string" || !values.includes(v))
      throw new ParamError(
        `Invalid ${name}: must be one of ${values.join(", ")}`,
        "parameter_invalid_value",
        name,
      );
    return v;
  },
});

/** Metadata: string keys (no brackets, ≤ 40 chars), string values (≤ 500); "" unsets. */
/** @type {Schema} */
export const metadata = {
  kind: "metadata",
  parse: (v, name) => {
    if (v === "") return "";
    if (!v || typeof v !== "object" || Array.isArray(v))
      throw new ParamError(`Invalid object`, "parameter_invalid_object", name);
    const entries = Object.entries(v);
    if (entries.length > 50)
      throw new ParamError(
        "Invalid metadata: metadata can have up to 50 keys",
        "parameter_invalid_value",
        name,
      );
    for (const [k, val] of entries) {
      if (typeof val !== "string")
        throw new ParamError(`Invalid string: ${name}[${k}]`, "parameter_invalid_string", name);
      if (k.length > 40)
        throw new ParamError(
          `Metadata keys can have up to 40 characters; "${k}" has ${k.length}`,
          "parameter_invalid_value",
          `${name}[${k}]`,
        );
      if (val.length > 500)
        throw new ParamError(
          "Metadata values can have up to 500 characters",
          "parameter_invalid_value",
          `${name}[${k}]`,
        );
    }
    return v;
  },
};

/** @param {Schema} item @returns {Schema} */
export const list = (item) => ({
  kind: "array",
  parse: (v, name) => {
    if (v === "") return [];
    if (!Array.isArray(v)) throw new ParamError(`Invalid array`, "parameter_invalid_array", name);
    return v.map((x, i) => item.parse(x, `${name}[${i}]`));
  },
});

/** @param {Record<string, Schema>} fields @returns {Schema} */
export const obj = (fields) => ({
  kind: "object",
  parse: (v, name) => {
    if (v === "") return "";
    if (!v || typeof v !== "object" || Array.isArray(v))
      throw new ParamError(`Invalid object`, "parameter_invalid_object", name);
    return parseFields(fields, v, name);
  },
});

export const expand = list(str);

/**
 * @param {Record<string, Schema>} fields
 * @param {Record<string, any>} input
 * @param {string} [prefix]
 */
export function parseFields(fields, input, prefix = "") {
  /** @type {Record<string, any>} */
  const out = {};
  const named = (/** @type {string} */ k) => (prefix ? `${prefix}[${k}]` : k);
  for (const k of Object.keys(input)) {
    if (!(k in fields))
      throw new ParamError(
        `Received unknown parameter: ${named(k)}`,
        "parameter_unknown",
        named(k),
      );
  }
  for (const [k, schema] of Object.entries(fields)) {
    if (!(k in input)) {
      if (schema.required)
        throw new ParamError(`Missing required param: ${named(k)}.`, "parameter_missing", named(k));
      continue;
    }
    const v = input[k];
    if (v === "" && schema.required)
      throw new ParamError(
        `You passed an empty string for '${named(k)}'. We assume empty values are an attempt to unset a parameter; however '${named(k)}' cannot be unset. You should remove '${named(k)}' from your request or supply a non-empty value.`,
        "parameter_invalid_empty",
        named(k),
      );
    out[k] = schema.parse(v, named(k));
  }
  return out;
}

/** List parameters every list endpoint takes (pagination, expand). */
export const LIST = {
  limit: int,
  starting_after: str,
  ending_before: str,
  expand,
};

/** A `created`-style range filter: an integer or {gt, gte, lt, lte}. */
/** @type {Schema} */
export const range = {
  kind: "range",
  parse: (v, name) =>
    typeof v === "string"
      ? int.parse(v, name)
      : obj({ gt: int, gte: int, lt: int, lte: int }).parse(v, name),
};
