import type { Context } from "hono";
import { ApiError } from "./errors";

/** Stripe's own bound: at most 255 characters; printable ASCII so it can travel in a header. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The client's `Idempotency-Key` header, if it sent one; a malformed one is the client's
 * mistake, answered 400 before anything is done.
 */
export function idempotencyKeyOf(c: Context): string | undefined {
  const key = c.req.header("Idempotency-Key");
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
    throw ApiError.invalidRequest("Idempotency-Key must be 1–255 printable characters.", [
      { field: "Idempotency-Key", message: "invalid header" },
    ]);
  }
  return key;
}
