// @ts-check
import { createServer } from "node:http";
import { CATEGORIES, classify } from "./classifier.mjs";

/**
 * The demo upstream classifier over HTTP:
 * - POST /v1/classify  {"title", "description"} → {"category", "confidence", "matched", "alternatives"}
 * - GET  /v1/categories → {"data": [...]}
 * Anything else under /v1 is 404 in the classifier's own error shape.
 * @param {{ port?: number, host?: string }} [options]
 */
export async function startDemoUpstream(options = {}) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://upstream");
    const send = (/** @type {number} */ status, /** @type {unknown} */ body) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (req.method === "GET" && url.pathname === "/v1/categories") {
      send(200, { data: CATEGORIES.map((c) => c.category) });
      return;
    }
    if (req.method === "POST" && url.pathname === "/v1/classify") {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      let input;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      } catch {
        send(400, { error: { message: 'body must be JSON: {"title", "description"}' } });
        return;
      }
      if (typeof input?.title !== "string" || input.title.trim() === "") {
        send(422, { error: { message: "title is required" } });
        return;
      }
      send(200, classify(input));
      return;
    }
    send(404, { error: { message: `no such classifier route: ${req.method} ${url.pathname}` } });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve(undefined)),
  );
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("demo upstream has no address");
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${address.port}`,
    port: address.port,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.DEMO_UPSTREAM_PORT ?? 8788);
  const { url } = await startDemoUpstream({ port });
  console.log(`demo upstream classifier on ${url}`);
}
