/**
 * The opaque page cursor of the transaction history and the key list: the (created_at, id) of
 * the last row of the page, as base64url JSON. Validated as a query parameter by zod like every
 * other one, so a cursor that is not one of ours is the usual 400 naming `cursor`.
 */
import { z } from "zod";
import { fromBase64Url, toBase64Url } from "../platform/crypto";

export interface After {
  createdAt: string;
  id: string;
}

export function encodeCursor(createdAt: string, id: string): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([createdAt, id])));
}

const Decoded = z.tuple([z.string(), z.string()]);

/** The row a cursor points after, or null when it is not one of ours. */
export function decodeCursor(cursor: string): After | null {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
  } catch {
    return null;
  }
  const parsed = Decoded.safeParse(value);
  return parsed.success ? { createdAt: parsed.data[0], id: parsed.data[1] } : null;
}

/** The `cursor` query parameter: decoded, or the field error "invalid cursor". */
export const CursorParam = z
  .string()
  .max(300)
  .transform((value, ctx) => {
    const after = decodeCursor(value);
    if (after) return after;
    ctx.addIssue({ code: "custom", message: "invalid cursor" });
    return z.NEVER;
  });
