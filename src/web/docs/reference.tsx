/**
 * `/docs`: the API reference, rendered on the server from the OpenAPI document with the
 * Billing page's layout and styles. Nothing is loaded from elsewhere (no CDN: local setups, CI
 * and some customers' networks have none) and no script runs, so the pages' CSP holds as is.
 */
import type { FC } from "hono/jsx";
import { BrandCompany } from "../kit/layout";
import { COPY_SCRIPT } from "../kit/security";
import type { OpenApiDocument } from "./document";
import { Quickstart } from "./quickstart";

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Array<Record<string, unknown>>;
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: JsonSchema }>;
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, { description?: string; $ref?: string }>;
}

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  pattern?: string;
}

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

const SECURITY_WORDS: Record<string, string> = {
  api_key: "API key",
  session: "Billing page session",
  operator: "operator token",
};

/** A schema in a few words: its type, its values or bounds. */
export function typeWords(schema: JsonSchema | undefined): string {
  if (!schema) return "any";
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.anyOf) return schema.anyOf.map(typeWords).join(" | ");
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type ?? "any");
  const bounds: string[] = [];
  const safe = (n: number | undefined) => n !== undefined && Math.abs(n) < Number.MAX_SAFE_INTEGER;
  if (safe(schema.minimum)) bounds.push(`≥ ${schema.minimum}`);
  if (safe(schema.maximum)) bounds.push(`≤ ${schema.maximum}`);
  if (schema.maxLength !== undefined) bounds.push(`at most ${schema.maxLength} characters`);
  if (schema.format) bounds.push(schema.format);
  if (schema.default !== undefined) bounds.push(`default ${JSON.stringify(schema.default)}`);
  return bounds.length > 0 ? `${type} (${bounds.join(", ")})` : type;
}

const Fields: FC<{ caption: string; rows: Array<[string, boolean, JsonSchema | undefined]> }> = ({
  caption,
  rows,
}) =>
  rows.length === 0 ? null : (
    <div class="table-scroll">
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Type</th>
            <th scope="col">Required</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([name, required, schema]) => (
            <tr>
              <td>
                <code>{name}</code>
              </td>
              <td>{typeWords(schema)}</td>
              <td>{required ? "yes" : "no"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );

const OperationCard: FC<{ method: string; path: string; op: Operation; id: string }> = ({
  method,
  path,
  op,
  id,
}) => {
  const body = op.requestBody?.content?.["application/json"]?.schema;
  const who = (op.security ?? []).flatMap((s) => Object.keys(s).map((k) => SECURITY_WORDS[k] ?? k));
  return (
    <section class="card" id={id} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>
        <code>
          {method.toUpperCase()} {path}
        </code>
      </h3>
      {op.summary ? <p>{plain(op.summary)}</p> : null}
      {op.description ? <p class="hint">{plain(op.description)}</p> : null}
      <p class="meta">Authentication: {who.length > 0 ? who.join(" or ") : "none"}</p>
      <Fields
        caption="Query parameters"
        rows={(op.parameters ?? [])
          .filter((p) => p.in === "query")
          .map((p) => [p.name, p.required === true, p.schema])}
      />
      {body ? (
        <Fields
          caption="JSON body"
          rows={Object.entries(body.properties ?? {}).map(([name, schema]) => [
            name,
            body.required?.includes(name) ?? false,
            schema,
          ])}
        />
      ) : null}
      <p class="meta">
        Responses:{" "}
        {Object.entries(op.responses ?? {}).map(([status, r], i) => (
          <>
            {i > 0 ? "; " : ""}
            <strong>{status}</strong> {plain(r.description) ?? ""}
          </>
        ))}
      </p>
    </section>
  );
};

/** Customers' sections first, then people, operators and the plumbing; others after, as found. */
const TAG_ORDER = [
  "Proxied API",
  "Account",
  "Keys",
  "Usage",
  "Billing",
  "Limits",
  "Alerts",
  "Members",
  "Sign-up and sign-in",
  "Operators",
  "Stripe",
  "API description",
];

/** The document's descriptions are CommonMark; the page shows them as plain text. */
const plain = (text: string | undefined) => text?.replaceAll("`", "");

/** Operations grouped by their first tag, customers' sections first. */
export function byTag(doc: OpenApiDocument) {
  const groups = new Map<string, Array<{ method: string; path: string; op: Operation }>>();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = (item as Record<string, Operation | undefined>)[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? "Other";
      groups.set(tag, [...(groups.get(tag) ?? []), { method, path, op }]);
    }
  }
  const rank = (tag: string) => {
    const i = TAG_ORDER.indexOf(tag);
    return i === -1 ? TAG_ORDER.length : i;
  };
  return new Map([...groups.entries()].sort(([a], [b]) => rank(a) - rank(b)));
}

export const ReferencePage: FC<{ doc: OpenApiDocument; baseUrl: string }> = ({ doc, baseUrl }) => {
  const groups = byTag(doc);
  const anchor = (method: string, path: string) =>
    `${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/-+$/, "")}`;
  return (
    <>
      <header class="top">
        <div class="wrap">
          <span class="brand">
            <BrandCompany /> <span>· API reference</span>
          </span>
        </div>
      </header>
      <main id="main" class="wrap">
        <h1>{doc.info.title}</h1>
        <p class="lead">{plain(doc.info.description)}</p>
        <p>
          The machine-readable description: <a href="/openapi.json">/openapi.json</a> (OpenAPI{" "}
          {doc.openapi}).
        </p>
        <Quickstart baseUrl={baseUrl} keyHint={null} />
        <script dangerouslySetInnerHTML={{ __html: COPY_SCRIPT }} />
        <nav aria-label="Sections">
          <ul>
            {[...groups.keys()].map((tag) => (
              <li>
                <a href={`#tag-${tag.replace(/[^A-Za-z0-9]+/g, "-")}`}>{tag}</a>
              </li>
            ))}
          </ul>
        </nav>
        {[...groups.entries()].map(([tag, ops]) => (
          <section aria-labelledby={`tag-${tag.replace(/[^A-Za-z0-9]+/g, "-")}`}>
            <h2 id={`tag-${tag.replace(/[^A-Za-z0-9]+/g, "-")}`}>{tag}</h2>
            {ops.map(({ method, path, op }) => (
              <OperationCard method={method} path={path} op={op} id={anchor(method, path)} />
            ))}
          </section>
        ))}
      </main>
    </>
  );
};
