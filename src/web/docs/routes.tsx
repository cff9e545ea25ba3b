/**
 * `GET /openapi.json` (no key) and `GET /docs` (the reference page), both from one document.
 * The document needs the whole app's route table, so app.ts hands it in.
 */
import { Hono } from "hono";
import type { AppEnv } from "../../http/context";
import { describe } from "../../http/openapi";
import { brandOf } from "../../platform/brand";
import { Document, renderHtml } from "../kit/layout";
import { pageSecurityHeaders } from "../kit/security";
import type { OpenApiDocument } from "./document";
import { ReferencePage } from "./reference";

const jsonDoc = describe({
  summary: "This document (OpenAPI 3.1)",
  tag: "API description",
  security: "none",
});
const pageDoc = describe({
  summary: "The API reference page",
  tag: "API description",
  security: "none",
  ok: { contentType: "text/html" },
});

/** The document as served from this origin. */
function served(doc: OpenApiDocument, origin: string): OpenApiDocument {
  return { ...doc, servers: [{ url: origin }] };
}

export function apiDescriptionRoutes(document: (title: string) => Promise<OpenApiDocument>) {
  return new Hono<AppEnv>()
    .get("/openapi.json", jsonDoc, async (c) => {
      const doc = await document(brandOf(c.env).product);
      return c.json(served(doc, new URL(c.req.url).origin), 200);
    })
    .get("/docs", pageDoc, pageSecurityHeaders, async (c) => {
      const origin = new URL(c.req.url).origin;
      const doc = served(await document(brandOf(c.env).product), origin);
      return renderHtml(
        c,
        <Document title={`${doc.info.title} reference`}>
          <ReferencePage doc={doc} baseUrl={origin} />
        </Document>,
      );
    });
}
