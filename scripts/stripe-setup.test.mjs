// @ts-check
/**
 * npm run stripe:setup against the local Stripe server, run as a child process the way a
 * person runs it. Run: node --test scripts/stripe-setup.test.mjs
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { fileURLToPath } from "node:url";
import Stripe from "stripe";
import ts from "typescript";
import { startStripeServer } from "../local/stripe-server/server.mjs";
import {
  brandFrom,
  CURRENCY,
  catalog,
  DEFAULT_BRAND,
  DEFAULT_DASHBOARD_URL,
  DEFAULT_GATEWAY_URL,
  PACKAGES,
  PLANS,
  PORTAL_HEADLINE,
  portalParams,
  WEBHOOK_EVENTS,
} from "./stripe-setup.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const SCRIPT = path.join(here, "stripe-setup.mjs");
const KEY = "sk_test_x";

/** @typedef {import("./stripe-setup.mjs").SetupResult} SetupResult */
/** @typedef {{ method: string, path: string, idempotency_key: string | null, params: Record<string, unknown>, status: number | null }} LoggedRequest */

/** @type {Awaited<ReturnType<typeof startStripeServer>>} */
let server;
/** @type {Stripe} */
let stripe;

beforeEach(async () => {
  server = await startStripeServer({ port: 0, quiet: true });
  stripe = new Stripe(KEY, { host: "127.0.0.1", port: server.port, protocol: "http" });
});
afterEach(async () => {
  await server.close();
});

/**
 * Runs the script as a child process with only the env it is given (plus PATH).
 * @param {string[]} args
 * @param {Record<string, string>} [env]
 * @returns {Promise<{ code: number, stdout: string, stderr: string }>}
 */
function run(args, env = { STRIPE_API_URL: server.url, STRIPE_SECRET_KEY: KEY }) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SCRIPT, ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? "", ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** @param {string[]} [extra] @returns {Promise<SetupResult>} */
async function runJson(extra = []) {
  const { code, stdout, stderr } = await run(["--json", ...extra]);
  assert.equal(code, 0, `exit ${code}\n${stderr}\n${stdout}`);
  return JSON.parse(stdout);
}

/** @returns {Promise<LoggedRequest[]>} the Stripe API calls (/v1/…) the server saw */
async function requests() {
  const res = await fetch(`${server.url}/_test/requests`);
  const body = /** @type {{ data: LoggedRequest[] }} */ (await res.json());
  return body.data.filter((r) => r.path.startsWith("/v1/"));
}
async function clearRequests() {
  await fetch(`${server.url}/_test/requests`, { method: "DELETE" });
}

/** @param {ReadonlyArray<string>} a @param {ReadonlyArray<string>} b */
const assertSameSet = (a, b) => assert.deepEqual([...a].sort(), [...b].sort());

async function tableLookupKeys() {
  return stripe.prices.list({
    lookup_keys: catalog().map((i) => i.lookupKey),
    expand: ["data.product"],
    limit: 100,
  });
}

// ---------------------------------------------------------------------------------------------

test("the script's catalog is the pricing table of src/pricing.ts", async () => {
  // Compiles the real table (Node 20 cannot import TypeScript) and compares every value the
  // script mirrors, so the mirror cannot drift from src/pricing.ts.
  const source = readFileSync(path.join(root, "src", "pricing.ts"), "utf8");
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const pricing = await import(`data:text/javascript;base64,${Buffer.from(js).toString("base64")}`);

  assert.equal(CURRENCY, pricing.CURRENCY);
  const paid = Object.values(pricing.PLANS)
    .filter((p) => p.priceCents > 0)
    .map(({ id, name, monthlyCredits, priceCents }) => ({ id, name, monthlyCredits, priceCents }));
  assert.deepEqual(PLANS, paid);
  const packages = Object.values(pricing.PACKAGES).map(({ id, credits, priceCents }) => ({
    id,
    credits,
    priceCents,
  }));
  assert.deepEqual(PACKAGES, packages);
  assert.deepEqual(
    PACKAGES.map((p) => p.id),
    [...pricing.PACKAGE_IDS],
  );

  // And the literal values the brief names, as a second check on the test itself.
  assert.deepEqual(
    catalog().map((i) => [i.lookupKey, i.envName, i.unitAmount, i.interval]),
    [
      ["tollgate_plan_starter", "STRIPE_PRICE_STARTER", 1900, "month"],
      ["tollgate_plan_pro", "STRIPE_PRICE_PRO", 3900, "month"],
      ["tollgate_package_credits_1000", "STRIPE_PRICE_CREDITS_1000", 700, null],
      ["tollgate_package_credits_3000", "STRIPE_PRICE_CREDITS_3000", 1700, null],
      ["tollgate_package_credits_9000", "STRIPE_PRICE_CREDITS_9000", 3700, null],
    ],
  );
});

test("refuses to run without STRIPE_SECRET_KEY, and touches nothing", async () => {
  const { code, stderr } = await run([], { STRIPE_API_URL: server.url });
  assert.notEqual(code, 0);
  assert.match(stderr, /STRIPE_SECRET_KEY is not set/);
  assert.equal((await requests()).length, 0);
});

test("against the real API, refuses a webhook url Stripe cannot reach (before any call)", async () => {
  const { code, stderr } = await run([], { STRIPE_SECRET_KEY: KEY });
  assert.equal(code, 2);
  assert.match(stderr, /GATEWAY_URL/);
  assert.match(stderr, /--skip-webhook/);
});

test("--dry-run only reads and lists what it would create", async () => {
  const result = await runJson(["--dry-run"]);
  assert.equal(result.dryRun, true);
  assert.deepEqual(
    result.prices.map((p) => p.action),
    ["would_create", "would_create", "would_create", "would_create", "would_create"],
  );
  assert.equal(result.portalConfiguration.action, "would_create");
  assert.equal(result.webhookEndpoint.action, "would_create");
  const log = await requests();
  assert.ok(log.length > 0);
  assert.deepEqual(
    log.filter((r) => r.method !== "GET"),
    [],
  );

  const human = await run(["--dry-run"]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /would create/);
  assert.match(human.stdout, /Dry run: nothing was written/);
});

test("creates everything once; a second run finds it all and only reads", async () => {
  const first = await runJson();
  const log1 = await requests();
  await clearRequests();
  const second = await runJson();
  const log2 = await requests();

  // First run: five products, five prices, one configuration, one endpoint; each create with a
  // deterministic idempotency key.
  const creates = log1.filter((r) => r.method === "POST");
  assert.deepEqual(creates.map((r) => r.path).sort(), [
    "/v1/billing_portal/configurations",
    ...Array(5).fill("/v1/prices"),
    ...Array(5).fill("/v1/products"),
    "/v1/webhook_endpoints",
  ]);
  for (const r of creates) assert.match(String(r.idempotency_key), /^tollgate-setup:/);
  assert.ok(
    creates.some((r) => r.idempotency_key === "tollgate-setup:price:tollgate_plan_starter:1900"),
  );
  assert.deepEqual(
    first.prices.map((p) => p.action),
    ["created", "created", "created", "created", "created"],
  );
  assert.equal(first.portalConfiguration.action, "created");
  assert.equal(first.webhookEndpoint.action, "created");
  assert.match(first.env.STRIPE_WEBHOOK_SECRET, /^whsec_/);
  assert.match(first.env.STRIPE_PORTAL_CONFIGURATION, /^bpc_/);

  // Second run: reads only, same ids, no secret (Stripe returns it at creation only).
  assert.ok(log2.length > 0);
  assert.deepEqual(
    log2.filter((r) => r.method !== "GET"),
    [],
    "the second run must not write",
  );
  assert.deepEqual(
    second.prices.map((p) => p.action),
    ["found", "found", "found", "found", "found"],
  );
  assert.equal(second.portalConfiguration.action, "found");
  assert.equal(second.webhookEndpoint.action, "found");
  const { STRIPE_WEBHOOK_SECRET, ...firstIds } = first.env;
  assert.deepEqual(second.env, firstIds);
  assert.deepEqual(Object.keys(first.env), [
    "STRIPE_PRICE_STARTER",
    "STRIPE_PRICE_PRO",
    "STRIPE_PRICE_CREDITS_1000",
    "STRIPE_PRICE_CREDITS_3000",
    "STRIPE_PRICE_CREDITS_9000",
    "STRIPE_PORTAL_CONFIGURATION",
    "STRIPE_WEBHOOK_SECRET",
  ]);
  const state = await (await fetch(`${server.url}/_test/state`)).json();
  assert.equal(state.counts.products, 5);
  assert.equal(state.counts.prices, 5);

  // The prices are the table's.
  const listed = await tableLookupKeys();
  assert.equal(listed.data.length, 5);
  for (const item of catalog()) {
    const price = listed.data.find((p) => p.lookup_key === item.lookupKey);
    assert.ok(price, item.lookupKey);
    assert.equal(price.id, first.env[item.envName]);
    assert.equal(price.unit_amount, item.unitAmount, item.lookupKey);
    assert.equal(price.currency, "usd");
    assert.equal(price.active, true);
    if (item.interval) {
      assert.equal(price.type, "recurring");
      assert.equal(price.recurring?.interval, "month");
      assert.equal(price.recurring?.interval_count, 1);
    } else {
      assert.equal(price.type, "one_time");
      assert.equal(price.recurring, null);
    }
    assert.equal(price.metadata.tollgate_kind, item.kind);
    assert.equal(price.metadata.tollgate_id, item.id);
    const product = /** @type {Stripe.Product} */ (price.product);
    assert.equal(product.metadata.tollgate_kind, item.kind);
    assert.equal(product.metadata.tollgate_id, item.id);
  }

  // The portal switches between the two plan prices.
  const portal = await stripe.billingPortal.configurations.retrieve(
    first.env.STRIPE_PORTAL_CONFIGURATION,
  );
  const su = portal.features.subscription_update;
  assert.equal(su.enabled, true);
  assert.deepEqual(su.default_allowed_updates, ["price"]);
  // Upgrades invoiced at once, downgrades at the end of the period.
  assert.equal(su.proration_behavior, "always_invoice");
  assert.deepEqual(su.schedule_at_period_end.conditions, [{ type: "decreasing_item_amount" }]);
  assertSameSet(su.products?.flatMap((p) => p.prices) ?? [], [
    first.env.STRIPE_PRICE_STARTER,
    first.env.STRIPE_PRICE_PRO,
  ]);
  assert.equal(portal.features.payment_method_update.enabled, true);
  assert.equal(portal.features.invoice_history.enabled, true);
  assert.equal(portal.features.subscription_cancel.enabled, true);
  assert.equal(portal.features.subscription_cancel.mode, "at_period_end");
  assert.equal(portal.features.customer_update.enabled, false);
  assert.equal(portal.default_return_url, DEFAULT_DASHBOARD_URL);
  assert.ok(portal.business_profile.headline);
  assert.deepEqual(portal.metadata, { tollgate: "portal" });

  // Exactly one endpoint, with exactly the event list, at the pinned API version.
  const endpoints = await stripe.webhookEndpoints.list({ limit: 100 });
  assert.equal(endpoints.data.length, 1);
  const [endpoint] = endpoints.data;
  assert.equal(endpoint.id, first.webhookEndpoint.id);
  assert.equal(endpoint.url, `${DEFAULT_GATEWAY_URL}/webhooks/stripe`);
  assert.equal(endpoint.enabled_events.length, WEBHOOK_EVENTS.length);
  assertSameSet(endpoint.enabled_events, WEBHOOK_EVENTS);
  assert.equal(endpoint.api_version, Stripe.API_VERSION);

  // The human output: paste-ready lines.
  const human = await run([]);
  assert.equal(human.code, 0, human.stderr);
  for (const [name, value] of Object.entries(firstIds)) {
    assert.ok(human.stdout.includes(`\n${name}=${value}\n`), `${name}=${value}`);
  }
  assert.match(human.stdout, /STRIPE_WEBHOOK_SECRET: unchanged/);
  assert.match(human.stdout, /wrangler secret put STRIPE_WEBHOOK_SECRET/);
  assert.match(human.stdout, /\[vars\]/);
});

test("a price whose amount was changed in Stripe is restored with transfer_lookup_key", async () => {
  const first = await runJson();
  const original = first.env.STRIPE_PRICE_STARTER;
  const starter = first.prices.find((p) => p.lookupKey === "tollgate_plan_starter");
  assert.ok(starter);

  // Someone moves the lookup key to a $25 price.
  const edited = await stripe.prices.create({
    product: starter.productId,
    currency: "usd",
    unit_amount: 2500,
    recurring: { interval: "month" },
    lookup_key: "tollgate_plan_starter",
    transfer_lookup_key: true,
  });

  await clearRequests();
  const second = await runJson();
  const restored = second.prices.find((p) => p.lookupKey === "tollgate_plan_starter");
  assert.ok(restored);
  assert.equal(restored.action, "replaced");
  assert.equal(restored.replacedPriceId, edited.id);
  assert.notEqual(restored.priceId, edited.id);
  assert.notEqual(restored.priceId, original);
  assert.equal(restored.productId, starter.productId, "the plan keeps its product");
  assert.match(restored.reasons.join(" "), /unit_amount 2500/);
  assert.ok(
    second.warnings.some((w) => w.includes(edited.id) && w.includes("transfer_lookup_key")),
  );
  assert.equal(second.env.STRIPE_PRICE_STARTER, restored.priceId);

  const writes = (await requests()).filter((r) => r.method !== "GET");
  const priceCreates = writes.filter((r) => r.path === "/v1/prices");
  assert.equal(priceCreates.length, 1);
  assert.equal(priceCreates[0].params.transfer_lookup_key, "true");
  assert.equal(priceCreates[0].params.unit_amount, "1900");
  assert.equal(writes.filter((r) => r.path === "/v1/products").length, 0);

  // The lookup key holds the table's amount again; the other prices did not move.
  const listed = await tableLookupKeys();
  const now = listed.data.find((p) => p.lookup_key === "tollgate_plan_starter");
  assert.equal(now?.id, restored.priceId);
  assert.equal(now?.unit_amount, 1900);
  assert.equal(now?.recurring?.interval, "month");
  for (const p of second.prices.filter((x) => x.lookupKey !== "tollgate_plan_starter")) {
    assert.equal(p.action, "found");
    assert.equal(p.priceId, first.env[p.envName]);
  }

  // The portal now offers the restored price, updated in place.
  assert.equal(second.portalConfiguration.action, "updated");
  assert.equal(second.portalConfiguration.id, first.env.STRIPE_PORTAL_CONFIGURATION);
  const portal = await stripe.billingPortal.configurations.retrieve(second.portalConfiguration.id);
  assertSameSet(portal.features.subscription_update.products?.flatMap((p) => p.prices) ?? [], [
    restored.priceId,
    first.env.STRIPE_PRICE_PRO,
  ]);

  // And a third run is quiet again.
  await clearRequests();
  const third = await runJson();
  assert.deepEqual(
    (await requests()).filter((r) => r.method !== "GET"),
    [],
  );
  assert.equal(third.env.STRIPE_PRICE_STARTER, restored.priceId);
});

test("an endpoint with other events is updated in place to exactly the list", async () => {
  const first = await runJson();
  const id = /** @type {string} */ (first.webhookEndpoint.id);
  await stripe.webhookEndpoints.update(id, { enabled_events: ["invoice.paid", "charge.refunded"] });

  const second = await runJson();
  assert.equal(second.webhookEndpoint.action, "updated");
  assert.equal(second.webhookEndpoint.id, id);
  assert.ok(second.webhookEndpoint.changes.includes("-charge.refunded"));
  assert.ok(second.webhookEndpoint.changes.includes("+setup_intent.succeeded"));
  const endpoint = await stripe.webhookEndpoints.retrieve(id);
  assertSameSet(endpoint.enabled_events, WEBHOOK_EVENTS);
  assert.equal((await stripe.webhookEndpoints.list()).data.length, 1);
});

test("a portal configuration edited in the Dashboard is put back in place", async () => {
  const first = await runJson();
  const id = first.env.STRIPE_PORTAL_CONFIGURATION;
  await stripe.billingPortal.configurations.update(id, {
    features: { subscription_cancel: { enabled: true, mode: "immediately" } },
    default_return_url: "https://example.com/elsewhere",
  });
  const second = await runJson();
  assert.equal(second.portalConfiguration.action, "updated");
  assert.equal(second.portalConfiguration.id, id);
  assertSameSet(second.portalConfiguration.changes, [
    "default_return_url",
    "features.subscription_cancel",
  ]);
  const portal = await stripe.billingPortal.configurations.retrieve(id);
  assert.equal(portal.features.subscription_cancel.mode, "at_period_end");
  assert.equal(portal.default_return_url, DEFAULT_DASHBOARD_URL);
  assert.equal((await stripe.billingPortal.configurations.list()).data.length, 1);
});

test("a portal configuration with the old proration settings is updated in place", async () => {
  const first = await runJson();
  const id = first.env.STRIPE_PORTAL_CONFIGURATION;
  // What stripe:setup configured before upgrades were invoiced at once.
  await stripe.billingPortal.configurations.update(id, {
    features: {
      subscription_update: {
        proration_behavior: "create_prorations",
        schedule_at_period_end: { conditions: [] },
      },
    },
  });
  const second = await runJson();
  assert.equal(second.portalConfiguration.action, "updated");
  assert.equal(second.portalConfiguration.id, id);
  assert.deepEqual(second.portalConfiguration.changes, ["features.subscription_update"]);
  const su = (await stripe.billingPortal.configurations.retrieve(id)).features.subscription_update;
  assert.equal(su.proration_behavior, "always_invoice");
  assert.deepEqual(su.schedule_at_period_end.conditions, [{ type: "decreasing_item_amount" }]);
  const third = await runJson();
  assert.equal(third.portalConfiguration.action, "found");
});

test("GATEWAY_URL and DASHBOARD_URL are used", async () => {
  const { code, stdout, stderr } = await run(["--json"], {
    STRIPE_API_URL: server.url,
    STRIPE_SECRET_KEY: KEY,
    GATEWAY_URL: "https://gw.example.com/",
    DASHBOARD_URL: "https://gw.example.com/account/billing",
  });
  assert.equal(code, 0, stderr);
  const result = /** @type {SetupResult} */ (JSON.parse(stdout));
  assert.equal(result.webhookEndpoint.url, "https://gw.example.com/webhooks/stripe");
  const portal = await stripe.billingPortal.configurations.retrieve(
    result.env.STRIPE_PORTAL_CONFIGURATION,
  );
  assert.equal(portal.default_return_url, "https://gw.example.com/account/billing");
});

test("a Stripe error exits non-zero with a clear message", async () => {
  await fetch(`${server.url}/_test/faults`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      faults: [{ method: "POST", path: "/v1/products", kind: "500", times: 10 }],
    }),
  });
  const { code, stdout, stderr } = await run([]);
  assert.equal(code, 1, stdout);
  assert.match(stderr, /stripe-setup: Stripe error \(StripeAPIError/);
  assert.match(stderr, /re-running is safe/);

  // Once Stripe answers again, the re-run completes.
  await fetch(`${server.url}/_test/faults`, { method: "DELETE" });
  const result = await runJson();
  assert.equal(result.prices.length, 5);
  const state = await (await fetch(`${server.url}/_test/state`)).json();
  assert.equal(state.counts.products, 5);
});

test("an archived table price is reactivated, keeping its id", async () => {
  const first = await runJson();
  const id = first.env.STRIPE_PRICE_PRO;
  await stripe.prices.update(id, { active: false });
  const second = await runJson();
  const pro = second.prices.find((p) => p.lookupKey === "tollgate_plan_pro");
  assert.equal(pro?.action, "found");
  assert.equal(pro?.priceId, id);
  assert.match(pro?.notes.join(" ") ?? "", /reactivated/);
  assert.equal((await stripe.prices.retrieve(id)).active, true);
});

test("PRODUCT_NAME and COMPANY_NAME name the business in products and the portal headline", () => {
  const brand = brandFrom({ PRODUCT_NAME: "Acme Tagger", COMPANY_NAME: "Acme Corp" });
  const items = catalog(brand);
  for (const item of items) {
    assert.match(item.productName, /^Acme Corp /);
    assert.match(item.productDescription, /Acme Tagger credits/);
  }
  assert.equal(
    portalParams([], "https://acme.io/account/billing", brand).business_profile?.headline,
    "Acme Corp: manage your Acme Tagger plan and billing",
  );
  // Unset or blank: the local defaults, as before.
  assert.deepEqual(brandFrom({ PRODUCT_NAME: " " }), DEFAULT_BRAND);
  assert.equal(catalog()[0]?.productName, "Tollgate Starter");
  assert.equal(portalParams([], "x").business_profile?.headline, PORTAL_HEADLINE);
});
