/**
 * Data out (issue 22) in a real browser against the real local stack: sign in, download the
 * usage and transactions CSVs from the Billing page and parse them; add a webhook endpoint
 * that points at a small HTTP receiver this test runs on 127.0.0.1 (local mode allows http
 * there), see its signing secret once, press "Send test" and wait for the delivery's status on
 * the page, and verify the request received with `standardwebhooks`' own `Webhook.verify`; then
 * the API reference at /docs, loaded with nothing from beyond this machine. axe-core runs on
 * the Billing page (1280 and 390 px) and /docs. Leaves screenshots in test-results/
 * (webhooks-*.png; the copies in docs/ are from such a run).
 */
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  axeProblems,
  api as callApi,
  reloadUntil,
  type Stack,
  signInByEmail,
  startStackAndBrowser,
  until,
} from "./harness";

const SHOTS = path.resolve("test-results");
let stack: Stack;
let browser: Browser;
let stop: (() => Promise<void>) | undefined;

/** The customer's endpoint: records every request, answers 200. */
const received: { headers: IncomingHttpHeaders; body: string }[] = [];
let receiver: Server;
let receiverUrl = "";

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  receiver = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const address = receiver.address();
  receiverUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/tollgate-hook`;
  ({ stack, browser, stop } = await startStackAndBrowser());
});

afterAll(async () => {
  await stop?.();
  await new Promise((resolve) => receiver?.close(resolve));
});

/** RFC 4180 as src/http/csv.ts writes it: CRLF lines, quoted fields may hold commas and quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else field += ch;
  }
  return rows;
}

/** Clicks a download link and returns the file's text and name. */
async function download(page: Page, selector: string) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.locator(selector).click()]);
  const where = await file.path();
  return { name: file.suggestedFilename(), text: await readFile(where, "utf8") };
}

/** Every request the page made went to this machine (no CDN, no fonts, no analytics). */
function watchRequests(page: Page): string[] {
  const elsewhere: string[] = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.protocol === "data:" || url.protocol === "blob:") return;
    if (!["127.0.0.1", "localhost"].includes(url.hostname)) elsewhere.push(r.url());
  });
  return elsewhere;
}

describe("data out in Chromium", () => {
  it("downloads the CSVs, adds a webhook endpoint (secret once), sends a test and sees it delivered, signed", async () => {
    const demo = stack.demo as { id: string; api_key: string; email: string };
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${stack.gatewayUrl}/v1/classify`, {
        method: "POST",
        headers: { Authorization: `Bearer ${demo.api_key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ title: "Wireless earbuds", description: "Bluetooth 5.3" }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const elsewhere = watchRequests(page);
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
        problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    await signInByEmail(stack, page, demo.email);

    // Usage per key and day: the header, and the 3 requests on the demo key's rows.
    const usage = await until(async () => {
      const file = await download(page, "#usage-csv");
      const rows = parseCsv(file.text);
      const requests = rows.slice(1).reduce((sum, r) => sum + Number(r[2] ?? 0), 0);
      return requests >= 3 ? { ...file, rows } : null;
    }, 30_000);
    expect(usage.name).toBe("usage-day.csv");
    expect(usage.rows[0]).toEqual(["start", "key_id", "requests", "credits"]);
    const row = usage.rows.find((r) => Number(r[2]) > 0);
    expect(row?.[0]).toMatch(/^\d{4}-\d{2}-\d{2}/);
    expect(row?.[1]).toMatch(/^key_/);
    expect(Number(row?.[3])).toBeGreaterThan(0);

    // Transactions: the header, and the same entries the API lists, newest first.
    const history = await download(page, "#history-csv");
    const txRows = parseCsv(history.text);
    expect(history.name).toBe("transactions.csv");
    expect(txRows[0]).toEqual([
      "id",
      "type",
      "status",
      "credits",
      "amount_cents",
      "currency",
      "failure_code",
      "invoice_url",
      "action_url",
      "description",
      "created_at",
    ]);
    const listed = await callApi(stack, "/v1/account/transactions", { token: demo.api_key });
    const ids = ((listed.body.data ?? []) as { id: string }[]).map((t) => t.id);
    expect(txRows.slice(1, 1 + ids.length).map((r) => r[0])).toEqual(ids);
    for (const r of txRows.slice(1)) expect(r).toHaveLength(11);

    // Add an endpoint: the secret on the answer's page, once.
    const section = page.locator("#webhooks");
    await page.getByLabel("Endpoint URL").fill(receiverUrl);
    await page.getByRole("button", { name: "Add endpoint" }).click();
    const secretField = page.getByLabel("Signing secret");
    await secretField.waitFor();
    const secret = await secretField.inputValue();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32}$/);
    expect(await section.textContent()).toContain(receiverUrl);
    expect(await axeProblems(page)).toEqual([]);
    await section.screenshot({ path: path.join(SHOTS, "webhooks-added-1280.png") });
    await page.reload();
    await page.getByRole("heading", { name: "Webhooks" }).waitFor();
    expect(await page.locator("#new-webhook-secret").count()).toBe(0);
    expect(await page.content()).not.toContain(secret);

    // "Send test", then the delivery's status on the page once the queue has sent it.
    await page.getByRole("button", { name: `Send test to ${receiverUrl}` }).click();
    await page.getByText(`Test event sent to ${receiverUrl}.`).waitFor();
    const endpoint = section.locator(".webhook").filter({ hasText: receiverUrl });
    await reloadUntil(
      page,
      async () =>
        (await endpoint.locator("tbody tr").first().textContent())?.includes("succeeded") ?? false,
      30_000,
    );
    const delivered = endpoint.locator("tbody tr").first();
    expect(await delivered.textContent()).toContain("webhook.test");
    expect(await delivered.textContent()).toContain("HTTP 200");

    // What arrived is signed with that secret, as the Standard Webhooks library checks it.
    expect(received).toHaveLength(1);
    const [got] = received;
    const header = (name: string) => String(got?.headers[name] ?? "");
    const payload = new Webhook(secret).verify(got?.body ?? "", {
      "webhook-id": header("webhook-id"),
      "webhook-timestamp": header("webhook-timestamp"),
      "webhook-signature": header("webhook-signature"),
    });
    expect(payload).toMatchObject({ type: "webhook.test", data: { message: expect.any(String) } });
    expect(await delivered.getAttribute("data-delivery")).toBe(header("webhook-id"));
    expect(() =>
      new Webhook(`whsec_${Buffer.from("another secret, 24 bytes").toString("base64")}`).verify(
        got?.body ?? "",
        {
          "webhook-id": header("webhook-id"),
          "webhook-timestamp": header("webhook-timestamp"),
          "webhook-signature": header("webhook-signature"),
        },
      ),
    ).toThrow();
    expect(await axeProblems(page)).toEqual([]);
    await section.screenshot({ path: path.join(SHOTS, "webhooks-delivered-1280.png") });

    // A URL that is not one: the page again, the reason beside the form.
    await page.getByLabel("Endpoint URL").fill("ftp://files.example.com/hook");
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await page.getByText("No endpoint added: the URL must be an http or https URL.").waitFor();
    expect(await page.getByLabel("Endpoint URL").inputValue()).toBe("ftp://files.example.com/hook");
    expect(await axeProblems(page)).toEqual([]);
    await section.screenshot({ path: path.join(SHOTS, "webhooks-refused-1280.png") });

    expect(problems).toEqual([]);
    expect(elsewhere).toEqual([]);
    await context.close();
  });

  it("lays the Webhooks section out for a 390 px phone", async () => {
    const demo = stack.demo as { email: string };
    const context = await browser.newContext({ viewport: { width: 390, height: 900 } });
    const page = await context.newPage();
    await signInByEmail(stack, page, demo.email);
    const section = page.locator("#webhooks");
    await section.locator(".webhook").first().waitFor();
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    const box = await section.boundingBox();
    expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(390);
    expect(await axeProblems(page)).toEqual([]);
    await section.screenshot({ path: path.join(SHOTS, "webhooks-390.png") });
    await context.close();
  });

  it("renders the API reference at /docs from this machine alone", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const elsewhere = watchRequests(page);
    const res = await page.goto(`${stack.gatewayUrl}/docs`);
    expect(res?.status()).toBe(200);
    await page.getByRole("heading", { level: 1 }).waitFor();
    await page.getByRole("heading", { name: "Webhooks", level: 2 }).waitFor();
    expect(await page.locator("#main").textContent()).toContain("/v1/account/webhooks");
    await page.getByRole("link", { name: "/openapi.json" }).waitFor();
    expect(await axeProblems(page)).toEqual([]);
    await page.screenshot({ path: path.join(SHOTS, "webhooks-docs-1280.png") });
    expect(elsewhere).toEqual([]);
    await context.close();
  });
});
