// @ts-check
/**
 * The benchmark's upstream stub: one constant JSON body for every request, keep-alive on.
 * Run as its own process (`node bench/upstream.mjs`) so it does not share an event loop with
 * the load generator; it prints `{"port": N}` on stdout once listening on 127.0.0.1.
 */
import { createServer } from "node:http";

const BODY = Buffer.from(
  JSON.stringify({
    category: "Electronics > Audio",
    confidence: 0.92,
    matched: ["earbuds", "bluetooth"],
    alternatives: [{ category: "Electronics > Phones", score: 0.31 }],
  }),
);
const HEADERS = {
  "Content-Type": "application/json; charset=utf-8",
  "Content-Length": String(BODY.length),
};

/** @param {{ port?: number }} [options] */
export async function startUpstreamStub(options = {}) {
  const server = createServer((req, res) => {
    // Drain the request body (if any) before answering, as a real upstream would.
    req.resume();
    req.on("end", () => {
      res.writeHead(200, HEADERS);
      res.end(BODY);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  await new Promise((resolve) => server.listen(options.port ?? 0, "127.0.0.1", () => resolve(0)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("upstream stub has no address");
  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { port } = await startUpstreamStub({ port: Number(process.env.PORT ?? 0) });
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.on("SIGTERM", () => process.exit(0));
  // Exit with the parent: the benchmark never leaves this process behind.
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
