import { createServer, type Server } from "node:http";

/**
 * A stand-in for the upstream classifier at the network edge, speaking plain HTTP.
 * Paths choose the behaviour so each test can ask for the failure it needs.
 */
export async function startUpstreamStub(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://stub");
    const status = /^\/v1\/status\/(\d{3})$/.exec(url.pathname);
    if (status) {
      res.writeHead(Number(status[1]), {
        "Content-Type": "application/json",
        "X-Upstream": "stub",
      });
      res.end(JSON.stringify({ error: { message: `status ${status[1]}` } }));
      return;
    }
    if (url.pathname === "/v1/slow") {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms") ?? 3000)));
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{}");
      return;
    }
    if (url.pathname === "/v1/drop") {
      req.socket.destroy();
      return;
    }
    // Default: echo what arrived, so tests can check what the gateway forwards.
    res.writeHead(200, { "Content-Type": "application/json; charset=utf-8", "X-Upstream": "stub" });
    res.end(
      JSON.stringify({
        category: "Electronics > Audio",
        confidence: 0.9,
        echo: {
          method: req.method,
          path: url.pathname,
          query: url.search,
          headers: req.headers,
          body,
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
