/**
 * The browser tests' shared set-up: the whole local stack (wrangler dev, local D1/Queue/DO, the
 * local Stripe-compatible server with its webhooks, the demo upstream) on free ports with fresh
 * state, and Debian's Chromium driven by playwright-core.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { startLocalStack } from "../../scripts/local-stack.mjs";

export const CHROMIUM = "/usr/bin/chromium";

/** scripts/ensure-chromium.mjs installs it where it can; a run without it fails, never skips. */
function requireChromium(): void {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: run scripts/ensure-chromium.mjs (apt-get install chromium)`,
    );
}

export type Stack = Awaited<ReturnType<typeof startLocalStack>>;

/** A port nobody listens on right now, so a developer's `npm start` on 8787 is left alone. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function startStackAndBrowser(options: { dashboardHost?: string } = {}): Promise<{
  stack: Stack;
  browser: Browser;
  stop(): Promise<void>;
}> {
  requireChromium();
  let stack: Stack | undefined;
  let persistTo = "";
  for (let attempt = 1; !stack; attempt++) {
    persistTo = await mkdtemp(path.join(tmpdir(), "tollgate-e2e-"));
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()) };
    // Always the local stand-ins, whatever the developer's shell points at.
    for (const name of ["UPSTREAM_URL", "STRIPE_API_URL", "STRIPE_SECRET_KEY", "ADMIN_TOKEN"]) {
      delete env[name];
    }
    try {
      // stripePort 0: any free port, so the suite never takes the stable one `npm start` uses.
      stack = await startLocalStack({
        persistTo,
        env,
        quiet: true,
        stripePort: 0,
        dashboardHost: options.dashboardHost,
      });
    } catch (err) {
      await rm(persistTo, { recursive: true, force: true });
      // The port was free when picked and taken before wrangler dev bound it (the OS handed it
      // to the stack's own upstream or Stripe server, started on port 0 in between, or to any
      // other process): a fresh port and fresh state, at most three times.
      if (attempt < 3 && /Address already in use/.test(String(err))) continue;
      throw err;
    }
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-quic",
      "--disable-sync",
    ],
  });
  return {
    stack,
    browser,
    async stop() {
      await browser.close();
      await stack.stop();
      await rm(persistTo, { recursive: true, force: true });
    },
  };
}

/** A JSON call to the gateway with a bearer token. */
export async function api(
  stack: Stack,
  pathname: string,
  init: RequestInit & { token: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${stack.gatewayUrl}${pathname}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${init.token}`,
      "Content-Type": "application/json",
      ...init.headers,
    },
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Polls until `check` passes (webhooks, the queue consumer and alarms run in the background). */
export async function until<T>(
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    const value = await check().catch((err: unknown) => {
      last = err;
      return null;
    });
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`the expected state never arrived${last ? `; last: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Reloads the page until `check` passes. */
export async function reloadUntil(page: Page, check: () => Promise<boolean>, timeoutMs = 60_000) {
  await until(async () => {
    if (await check()) return true;
    await page.reload();
    return false;
  }, timeoutMs);
}

const AXE_SOURCE = readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown[] }>;
}

/**
 * Runs axe-core in the page and returns its serious and critical violations. It is evaluated
 * through the DevTools protocol, which the page's CSP does not govern (a <script> tag would be
 * refused), so the page is checked under its real policy.
 */
export async function axeProblems(page: Page): Promise<string[]> {
  await page.evaluate(await AXE_SOURCE);
  const violations = (await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as { axe: { run: (o: unknown) => Promise<{ violations: unknown[] }> } }
    ).axe;
    const result = await axe.run({ resultTypes: ["violations"] });
    return result.violations;
  })) as AxeViolation[];
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`,
    );
}

/** The sign-in link in the newest sign-in email to `email`, from the operator listing. */
export async function signInLink(stack: Stack, email: string): Promise<string> {
  return until(async () => {
    const res = await api(stack, `/admin/signup-emails?email=${encodeURIComponent(email)}`, {
      token: stack.adminToken,
    });
    const [latest] = (res.body.data ?? []) as Array<{ kind: string; text: string }>;
    if (latest?.kind !== "sign_in_link") return null;
    return /https?:\/\/\S+\/account\/sign-in\/confirm\?token=[0-9A-Za-z]{32}/.exec(
      latest.text,
    )?.[0];
  }, 20_000);
}

/**
 * Signs in as a person does: the email on the signed-out page, the emailed link (read from the
 * operator listing, as locally there is no mail server), its confirm button.
 */
export async function signInByEmail(stack: Stack, page: Page, email: string): Promise<void> {
  // Every browser here comes from 127.0.0.1, and sign-in counts 5 requests an hour per client
  // (as sign-up): each sign-in names a client of its own. Locally a client-sent
  // CF-Connecting-IP is kept (miniflare sets it only when absent; Cloudflare always overwrites it).
  const r = crypto.getRandomValues(new Uint8Array(3));
  await page.setExtraHTTPHeaders({ "CF-Connecting-IP": `10.${r[0]}.${r[1]}.${r[2]}` });
  await page.goto(`${stack.gatewayUrl}/account/billing`);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Email me a sign-in link" }).click();
  await page.getByRole("heading", { name: "Check your email" }).waitFor();
  await page.goto(await signInLink(stack, email));
  await page
    .getByRole("button", { name: /^Sign in/ })
    .first()
    .click();
  await page.getByRole("heading", { name: "Credit Balance" }).waitFor();
}
