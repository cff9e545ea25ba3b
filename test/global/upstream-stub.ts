import { createServer, type Server } from "node:http";

/** What the stub keeps of each request it received (test/helpers/upstream.ts reads it). */
export interface ReceivedRequest {
  method: string;
  path: string;
  request_id: string | null;
}

/** Enough for a whole run; the oldest are dropped first. */
const MAX_RECORDED = 50_000;

/**
 * A stand-in for the upstream classifier at the network edge, speaking plain HTTP.
 * Paths choose the behaviour so each test can ask for the failure it needs.
 *
 * It records every request but its own test controls: `GET /_test/requests?request_id=…`
 * lists those that carried that `X-Request-Id` (the gateway forwards the client's), so a test
 * can tell whether a request of its own reached the upstream, whatever runs in parallel.
 */
export async function startUpstreamStub(): Promise<{ url: string; close(): Promise<void> }> {
  const received: ReceivedRequest[] = [];
  const hooks = new Map<string, { headers: Record<string, unknown>; body: string }[]>();
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://stub");
    // A customer's webhook endpoint (test/integration/customer-webhooks.test.ts): POST records
    // the delivery; `?fail=N` answers 500 to the first N, `?status=NNN` always answers NNN;
    // GET lists what that name received.
    const hook = /^\/_test\/hooks\/([\w-]+)$/.exec(url.pathname);
    if (hook) {
      const name = hook[1] ?? "";
      const list = hooks.get(name) ?? [];
      hooks.set(name, list);
      if (req.method === "GET") {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ data: list }));
        return;
      }
      list.push({ headers: req.headers, body });
      const fixed = url.searchParams.get("status");
      const fail = Number(url.searchParams.get("fail") ?? 0);
      const status = fixed ? Number(fixed) : list.length <= fail ? 500 : 200;
      res.writeHead(status, status === 302 ? { Location: "http://127.0.0.1:1/" } : {});
      res.end(status < 300 ? "ok" : "no");
      return;
    }
    if (url.pathname === "/_test/requests") {
      const id = url.searchParams.get("request_id");
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ data: received.filter((r) => id === null || r.request_id === id) }));
      return;
    }
    const requestId = req.headers["x-request-id"];
    received.push({
      method: req.method ?? "",
      path: url.pathname,
      request_id: typeof requestId === "string" ? requestId : null,
    });
    if (received.length > MAX_RECORDED) received.splice(0, received.length - MAX_RECORDED);
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
