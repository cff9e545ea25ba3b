// @ts-check
/**
 * Is the gateway's port free? Asked before `npm start` makes anything: a gateway started
 * beside another one used to wait for "its" /healthz, get the other gateway's answer, and
 * create the demo account inside it. Every probe has a timeout, so a port held by a program
 * that accepts connections and says nothing cannot hang the start.
 */
import net from "node:net";

const CONNECT_TIMEOUT_MS = 1000;
const HEALTH_TIMEOUT_MS = 1500;

export class PortTakenError extends Error {
  /** @param {number} port @param {string} holder */
  constructor(port, holder) {
    super(
      `Port ${port} is already in use: ${holder}.\n` +
        `Nothing was started or created. Stop that program, or choose another port: PORT=${port + 10} npm start`,
    );
    this.name = "PortTakenError";
    this.port = port;
  }
}

/**
 * Resolves when nothing listens on `host:port` and it can be bound; rejects with a
 * PortTakenError saying what holds it otherwise.
 * @param {number} port @param {string} [host]
 */
export async function assertPortFree(port, host = "127.0.0.1") {
  if (await accepts(port, host)) throw new PortTakenError(port, await describeHolder(port, host));
  // Nothing answered a connection; a bind still fails for a socket bound on another
  // interface (0.0.0.0) or one not accepting yet, and for a port this user may not use.
  await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (err) => {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      reject(
        code === "EADDRINUSE"
          ? new PortTakenError(port, "another program has it bound")
          : new Error(`Port ${port} cannot be used (${code ?? String(err)}).`),
      );
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** Does anything accept a TCP connection there (within the timeout)? @param {number} port @param {string} host */
function accepts(port, host) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (/** @type {boolean} */ result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** What listens there, in words: a gateway answers /healthz, anything else does not. @param {number} port @param {string} host */
async function describeHolder(port, host) {
  try {
    const res = await fetch(`http://${host}:${port}/healthz`, {
      signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
    });
    const body = await res.text();
    if (res.ok && body.includes('"ok"')) {
      return `another gateway answers GET /healthz at http://${host}:${port} (an earlier npm start?)`;
    }
    return `another HTTP server (GET /healthz answered ${res.status}) is running there`;
  } catch {
    return `a program accepts connections there but did not answer HTTP within ${HEALTH_TIMEOUT_MS / 1000} s`;
  }
}
