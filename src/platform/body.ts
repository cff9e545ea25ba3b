import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, type FieldError } from "./errors";

/** JSON bodies of account and admin routes are small; anything larger is refused. */
export const JSON_BODY_LIMIT = 64 * 1024;

/**
 * Reads the raw body, refusing more than `limit` bytes with 413. A declared Content-Length over
 * the limit is refused without reading anything; one within it is read in one call (the
 * runtime delivers no more than an HTTP client declared) and counted after; a body without
 * one is counted while streamed and refused at the limit before reading further.
 *
 * Not Hono's `bodyLimit` middleware: its `onError` could throw this 413 envelope, but as a
 * middleware it runs before the handler's own checks, so a 413 would overtake what some routes
 * answer first today (404 while sign-up is off, 404 for an unknown account on /admin); the
 * proxy's limit is per-environment (MAX_BODY_BYTES); it trusts a Content-Length under the
 * limit without counting, and on overflow leaves the stream uncancelled. Reading here, once,
 * keeps the order and the streaming limit exact (bad-input.test.ts: "read or not", "with or
 * without Content-Length").
 */
export async function readBodyLimited(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get("Content-Length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (!req.body) return new Uint8Array();
  if (declared !== null) {
    // A declared length within the limit bounds the read: read in one call (a form's, a
    // webhook's), and still count it, in case the body is not what the header said.
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.byteLength > limit) throw tooLarge(limit);
    return body;
  }
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * A body to forward, size-checked before anything is spent: a declared Content-Length within
 * the limit is passed on as the stream it is, never read here (the runtime's HTTP framing
 * delivers no more than was declared; reading 95 bytes into the isolate cost the hot account
 * about 5% of its CPU per request, docs/performance.md). Over the limit: 413 unread. Without
 * one, read and counted (`readBodyLimited`), so a chunked body over the limit is refused before
 * the debit too.
 */
export async function forwardableBody(
  req: Request,
  limit: number,
): Promise<ReadableStream | Uint8Array | null> {
  const declared = req.headers.get("Content-Length");
  const length = Number(declared ?? Number.NaN);
  if (!Number.isSafeInteger(length) || length < 0) return readBodyLimited(req, limit);
  if (length > limit) throw tooLarge(limit);
  return req.body;
}

function tooLarge(limit: number): ApiError {
  return new ApiError("payload_too_large", `The request body is larger than ${limit} bytes.`, {
    extra: { limit_bytes: limit },
  });
}

/** Zod issues as the contract's `error.fields`. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String);
    // An unknown key is the offending field itself, not the object that holds it.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: [...at, key].join("."), message: "unknown field" }));
    }
    return [{ field: at.length > 0 ? at.join(".") : "body", message: issue.message }];
  });
}

/** Parses and validates a JSON body: 400 `invalid_request` naming the fields, 413 when too big. */
export async function parseJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const raw = await readBodyLimited(c.req.raw, JSON_BODY_LIMIT);
  let data: unknown;
  try {
    data =
      raw.byteLength === 0
        ? {}
        : JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(raw));
  } catch {
    throw ApiError.invalidRequest("The request body is not valid JSON.", [
      { field: "body", message: "malformed JSON" },
    ]);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw ApiError.invalidRequest("The request body failed validation.", fieldErrors(parsed.error));
  }
  return parsed.data;
}

/** Validates query parameters with the same envelope as bodies. */
export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) {
    throw ApiError.invalidRequest(
      "The query parameters failed validation.",
      fieldErrors(parsed.error),
    );
  }
  return parsed.data;
}
