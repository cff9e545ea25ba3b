/**
 * CSV exports (RFC 4180): a header row, then rows streamed as they are produced, so an export
 * of every page never holds the whole history in memory.
 */
import type { Context } from "hono";

export type CsvValue = string | number | boolean | null | undefined;

/**
 * One field: quoted when it holds a comma, a quote or a line break. A text field that a
 * spreadsheet would run as a formula (=, +, -, @, tab, CR first) is prefixed with a quote
 * (OWASP "CSV injection"); numbers are written as they are (negative credits stay numbers).
 */
export function csvField(value: CsvValue): string {
  if (value === null || value === undefined) return "";
  if (typeof value !== "string") return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One line, CRLF-terminated as RFC 4180 says. */
export function csvLine(values: readonly CsvValue[]): string {
  return `${values.map(csvField).join(",")}\r\n`;
}

/** Whether the request asks for CSV: `format=csv`, or `Accept: text/csv` with no `format`. */
export function wantsCsv(c: Context, format: string | undefined): boolean {
  if (format) return format === "csv";
  return (c.req.header("Accept") ?? "").toLowerCase().includes("text/csv");
}

/**
 * A `text/csv` response: the header row, then each batch `pages` yields, pulled one at a time
 * as the client reads (a ReadableStream: one D1 page in flight, never the whole export).
 */
export function csvResponse(
  filename: string,
  columns: readonly string[],
  pages: AsyncIterable<ReadonlyArray<readonly CsvValue[]>>,
): Response {
  const encoder = new TextEncoder();
  const iterator = pages[Symbol.asyncIterator]();
  let headerSent = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(encoder.encode(csvLine(columns)));
        return;
      }
      const next = await iterator.next();
      if (next.done) {
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(next.value.map(csvLine).join("")));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "Content-Type": "text/csv; charset=utf-8",
      "Content-Disposition": `attachment; filename="${filename}"`,
      "Cache-Control": "no-store",
    },
  });
}
