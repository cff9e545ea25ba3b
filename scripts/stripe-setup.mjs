// @ts-check
/**
 * Creates, or finds when they already exist, every Stripe object the gateway needs, and prints
 * the values to configure. Safe to run again: objects are found by lookup key (prices), by
 * metadata (products, the portal configuration) and by url (the webhook endpoint), creates use
 * deterministic idempotency keys, and a run that finds everything as it should be only reads.
 *
 *   STRIPE_SECRET_KEY=sk_test_… npm run stripe:setup                  # real Stripe
 *   STRIPE_API_URL=http://127.0.0.1:12111 STRIPE_SECRET_KEY=sk_test_x npm run stripe:setup
 *   npm run stripe:setup -- --dry-run       # only reads; lists what would be created/changed
 *   npm run stripe:setup -- --json          # one JSON object on stdout (for scripts)
 *   npm run stripe:setup -- --skip-webhook  # prices and portal only
 *
 * Env: STRIPE_SECRET_KEY (required), STRIPE_API_URL (unset = api.stripe.com),
 * GATEWAY_URL (default http://127.0.0.1:8787; the endpoint is `${GATEWAY_URL}/webhooks/stripe`),
 * DASHBOARD_URL (default http://127.0.0.1:8787/account/billing; the portal's return url).
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Stripe from "stripe";

// ---------------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------------

/*
 * A mirror of the paid part of src/pricing.ts, the one pricing table. It is repeated here
 * because this script is plain Node (v20 cannot load TypeScript without a loader), and
 * scripts/stripe-setup.test.mjs fails whenever the two disagree (it compiles src/pricing.ts
 * with the TypeScript compiler and compares the values). Change src/pricing.ts first.
 */

export const CURRENCY = "usd";

/** @typedef {{ id: string, name: string, monthlyCredits: number, priceCents: number }} PlanRow */
/** @typedef {{ id: string, credits: number, priceCents: number }} PackageRow */

/** @type {ReadonlyArray<PlanRow>} The paid plans (free has no Stripe price). */
export const PLANS = [
  { id: "starter", name: "Starter", monthlyCredits: 3_000, priceCents: 1_900 },
  { id: "pro", name: "Pro", monthlyCredits: 8_000, priceCents: 3_900 },
];

/** @type {ReadonlyArray<PackageRow>} Credit packages: one-time prices, billed as invoice items. */
export const PACKAGES = [
  { id: "credits_1000", credits: 1_000, priceCents: 700 },
  { id: "credits_3000", credits: 3_000, priceCents: 1_700 },
  { id: "credits_9000", credits: 9_000, priceCents: 3_700 },
];

/**
 * Every event the gateway's webhook endpoint subscribes to (POST /webhooks/stripe). The one
 * list: documentation should cite this constant rather than copy it.
 */
export const WEBHOOK_EVENTS = /** @type {const} */ ([
  "checkout.session.completed",
  "invoice.paid",
  "invoice.payment_failed",
  "invoice.payment_action_required",
  "invoice.voided",
  "invoice.marked_uncollectible",
  "invoice.finalized",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "payment_method.attached",
  "payment_method.detached",
  "customer.updated",
  "setup_intent.succeeded",
]);

export const WEBHOOK_PATH = "/webhooks/stripe";
export const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8787";
export const DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8787/account/billing";
export const PORTAL_METADATA = { tollgate: "portal" };
/**
 * How the business is named in Stripe (product names and descriptions, the portal's headline):
 * PRODUCT_NAME and COMPANY_NAME, as wrangler.toml names them for the gateway's pages and emails.
 * @typedef {{ product: string, company: string }} Brand
 */
/** @type {Brand} */
export const DEFAULT_BRAND = { product: "Product Classifier", company: "Tollgate" };

/** @param {{ PRODUCT_NAME?: string, COMPANY_NAME?: string }} env @returns {Brand} */
export function brandFrom(env) {
  return {
    product: env.PRODUCT_NAME?.trim() || DEFAULT_BRAND.product,
    company: env.COMPANY_NAME?.trim() || DEFAULT_BRAND.company,
  };
}

/** @param {Brand} brand */
export const portalHeadline = (brand) =>
  `${brand.company}: manage your ${brand.product} plan and billing`;
export const PORTAL_HEADLINE = portalHeadline(DEFAULT_BRAND);

/**
 * @typedef {object} CatalogItem
 * @property {"plan" | "package"} kind
 * @property {string} id            tollgate_id: the plan or package id of src/pricing.ts
 * @property {string} lookupKey     tollgate_plan_<id> | tollgate_package_<id>
 * @property {string} envName       STRIPE_PRICE_<ID>
 * @property {number} unitAmount    cents
 * @property {string} currency
 * @property {"month" | null} interval  month for plans, null (one-time) for packages
 * @property {string} productName
 * @property {string} productDescription
 * @property {string} nickname
 * @property {Record<string, string>} metadata  on the product and on the price
 */

/** @param {number} n */
const grouped = (n) => n.toLocaleString("en-US");

/** @param {Brand} [brand] @returns {CatalogItem[]} */
export function catalog(brand = DEFAULT_BRAND) {
  /** @type {CatalogItem[]} */
  const items = [];
  for (const plan of PLANS) {
    items.push({
      kind: "plan",
      id: plan.id,
      lookupKey: `tollgate_plan_${plan.id}`,
      envName: `STRIPE_PRICE_${plan.id.toUpperCase()}`,
      unitAmount: plan.priceCents,
      currency: CURRENCY,
      interval: "month",
      productName: `${brand.company} ${plan.name}`,
      productDescription: `${grouped(plan.monthlyCredits)} ${brand.product} credits a month`,
      nickname: `${plan.name} monthly`,
      metadata: {
        tollgate_kind: "plan",
        tollgate_id: plan.id,
        tollgate_monthly_credits: String(plan.monthlyCredits),
      },
    });
  }
  for (const pkg of PACKAGES) {
    items.push({
      kind: "package",
      id: pkg.id,
      lookupKey: `tollgate_package_${pkg.id}`,
      envName: `STRIPE_PRICE_${pkg.id.toUpperCase()}`,
      unitAmount: pkg.priceCents,
      currency: CURRENCY,
      interval: null,
      productName: `${brand.company} ${grouped(pkg.credits)} credits`,
      productDescription: `${grouped(pkg.credits)} ${brand.product} credits (one-time purchase)`,
      nickname: `${grouped(pkg.credits)} credits`,
      metadata: {
        tollgate_kind: "package",
        tollgate_id: pkg.id,
        tollgate_credits: String(pkg.credits),
      },
    });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** @param {unknown} value */
const shortHash = (value) =>
  createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);

/** @param {number} cents @param {string} currency */
const money = (cents, currency) =>
  `${currency === "usd" ? "$" : `${currency.toUpperCase()} `}${(cents / 100).toFixed(2)}`;

/**
 * @param {string | Stripe.Product | Stripe.DeletedProduct} product
 * @returns {Stripe.Product | null} the expanded, not deleted product
 */
const expandedProduct = (product) =>
  typeof product === "object" && product && !("deleted" in product && product.deleted)
    ? /** @type {Stripe.Product} */ (product)
    : null;

/**
 * @param {Record<string, string> | null | undefined} actual
 * @param {Record<string, string>} wanted
 */
const hasMetadata = (actual, wanted) => Object.entries(wanted).every(([k, v]) => actual?.[k] === v);

/** @param {ReadonlyArray<string>} a @param {ReadonlyArray<string>} b */
const sameSet = (a, b) =>
  a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");

/**
 * Why a price found by its lookup key is not the table's price (empty: it is).
 * @param {Stripe.Price} price
 * @param {CatalogItem} item
 */
export function priceMismatches(price, item) {
  const reasons = [];
  if (price.unit_amount !== item.unitAmount)
    reasons.push(`unit_amount ${price.unit_amount}, the table says ${item.unitAmount}`);
  if (price.currency !== item.currency)
    reasons.push(`currency ${price.currency}, the table says ${item.currency}`);
  const interval = price.recurring
    ? price.recurring.interval_count === 1
      ? price.recurring.interval
      : `${price.recurring.interval_count} ${price.recurring.interval}`
    : null;
  if (interval !== item.interval)
    reasons.push(
      `${interval ? `recurring ${interval}` : "one-time"}, the table says ${item.interval ? `recurring ${item.interval}` : "one-time"}`,
    );
  const product = expandedProduct(price.product);
  if (!product) reasons.push("its product is deleted");
  return reasons;
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/**
 * @typedef {object} PriceResult
 * @property {"plan" | "package"} kind
 * @property {string} tollgateId
 * @property {string} lookupKey
 * @property {string} envName
 * @property {"found" | "created" | "replaced" | "would_create" | "would_replace"} action
 * @property {string} priceId
 * @property {string} productId
 * @property {number} unitAmount
 * @property {string} currency
 * @property {"month" | null} interval
 * @property {string | null} replacedPriceId  the price that held the lookup key before
 * @property {string[]} reasons               why it was replaced
 * @property {string[]} notes                 other changes (metadata, product reactivated)
 */

/**
 * @typedef {object} PortalResult
 * @property {"found" | "created" | "updated" | "would_create" | "would_update"} action
 * @property {string} id
 * @property {string[]} changes
 */

/**
 * @typedef {object} WebhookResult
 * @property {"found" | "created" | "updated" | "would_create" | "would_update" | "skipped"} action
 * @property {string | null} id
 * @property {string} url
 * @property {string[]} enabledEvents
 * @property {string | null} apiVersion
 * @property {string | null} secret  only when created by this run
 * @property {string[]} changes
 */

/**
 * @typedef {object} SetupResult
 * @property {boolean} dryRun
 * @property {{ api: string, mode: "test" | "live", apiVersion: string }} stripe
 * @property {PriceResult[]} prices
 * @property {PortalResult} portalConfiguration
 * @property {WebhookResult} webhookEndpoint
 * @property {Record<string, string>} env    the values to configure, by variable name
 * @property {string[]} warnings
 */

/**
 * @typedef {object} SetupOptions
 * @property {Stripe} stripe
 * @property {boolean} [dryRun]
 * @property {boolean} [skipWebhook]
 * @property {string} gatewayUrl
 * @property {string} dashboardUrl
 * @property {Brand} [brand]  names in products and the portal (default: DEFAULT_BRAND)
 * @property {string} apiLabel
 * @property {"test" | "live"} mode
 * @property {(line: string) => void} [log]
 */

/**
 * @param {SetupOptions} options
 * @returns {Promise<SetupResult>}
 */
export async function setup(options) {
  const { stripe, dryRun = false } = options;
  const log = options.log ?? (() => {});
  /** @type {string[]} */
  const warnings = [];
  const warn = (/** @type {string} */ message) => {
    warnings.push(message);
    log(`  ! ${message}`);
  };

  const brand = options.brand ?? DEFAULT_BRAND;
  const prices = await ensurePrices(stripe, catalog(brand), dryRun, log, warn);
  const portalConfiguration = await ensurePortal(
    stripe,
    prices.filter((p) => p.kind === "plan"),
    options.dashboardUrl,
    brand,
    dryRun,
    log,
    warn,
  );
  const webhookUrl = `${options.gatewayUrl.replace(/\/+$/, "")}${WEBHOOK_PATH}`;
  /** @type {WebhookResult} */
  const webhookEndpoint = options.skipWebhook
    ? {
        action: "skipped",
        id: null,
        url: webhookUrl,
        enabledEvents: [...WEBHOOK_EVENTS],
        apiVersion: null,
        secret: null,
        changes: [],
      }
    : await ensureWebhook(stripe, webhookUrl, dryRun, log, warn);

  /** @type {Record<string, string>} */
  const env = {};
  for (const p of prices) env[p.envName] = p.priceId;
  env.STRIPE_PORTAL_CONFIGURATION = portalConfiguration.id;
  if (webhookEndpoint.secret) env.STRIPE_WEBHOOK_SECRET = webhookEndpoint.secret;

  return {
    dryRun,
    stripe: { api: options.apiLabel, mode: options.mode, apiVersion: Stripe.API_VERSION },
    prices,
    portalConfiguration,
    webhookEndpoint,
    env,
    warnings,
  };
}

/**
 * @param {Stripe} stripe
 * @param {CatalogItem[]} items
 * @param {boolean} dryRun
 * @param {(line: string) => void} log
 * @param {(message: string) => void} warn
 * @returns {Promise<PriceResult[]>}
 */
async function ensurePrices(stripe, items, dryRun, log, warn) {
  // One list call finds them all (lookup_keys takes up to 10).
  const listed = await stripe.prices.list({
    lookup_keys: items.map((i) => i.lookupKey),
    expand: ["data.product"],
    limit: 100,
  });
  /** @type {Map<string, Stripe.Price>} */
  const byKey = new Map();
  for (const price of listed.data) if (price.lookup_key) byKey.set(price.lookup_key, price);

  /** @type {Stripe.Product[] | null} read once, only when a product must be looked for */
  let products = null;
  const allProducts = async () => {
    products ??= await stripe.products.list({ limit: 100 }).autoPagingToArray({ limit: 10_000 });
    return products;
  };

  /** @type {PriceResult[]} */
  const results = [];
  for (const item of items) {
    const existing = byKey.get(item.lookupKey);
    /** @type {string[]} */
    const notes = [];
    const base = {
      kind: item.kind,
      tollgateId: item.id,
      lookupKey: item.lookupKey,
      envName: item.envName,
      unitAmount: item.unitAmount,
      currency: item.currency,
      interval: item.interval,
      notes,
    };
    const reasons = existing ? priceMismatches(existing, item) : [];

    if (existing && reasons.length === 0) {
      const product = /** @type {Stripe.Product} */ (expandedProduct(existing.product));
      if (!product.active) {
        notes.push(
          `product ${product.id} was archived; ${dryRun ? "would reactivate" : "reactivated"}`,
        );
        if (!dryRun) await stripe.products.update(product.id, { active: true });
      }
      if (!existing.active) {
        // Archived, but the table's price: reactivating keeps the id the gateway is configured with.
        notes.push(`price was archived; ${dryRun ? "would reactivate" : "reactivated"}`);
        if (!dryRun) await stripe.prices.update(existing.id, { active: true });
      }
      if (!hasMetadata(existing.metadata, item.metadata)) {
        notes.push(`price metadata ${dryRun ? "would be set" : "set"}`);
        if (!dryRun) await stripe.prices.update(existing.id, { metadata: item.metadata });
      }
      results.push({
        ...base,
        action: "found",
        priceId: existing.id,
        productId: product.id,
        replacedPriceId: null,
        reasons: [],
      });
      log(`  price   ${item.lookupKey.padEnd(30)} found     ${existing.id}  ${describe(item)}`);
      for (const note of notes) log(`          ${note}`);
      continue;
    }

    // The product: the existing price's when it is ours, else one found by metadata, else new.
    const ownProduct = existing ? expandedProduct(existing.product) : null;
    /** @type {string | null} */
    let productId =
      ownProduct && hasMetadata(ownProduct.metadata, pick(item.metadata)) ? ownProduct.id : null;
    if (productId && ownProduct && !ownProduct.active) {
      notes.push(
        `product ${productId} was archived; ${dryRun ? "would reactivate" : "reactivated"}`,
      );
      if (!dryRun) await stripe.products.update(productId, { active: true });
    }
    if (!productId) {
      const candidates = (await allProducts()).filter((p) =>
        hasMetadata(p.metadata, pick(item.metadata)),
      );
      const found = candidates.find((p) => p.active) ?? candidates[0];
      if (found) {
        productId = found.id;
        if (!found.active) {
          notes.push(
            `product ${found.id} was archived; ${dryRun ? "would reactivate" : "reactivated"}`,
          );
          if (!dryRun) await stripe.products.update(found.id, { active: true });
        }
      } else if (dryRun) {
        notes.push(`would create product "${item.productName}"`);
      } else {
        const product = await stripe.products.create(
          {
            name: item.productName,
            description: item.productDescription,
            metadata: item.metadata,
          },
          { idempotencyKey: `tollgate-setup:product:${item.lookupKey}` },
        );
        productId = product.id;
        notes.push(`created product ${product.id} "${item.productName}"`);
      }
    }

    const replaced = existing ? existing.id : null;
    let priceId = `<new price ${item.lookupKey}>`;
    if (!dryRun) {
      /** @type {Stripe.PriceCreateParams} */
      const params = {
        product: /** @type {string} */ (productId),
        currency: item.currency,
        unit_amount: item.unitAmount,
        lookup_key: item.lookupKey,
        nickname: item.nickname,
        metadata: item.metadata,
      };
      if (item.interval) params.recurring = { interval: item.interval };
      // Prices are immutable: a different amount is a new price that takes the lookup key over.
      if (replaced) params.transfer_lookup_key = true;
      const idempotencyKey = `tollgate-setup:price:${item.lookupKey}:${item.unitAmount}${
        replaced ? `:replaces:${replaced}` : ""
      }`;
      const price = await stripe.prices.create(params, { idempotencyKey });
      if (price.lookup_key !== item.lookupKey) {
        // Only possible when an earlier run's create (same idempotency key, kept 24 hours by
        // Stripe) is replayed after its lookup key was moved away by hand.
        throw new Error(
          `Stripe answered the create of ${item.lookupKey} with ${price.id}, which no longer holds that lookup key (a replay of an earlier run's request under idempotency key ${idempotencyKey}). Move the lookup key back to ${price.id}, or wait 24 hours and re-run.`,
        );
      }
      priceId = price.id;
    }
    results.push({
      ...base,
      action: replaced
        ? dryRun
          ? "would_replace"
          : "replaced"
        : dryRun
          ? "would_create"
          : "created",
      priceId,
      productId: productId ?? `<new product ${item.lookupKey}>`,
      replacedPriceId: replaced,
      reasons,
    });
    const verb = replaced
      ? dryRun
        ? "would replace"
        : "replaced "
      : dryRun
        ? "would create"
        : "created  ";
    log(`  price   ${item.lookupKey.padEnd(30)} ${verb} ${priceId}  ${describe(item)}`);
    for (const note of notes) log(`          ${note}`);
    if (replaced) {
      warn(
        `${item.lookupKey}: ${replaced} does not match the table (${reasons.join("; ")}). Prices are immutable, so ${
          dryRun ? "a new price would be created" : `${priceId} was created`
        } with transfer_lookup_key and now holds the lookup key. ${replaced} stays as it is: subscriptions on it keep it, and the gateway only recognises the price id you configure.`,
      );
    }
  }
  return results;
}

/**
 * The metadata that identifies a product (kind and id; the rest may be edited in Stripe).
 * @param {Record<string, string>} metadata
 */
const pick = (metadata) => ({
  tollgate_kind: metadata.tollgate_kind ?? "",
  tollgate_id: metadata.tollgate_id ?? "",
});

/** @param {CatalogItem} item */
const describe = (item) =>
  `${money(item.unitAmount, item.currency)}${item.interval ? `/${item.interval}` : " one-time"}`;

/**
 * The portal configuration the gateway wants.
 * @param {PriceResult[]} planPrices
 * @param {string} dashboardUrl
 * @param {Brand} [brand]
 * @returns {Stripe.BillingPortal.ConfigurationCreateParams}
 */
export function portalParams(planPrices, dashboardUrl, brand = DEFAULT_BRAND) {
  /** @type {Map<string, string[]>} */
  const byProduct = new Map();
  for (const p of planPrices)
    byProduct.set(p.productId, [...(byProduct.get(p.productId) ?? []), p.priceId]);
  return {
    business_profile: { headline: portalHeadline(brand) },
    default_return_url: dashboardUrl,
    features: {
      // The gateway owns the customer's name and email; the portal does not change them.
      customer_update: { enabled: false },
      invoice_history: { enabled: true },
      payment_method_update: { enabled: true },
      subscription_cancel: { enabled: true, mode: "at_period_end" },
      // Upgrades are invoiced and charged at once (the gateway grants their extra credits
      // when that invoice is paid); downgrades wait for the period end (Stripe schedules
      // them), so a switch up and back cannot keep the bigger plan's credits for free.
      subscription_update: {
        enabled: true,
        default_allowed_updates: ["price"],
        proration_behavior: "always_invoice",
        schedule_at_period_end: { conditions: [{ type: "decreasing_item_amount" }] },
        products: [...byProduct].map(([product, prices]) => ({ product, prices })),
      },
    },
    metadata: { ...PORTAL_METADATA },
  };
}

/**
 * What differs between an existing configuration and the wanted one (empty: nothing).
 * @param {Stripe.BillingPortal.Configuration} config
 * @param {Stripe.BillingPortal.ConfigurationCreateParams} wanted
 */
export function portalChanges(config, wanted) {
  const changes = [];
  const f = config.features;
  const w = /** @type {Required<Stripe.BillingPortal.ConfigurationCreateParams.Features>} */ (
    wanted.features
  );
  if (!config.active) changes.push("active");
  if (config.business_profile?.headline !== wanted.business_profile?.headline)
    changes.push("business_profile.headline");
  if (config.default_return_url !== wanted.default_return_url) changes.push("default_return_url");
  if (f.customer_update.enabled !== w.customer_update.enabled)
    changes.push("features.customer_update");
  if (f.invoice_history.enabled !== w.invoice_history.enabled)
    changes.push("features.invoice_history");
  if (f.payment_method_update.enabled !== w.payment_method_update.enabled)
    changes.push("features.payment_method_update");
  if (
    f.subscription_cancel.enabled !== w.subscription_cancel.enabled ||
    f.subscription_cancel.mode !== w.subscription_cancel.mode
  )
    changes.push("features.subscription_cancel");
  const su = f.subscription_update;
  const wsu = w.subscription_update;
  if (
    su.enabled !== wsu.enabled ||
    su.proration_behavior !== wsu.proration_behavior ||
    !sameSet(
      (su.schedule_at_period_end?.conditions ?? []).map((c) => c.type),
      (wsu.schedule_at_period_end?.conditions ?? []).map((c) => c.type),
    ) ||
    !sameSet(
      su.default_allowed_updates ?? [],
      /** @type {string[]} */ (wsu.default_allowed_updates),
    )
  )
    changes.push("features.subscription_update");
  const have = (su.products ?? []).map((p) => `${p.product}:${[...p.prices].sort().join(",")}`);
  const want = /** @type {Array<{product: string, prices: string[]}>} */ (wsu.products).map(
    (p) => `${p.product}:${[...p.prices].sort().join(",")}`,
  );
  if (!sameSet(have, want)) changes.push("features.subscription_update.products");
  if (!hasMetadata(config.metadata, PORTAL_METADATA)) changes.push("metadata");
  return changes;
}

/**
 * @param {Stripe} stripe
 * @param {PriceResult[]} planPrices
 * @param {string} dashboardUrl
 * @param {Brand} brand
 * @param {boolean} dryRun
 * @param {(line: string) => void} log
 * @param {(message: string) => void} warn
 * @returns {Promise<PortalResult>}
 */
async function ensurePortal(stripe, planPrices, dashboardUrl, brand, dryRun, log, warn) {
  const wanted = portalParams(planPrices, dashboardUrl, brand);
  const configs = await stripe.billingPortal.configurations
    .list({ limit: 100 })
    .autoPagingToArray({ limit: 10_000 });
  const ours = configs.filter((c) => c.metadata?.tollgate === PORTAL_METADATA.tollgate);
  // Newest first; an active one wins over an archived one.
  const existing = ours.find((c) => c.active) ?? ours[0];
  if (ours.length > 1) {
    warn(
      `${ours.length} portal configurations carry metadata tollgate=portal (${ours.map((c) => c.id).join(", ")}); using ${existing?.id}.`,
    );
  }

  if (!existing) {
    if (dryRun) {
      log("  portal  configuration                  would create");
      return { action: "would_create", id: "<new portal configuration>", changes: [] };
    }
    const created = await stripe.billingPortal.configurations.create(wanted, {
      idempotencyKey: `tollgate-setup:portal:${shortHash(wanted)}`,
    });
    log(`  portal  configuration                  created   ${created.id}`);
    return { action: "created", id: created.id, changes: [] };
  }

  const changes = portalChanges(existing, wanted);
  if (changes.length === 0) {
    log(`  portal  configuration                  found     ${existing.id}`);
    return { action: "found", id: existing.id, changes };
  }
  if (dryRun) {
    log(
      `  portal  configuration                  would update ${existing.id} (${changes.join(", ")})`,
    );
    return { action: "would_update", id: existing.id, changes };
  }
  /** @type {Stripe.BillingPortal.ConfigurationUpdateParams} */
  const update = /** @type {Stripe.BillingPortal.ConfigurationUpdateParams} */ ({ ...wanted });
  if (!existing.active) update.active = true;
  await stripe.billingPortal.configurations.update(existing.id, update);
  log(`  portal  configuration                  updated   ${existing.id} (${changes.join(", ")})`);
  return { action: "updated", id: existing.id, changes };
}

/**
 * @param {Stripe} stripe
 * @param {string} url
 * @param {boolean} dryRun
 * @param {(line: string) => void} log
 * @param {(message: string) => void} warn
 * @returns {Promise<WebhookResult>}
 */
async function ensureWebhook(stripe, url, dryRun, log, warn) {
  const events = [...WEBHOOK_EVENTS];
  const apiVersion = Stripe.API_VERSION;
  const endpoints = await stripe.webhookEndpoints
    .list({ limit: 100 })
    .autoPagingToArray({ limit: 10_000 });
  const matching = endpoints.filter((e) => e.url === url);
  const existing = matching[0];
  if (matching.length > 1) {
    warn(
      `${matching.length} webhook endpoints have the url ${url} (${matching.map((e) => e.id).join(", ")}); using ${existing.id}. Each delivers every event, so delete the others.`,
    );
  }
  /** @type {Omit<WebhookResult, "action" | "id" | "changes">} */
  const base = { url, enabledEvents: events, apiVersion, secret: null };

  if (!existing) {
    if (dryRun) {
      log(`  webhook ${url.padEnd(30)} would create (${events.length} events)`);
      return { ...base, action: "would_create", id: "<new webhook endpoint>", changes: [] };
    }
    /** @type {Stripe.WebhookEndpointCreateParams} */
    const params = {
      url,
      enabled_events: /** @type {Stripe.WebhookEndpointCreateParams.EnabledEvent[]} */ (events),
      api_version: /** @type {Stripe.WebhookEndpointCreateParams.ApiVersion} */ (apiVersion),
      description: "Tollgate gateway",
      metadata: { tollgate: "webhook" },
    };
    const created = await stripe.webhookEndpoints.create(params, {
      idempotencyKey: `tollgate-setup:webhook_endpoint:${shortHash(params)}`,
    });
    log(`  webhook ${url.padEnd(30)} created   ${created.id} (${events.length} events)`);
    return {
      ...base,
      action: "created",
      id: created.id,
      secret: created.secret ?? null,
      changes: [],
    };
  }

  const result = { ...base, apiVersion: existing.api_version ?? null };
  if (existing.status !== "enabled") {
    warn(
      `webhook endpoint ${existing.id} is ${existing.status}: Stripe delivers nothing to it. Enable it in the Dashboard.`,
    );
  }
  if (existing.api_version !== apiVersion) {
    warn(
      `webhook endpoint ${existing.id} renders events as API version ${existing.api_version ?? "(the account default)"}, not the SDK's ${apiVersion}; an endpoint's version cannot be changed: delete it and re-run to recreate it (that prints a new signing secret).`,
    );
  }
  if (sameSet(existing.enabled_events, events)) {
    log(`  webhook ${url.padEnd(30)} found     ${existing.id} (${events.length} events)`);
    return { ...result, action: "found", id: existing.id, changes: [] };
  }
  const added = events.filter((e) => !existing.enabled_events.includes(e));
  const removed = existing.enabled_events.filter((e) => !events.includes(/** @type {never} */ (e)));
  const changes = [...added.map((e) => `+${e}`), ...removed.map((e) => `-${e}`)];
  if (dryRun) {
    log(`  webhook ${url.padEnd(30)} would update ${existing.id} (${changes.join(" ")})`);
    return { ...result, action: "would_update", id: existing.id, changes };
  }
  await stripe.webhookEndpoints.update(existing.id, {
    enabled_events: /** @type {Stripe.WebhookEndpointUpdateParams.EnabledEvent[]} */ (events),
  });
  log(`  webhook ${url.padEnd(30)} updated   ${existing.id} (${changes.join(" ")})`);
  return { ...result, action: "updated", id: existing.id, changes };
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

/**
 * The SDK as the gateway builds it (src/stripe/client.ts), with Node's default http
 * client: STRIPE_API_URL, when set, gives host, port and protocol.
 * @param {string} key
 * @param {string | undefined} apiUrl
 */
export function stripeClient(key, apiUrl) {
  /** @type {Stripe.StripeConfig} */
  const config = {
    // Safe: every create carries a deterministic idempotency key, updates are idempotent.
    maxNetworkRetries: 2,
    timeout: 30_000,
  };
  if (apiUrl) {
    const url = new URL(apiUrl);
    config.host = url.hostname;
    config.protocol = url.protocol === "https:" ? "https" : "http";
    config.port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
  }
  return new Stripe(key, config);
}

/** @param {SetupResult} result */
export function formatSummary(result) {
  const lines = [""];
  lines.push(
    result.dryRun
      ? "Dry run: nothing was written. With these objects created, configure:"
      : "Configure the gateway with:",
  );
  lines.push("");
  for (const [name, value] of Object.entries(result.env)) lines.push(`${name}=${value}`);
  const hook = result.webhookEndpoint;
  if (hook.action === "skipped") {
    lines.push("# STRIPE_WEBHOOK_SECRET: webhook endpoint skipped (--skip-webhook)");
  } else if (!hook.secret) {
    lines.push(
      hook.action.startsWith("would")
        ? `# STRIPE_WEBHOOK_SECRET: printed when the endpoint is created (${hook.url})`
        : `# STRIPE_WEBHOOK_SECRET: unchanged: the whsec_… printed when ${hook.id} was created (Stripe returns it only then), also shown in the Dashboard under Developers > Webhooks`,
    );
  }
  lines.push("");
  lines.push("Where they go:");
  lines.push("  Locally: put them in .dev.vars (one NAME=value a line).");
  lines.push("  Deployed, secrets (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET):");
  lines.push("    npx wrangler secret put STRIPE_SECRET_KEY");
  if (hook.secret)
    lines.push("    npx wrangler secret put STRIPE_WEBHOOK_SECRET   # paste the whsec_ above");
  else lines.push("    npx wrangler secret put STRIPE_WEBHOOK_SECRET");
  lines.push(
    "  The price and portal ids are not secret: add them under [vars] in wrangler.toml, e.g.",
  );
  lines.push("    [vars]");
  for (const [name, value] of Object.entries(result.env)) {
    if (name !== "STRIPE_WEBHOOK_SECRET") lines.push(`    ${name} = "${value}"`);
  }
  lines.push("  (or `wrangler secret put` them too; test and live mode ids differ.)");
  if (result.warnings.length > 0) {
    lines.push("");
    lines.push("Warnings:");
    for (const w of result.warnings) lines.push(`  - ${w}`);
  }
  return lines.join("\n");
}

/** @param {unknown} err */
export function describeError(err) {
  if (err instanceof Stripe.errors.StripeError) {
    const parts = [err.type];
    if (err.code) parts.push(`code ${err.code}`);
    if (err.param) parts.push(`param ${err.param}`);
    if (err.statusCode) parts.push(`HTTP ${err.statusCode}`);
    if (err.requestId) parts.push(`request ${err.requestId}`);
    return `Stripe error (${parts.join(", ")}): ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"]);

const USAGE = `usage: npm run stripe:setup -- [--dry-run] [--json] [--skip-webhook]

Creates or finds the Stripe products, prices, customer-portal configuration and webhook
endpoint Tollgate needs, then prints the values to configure.

env: STRIPE_SECRET_KEY (required), STRIPE_API_URL (unset = the real Stripe API),
     GATEWAY_URL (default ${DEFAULT_GATEWAY_URL}), DASHBOARD_URL (default ${DEFAULT_DASHBOARD_URL}),
     PRODUCT_NAME, COMPANY_NAME (names in products and the portal; default ${DEFAULT_BRAND.product}, ${DEFAULT_BRAND.company})`;

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {Promise<number>} the exit code
 */
export async function main(argv, env) {
  const flags = new Set(argv);
  const known = ["--dry-run", "--json", "--skip-webhook", "--help", "-h"];
  const unknown = argv.filter((a) => !known.includes(a));
  if (flags.has("--help") || flags.has("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (unknown.length > 0) {
    console.error(`stripe-setup: unknown argument ${unknown.join(" ")}\n\n${USAGE}`);
    return 2;
  }
  const json = flags.has("--json");
  const dryRun = flags.has("--dry-run");
  const skipWebhook = flags.has("--skip-webhook");

  const key = env.STRIPE_SECRET_KEY;
  if (!key) {
    console.error(
      "stripe-setup: STRIPE_SECRET_KEY is not set. Refusing to run.\n" +
        "  Use a test-mode key (sk_test_…) from the Stripe Dashboard, or any sk_… key with\n" +
        "  STRIPE_API_URL pointing at the local Stripe server (node local/stripe-server/cli.mjs).",
    );
    return 2;
  }
  const apiUrl = env.STRIPE_API_URL || undefined;
  const gatewayUrl = env.GATEWAY_URL || DEFAULT_GATEWAY_URL;
  const dashboardUrl = env.DASHBOARD_URL || DEFAULT_DASHBOARD_URL;
  for (const [name, value] of [
    ["STRIPE_API_URL", apiUrl],
    ["GATEWAY_URL", gatewayUrl],
    ["DASHBOARD_URL", dashboardUrl],
  ]) {
    if (value === undefined) continue;
    try {
      new URL(value);
    } catch {
      console.error(`stripe-setup: ${name} is not a URL: ${value}`);
      return 2;
    }
  }
  if (!apiUrl && !skipWebhook && LOCAL_HOSTS.has(new URL(gatewayUrl).hostname)) {
    console.error(
      `stripe-setup: the webhook endpoint would be ${gatewayUrl}${WEBHOOK_PATH}, which Stripe cannot reach.\n` +
        "  Set GATEWAY_URL to the gateway's public https URL, or pass --skip-webhook (for local\n" +
        "  development, `stripe listen --forward-to 127.0.0.1:8787/webhooks/stripe` prints the\n" +
        "  STRIPE_WEBHOOK_SECRET to use).",
    );
    return 2;
  }

  const mode = key.startsWith("sk_live_") || key.startsWith("rk_live_") ? "live" : "test";
  const apiLabel = apiUrl ?? "https://api.stripe.com";
  const log = json ? () => {} : (/** @type {string} */ line) => console.log(line);
  log(
    `Stripe ${apiLabel} (${mode} mode, API version ${Stripe.API_VERSION})${dryRun ? ", dry run" : ""}`,
  );
  if (mode === "live") log("  ! LIVE mode: these objects are real.");

  try {
    const result = await setup({
      stripe: stripeClient(key, apiUrl),
      dryRun,
      skipWebhook,
      gatewayUrl,
      dashboardUrl,
      apiLabel,
      mode,
      log,
      brand: brandFrom(env),
    });
    if (json) console.log(JSON.stringify(result, null, 2));
    else console.log(formatSummary(result));
    return 0;
  } catch (err) {
    console.error(`stripe-setup: ${describeError(err)}`);
    console.error(
      "  Whatever was created before the error stays; re-running is safe: it finds those objects\n" +
        "  and carries on (creates reuse deterministic idempotency keys).",
    );
    return 1;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2), process.env);
