import { createServer, type Server } from "node:http";

/**
 * A stand-in for a Cloudflare Access team's published signing keys
 * (`/cdn-cgi/access/certs`). The keys are the tests' own: a test makes an RSA pair in workerd
 * and posts the public JWK to `POST /_test/keys` (added to the set, so test files running side
 * by side each keep theirs); the gateway reads them through ACCESS_CERTS_URL.
 */
export async function startAccessKeys(): Promise<{ url: string; close(): Promise<void> }> {
  const keys: unknown[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://keys");
    if (req.method === "POST" && url.pathname === "/_test/keys") {
      keys.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.writeHead(204).end();
      return;
    }
    if (req.method === "GET" && url.pathname === "/cdn-cgi/access/certs") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ keys }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
