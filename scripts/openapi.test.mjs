// @ts-check
/**
 * The document at `/openapi.json` validates against the OpenAPI 3.1 schema. The validator
 * (ajv underneath) compiles with `new Function`, which workerd refuses, so this runs in Node:
 * esbuild bundles the app as wrangler would (only `cloudflare:workers` stubbed: the Durable
 * Object class is never constructed here) and the app answers `GET /openapi.json` itself.
 * Run: node --test scripts/openapi.test.mjs
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Validator } from "@seriousme/openapi-schema-validator";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** @type {import("esbuild").Plugin} */
const cloudflareStub = {
  name: "cloudflare-stub",
  setup(b) {
    b.onResolve({ filter: /^cloudflare:/ }, (args) => ({ path: args.path, namespace: "stub" }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export class DurableObject {}; export const env = {};",
    }));
  },
};

async function loadApp() {
  const out = await build({
    entryPoints: [path.join(root, "src/app.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    write: false,
    logLevel: "error",
    plugins: [cloudflareStub],
  });
  const dir = mkdtempSync(path.join(tmpdir(), "tollgate-openapi-"));
  const file = path.join(dir, "app.mjs");
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("GET /openapi.json is a valid OpenAPI 3.1 document", async () => {
  const { createApp } = await loadApp();
  // A stand-in D1 binding: the app makes its drizzle client per request; this route reads nothing.
  const res = await createApp().request("https://gateway.test/openapi.json", {}, { DB: {} });
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.openapi, "3.1.0");
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.deepEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 2));
  assert.equal(result.valid, true);
  assert.equal(validator.version, "3.1");
  assert.ok(Object.keys(doc.paths).length > 30);
});
