// @ts-check
/**
 * Stripe Billing: products, prices, invoice items, invoices (draft → open → paid | void |
 * uncollectible), invoice payments and subscriptions, in the object shapes of the API version
 * stripe-node 23 pins (invoices carry `parent.subscription_details`, lines carry
 * `pricing.price_details`, payments live in `invoice.payments`).
 */
import {
  canonicalJson,
  clone,
  compileSearch,
  getCustomerOr404,
  getOr404,
  INCLUDABLE,
  invalidRequest,
  isPlainObject,
  mergeMetadata,
  newestFirst,
  newId,
  now,
  paginate,
  readBoolean,
  readEnum,
  readInteger,
  readMetadata,
  readObject,
  readString,
  readStringList,
  rejectUnknown,
  StripeHttpError,
  searchResult,
} from "./lib.mjs";
import {
  createCharge,
  failPayment,
  isTemplate,
  materializeTemplate,
  readCreatedFilter,
  storePaymentIntent,
  succeedPayment,
} from "./payments.mjs";
import { advanceSchedule } from "./schedules.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").State} State */

const LIST_PARAMS = ["ending_before", "expand", "limit", "starting_after"];

/**
 * @param {Json} params
 * @param {string} name
 */
function readCurrency(params, name, required = false) {
  const currency = readString(params, name, { required });
  if (!currency) return undefined;
  if (!/^[a-z]{3}$/i.test(currency)) {
    throw invalidRequest(`Invalid currency: ${currency.toLowerCase()}.`, { param: name });
  }
  return currency.toLowerCase();
}

/**
 * Adds `count` intervals to a unix timestamp, calendar-aware for months and years (the
 * 31st of a month lands on the last day of shorter months, as Stripe's billing anchors do).
 * @param {number} ts
 * @param {string} interval
 * @param {number} count
 */
export function addInterval(ts, interval, count) {
  if (interval === "day") return ts + count * 86_400;
  if (interval === "week") return ts + count * 7 * 86_400;
  const d = new Date(ts * 1000);
  const months = interval === "year" ? 12 * count : count;
  const target = new Date(
    Date.UTC(
      d.getUTCFullYear(),
      d.getUTCMonth() + months,
      1,
      d.getUTCHours(),
      d.getUTCMinutes(),
      d.getUTCSeconds(),
    ),
  );
  const lastDay = new Date(
    Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0),
  ).getUTCDate();
  target.setUTCDate(Math.min(d.getUTCDate(), lastDay));
  return Math.floor(target.getTime() / 1000);
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

const PRODUCT_PARAMS = [
  "active",
  "description",
  "expand",
  "images",
  "marketing_features",
  "metadata",
  "name",
  "package_dimensions",
  "shippable",
  "statement_descriptor",
  "tax_code",
  "unit_label",
  "url",
];

/**
 * @param {State} state
 * @param {{ id?: string | null, name: string, active?: boolean, description?: string | null,
 *   metadata?: Json }} fields
 */
function storeProduct(state, fields) {
  const id = fields.id ?? newId("prod_", 14);
  if (state.products.has(id)) {
    throw invalidRequest(`Product already exists.`, {
      code: "resource_already_exists",
      param: "id",
    });
  }
  const created = now();
  const product = {
    id,
    object: "product",
    active: fields.active ?? true,
    created,
    default_price: null,
    description: fields.description ?? null,
    images: [],
    livemode: false,
    marketing_features: [],
    metadata: fields.metadata ?? {},
    name: fields.name,
    package_dimensions: null,
    shippable: null,
    statement_descriptor: null,
    tax_code: null,
    type: "service",
    unit_label: null,
    updated: created,
    url: null,
  };
  state.products.set(id, product);
  return product;
}

/** @param {Ctx} ctx */
function createProduct(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [...PRODUCT_PARAMS, "default_price_data", "id", "tax_details", "type"]);
  const product = storeProduct(ctx.state, {
    id: readString(params, "id"),
    name: /** @type {string} */ (readString(params, "name", { required: true })),
    active: readBoolean(params, "active"),
    description: readString(params, "description"),
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
  });
  ctx.emit("product.created", product);
  return { body: product };
}

/** @param {Ctx} ctx */
function retrieveProduct(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getOr404(ctx.state.products, ctx.pathParams.id ?? "", "product") };
}

/** @param {Ctx} ctx */
function updateProduct(ctx) {
  const { params } = ctx;
  const product = getOr404(ctx.state.products, ctx.pathParams.id ?? "", "product");
  rejectUnknown(params, [...PRODUCT_PARAMS, "default_price", "tax_details"]);
  /** @type {Json} */
  const previous = {};
  const set = (/** @type {string} */ name, /** @type {unknown} */ value) => {
    if (value === undefined || canonicalJson(product[name]) === canonicalJson(value)) return;
    previous[name] = product[name];
    product[name] = value;
  };
  set("name", readString(params, "name") ?? undefined);
  set("description", readString(params, "description"));
  set("active", readBoolean(params, "active"));
  const metadata = readMetadata(params);
  if (metadata !== undefined) set("metadata", mergeMetadata(product.metadata, metadata));
  const defaultPrice = readString(params, "default_price");
  if (defaultPrice) getOr404(ctx.state.prices, defaultPrice, "price", "default_price");
  set("default_price", defaultPrice);
  if (Object.keys(previous).length > 0) {
    product.updated = now();
    ctx.emit("product.updated", product, previous);
  }
  return { body: product };
}

/** @param {Ctx} ctx */
function listProducts(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [...LIST_PARAMS, "active", "created", "ids", "shippable", "url"]);
  const active = readBoolean(params, "active");
  const ids = readStringList(params, "ids");
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.products,
    (p) =>
      (active === undefined || p.active === active) &&
      (!ids || ids.includes(p.id)) &&
      createdOk(p.created),
  );
  return { body: paginate(items, params, "/v1/products") };
}

/** @type {Record<string, (object: Json) => unknown>} */
const PRODUCT_SEARCH_FIELDS = {
  active: (p) => p.active,
  description: (p) => p.description,
  name: (p) => p.name,
  created: (p) => p.created,
};

/** @param {Ctx} ctx */
function searchProducts(ctx) {
  rejectUnknown(ctx.params, ["expand", "limit", "page", "query"]);
  const query = /** @type {string} */ (readString(ctx.params, "query", { required: true }));
  const matches = compileSearch(query, "products", PRODUCT_SEARCH_FIELDS);
  return {
    body: searchResult(ctx, newestFirst(ctx.state.products, matches), "/v1/products/search"),
  };
}

// ---------------------------------------------------------------------------------------------
// Prices
// ---------------------------------------------------------------------------------------------

const INTERVALS = ["day", "week", "month", "year"];

/**
 * @param {State} state
 * @param {string} id
 * @param {string} [param]
 */
export const getPrice = (state, id, param = "price") => getOr404(state.prices, id, "price", param);

/**
 * A lookup key belongs to one price per account; `transfer_lookup_key` moves it.
 * @param {Ctx} ctx
 * @param {string} lookupKey
 * @param {boolean} transfer
 * @param {Json | null} self
 */
function claimLookupKey(ctx, lookupKey, transfer, self) {
  for (const other of ctx.state.prices.values()) {
    if (other === self || other.lookup_key !== lookupKey) continue;
    if (!transfer) {
      throw invalidRequest(
        `A price (\`${other.id}\`) already uses that lookup key. Specify \`transfer_lookup_key\` to transfer the lookup key to this price.`,
        { param: "lookup_key" },
      );
    }
    other.lookup_key = null;
    ctx.emit("price.updated", other, { lookup_key: lookupKey });
  }
}

/** @param {Ctx} ctx */
function createPrice(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "active",
    "billing_scheme",
    "currency",
    "currency_options",
    "custom_unit_amount",
    "expand",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "product_data",
    "recurring",
    "tax_behavior",
    "tiers",
    "tiers_mode",
    "transfer_lookup_key",
    "transform_quantity",
    "unit_amount",
    "unit_amount_decimal",
  ]);
  const currency = /** @type {string} */ (readCurrency(params, "currency", true));
  const unitAmount = readInteger(params, "unit_amount");
  if (unitAmount === undefined) {
    throw invalidRequest("Missing required param: unit_amount.", {
      code: "parameter_missing",
      param: "unit_amount",
    });
  }
  if (unitAmount < 0) {
    throw invalidRequest("This value must be greater than or equal to 0.", {
      code: "parameter_invalid_integer",
      param: "unit_amount",
    });
  }
  const productId = readString(params, "product");
  const productData = readObject(params, "product_data", [
    "active",
    "id",
    "metadata",
    "name",
    "statement_descriptor",
    "tax_code",
    "tax_details",
    "unit_label",
  ]);
  if (productId && Object.keys(productData).length > 0) {
    throw invalidRequest("You may only specify one of these parameters: product, product_data.", {
      param: "product",
    });
  }
  if (!productId && Object.keys(productData).length === 0) {
    throw invalidRequest("Missing required param: product.", {
      code: "parameter_missing",
      param: "product",
    });
  }
  if (productId) getOr404(state.products, productId, "product", "product");
  const recurringParam = readObject(params, "recurring", [
    "interval",
    "interval_count",
    "meter",
    "trial_period_days",
    "usage_type",
  ]);
  let recurring = null;
  if (Object.keys(recurringParam).length > 0) {
    const interval = /** @type {string} */ (
      readEnum(recurringParam, "interval", INTERVALS, {
        label: "recurring[interval]",
        required: true,
      })
    );
    recurring = {
      interval,
      interval_count: readInteger(recurringParam, "interval_count") ?? 1,
      meter: null,
      trial_period_days: null,
      usage_type: "licensed",
    };
  }
  const lookupKey = readString(params, "lookup_key") ?? null;
  const transfer = readBoolean(params, "transfer_lookup_key") ?? false;
  const metadata = mergeMetadata({}, readMetadata(params) ?? {});
  const productName = productData.name;
  if (!productId && (typeof productName !== "string" || productName === "")) {
    throw invalidRequest("Missing required param: product_data[name].", {
      code: "parameter_missing",
      param: "product_data[name]",
    });
  }
  if (lookupKey) claimLookupKey(ctx, lookupKey, transfer, null);

  let product = productId;
  if (!product) {
    const created = storeProduct(state, {
      id: readString(productData, "id"),
      name: productName,
      active: readBoolean(productData, "active"),
      metadata: mergeMetadata({}, readMetadata(productData) ?? {}),
    });
    ctx.emit("product.created", created);
    product = created.id;
  }
  const id = newId("price_");
  const price = {
    id,
    object: "price",
    active: readBoolean(params, "active") ?? true,
    billing_scheme: "per_unit",
    created: now(),
    currency,
    custom_unit_amount: null,
    livemode: false,
    lookup_key: lookupKey,
    metadata,
    nickname: readString(params, "nickname") ?? null,
    product,
    recurring,
    tax_behavior: readString(params, "tax_behavior") ?? "unspecified",
    tiers_mode: null,
    transform_quantity: null,
    type: recurring ? "recurring" : "one_time",
    unit_amount: unitAmount,
    unit_amount_decimal: String(unitAmount),
  };
  state.prices.set(id, price);
  ctx.emit("price.created", price);
  return { body: price };
}

/** @param {Ctx} ctx */
function retrievePrice(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getPrice(ctx.state, ctx.pathParams.id ?? "", "id") };
}

/** @param {Ctx} ctx */
function updatePrice(ctx) {
  const { params } = ctx;
  const price = getPrice(ctx.state, ctx.pathParams.id ?? "", "id");
  rejectUnknown(params, [
    "active",
    "currency_options",
    "expand",
    "lookup_key",
    "metadata",
    "nickname",
    "tax_behavior",
    "transfer_lookup_key",
  ]);
  const lookupKey = readString(params, "lookup_key");
  const transfer = readBoolean(params, "transfer_lookup_key") ?? false;
  const active = readBoolean(params, "active");
  const nickname = readString(params, "nickname");
  const metadata = readMetadata(params);
  const nextMetadata = metadata === undefined ? undefined : mergeMetadata(price.metadata, metadata);
  if (lookupKey) claimLookupKey(ctx, lookupKey, transfer, price);
  /** @type {Json} */
  const previous = {};
  const set = (/** @type {string} */ name, /** @type {unknown} */ value) => {
    if (value === undefined || canonicalJson(price[name]) === canonicalJson(value)) return;
    previous[name] = price[name];
    price[name] = value;
  };
  set("lookup_key", lookupKey);
  set("active", active);
  set("nickname", nickname);
  set("metadata", nextMetadata);
  if (Object.keys(previous).length > 0) ctx.emit("price.updated", price, previous);
  return { body: price };
}

/** @param {Ctx} ctx */
function listPrices(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    ...LIST_PARAMS,
    "active",
    "created",
    "currency",
    "lookup_keys",
    "product",
    "recurring",
    "type",
  ]);
  const active = readBoolean(params, "active");
  const currency = readCurrency(params, "currency");
  const product = readString(params, "product");
  const type = readEnum(params, "type", ["one_time", "recurring"]);
  const lookupKeys = readStringList(params, "lookup_keys");
  const recurring = readObject(params, "recurring", ["interval", "meter", "usage_type"]);
  const interval = readString(recurring, "interval");
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.prices,
    (p) =>
      (active === undefined || p.active === active) &&
      (!currency || p.currency === currency) &&
      (!product || p.product === product) &&
      (!type || p.type === type) &&
      (!lookupKeys || lookupKeys.includes(p.lookup_key)) &&
      (!interval || p.recurring?.interval === interval) &&
      createdOk(p.created),
  );
  return { body: paginate(items, params, "/v1/prices") };
}

/** @type {Record<string, (object: Json) => unknown>} */
const PRICE_SEARCH_FIELDS = {
  active: (p) => p.active,
  currency: (p) => p.currency,
  lookup_key: (p) => p.lookup_key,
  product: (p) => p.product,
  type: (p) => p.type,
  created: (p) => p.created,
};

/** @param {Ctx} ctx */
function searchPrices(ctx) {
  rejectUnknown(ctx.params, ["expand", "limit", "page", "query"]);
  const query = /** @type {string} */ (readString(ctx.params, "query", { required: true }));
  const matches = compileSearch(query, "prices", PRICE_SEARCH_FIELDS);
  return {
    body: searchResult(ctx, newestFirst(ctx.state.prices, matches), "/v1/prices/search"),
  };
}

// ---------------------------------------------------------------------------------------------
// Invoice items
// ---------------------------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {{ customer: string, amount: number, currency: string, description: string | null,
 *   price: Json | null, quantity: number, metadata: Json, invoice: string | null,
 *   period?: { start: number, end: number }, subscription?: string | null,
 *   subscriptionItem?: string | null, proration?: boolean }} f
 */
function storeInvoiceItem(state, f) {
  const id = newId("ii_");
  const date = now();
  const item = {
    id,
    object: "invoiceitem",
    amount: f.amount,
    currency: f.currency,
    customer: f.customer,
    customer_account: null,
    date,
    description: f.description,
    discountable: true,
    discounts: [],
    invoice: f.invoice,
    livemode: false,
    metadata: f.metadata,
    net_amount: f.amount,
    parent: f.subscription
      ? {
          subscription_details: {
            subscription: f.subscription,
            ...(f.subscriptionItem ? { subscription_item: f.subscriptionItem } : {}),
          },
          type: "subscription_details",
        }
      : null,
    period: f.period ?? { end: date, start: date },
    pricing: {
      ...(f.price ? { price_details: { price: f.price.id, product: f.price.product } } : {}),
      type: "price_details",
      unit_amount_decimal: String(f.price ? f.price.unit_amount : f.amount / f.quantity),
    },
    proration: f.proration ?? false,
    proration_details: { credited_items: null, discount_amounts: [] },
    quantity: f.quantity,
    quantity_decimal: String(f.quantity),
    tax_rates: [],
    test_clock: null,
  };
  state.invoiceItems.set(id, item);
  return item;
}

/** @param {Ctx} ctx */
function createInvoiceItem(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "amount",
    "currency",
    "customer",
    "customer_account",
    "description",
    "discountable",
    "discounts",
    "expand",
    "invoice",
    "metadata",
    "period",
    "price_data",
    "pricing",
    "quantity",
    "quantity_decimal",
    "subscription",
    "tax_behavior",
    "tax_code",
    "tax_rates",
    "unit_amount_decimal",
  ]);
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  const customer = getCustomerOr404(state, customerId, "customer");
  const pricing = readObject(params, "pricing", ["price"]);
  const priceId = readString(pricing, "price", { label: "pricing[price]" });
  const price = priceId ? getPrice(state, priceId, "pricing[price]") : null;
  const quantity = readInteger(params, "quantity") ?? 1;
  let amount = readInteger(params, "amount");
  let currency = readCurrency(params, "currency");
  if (price) {
    if (amount !== undefined) {
      throw invalidRequest("You may only specify one of these parameters: amount, pricing.", {
        param: "amount",
      });
    }
    amount = price.unit_amount * quantity;
    currency = price.currency;
  } else {
    if (amount === undefined) {
      throw invalidRequest("Missing required param: amount.", {
        code: "parameter_missing",
        param: "amount",
      });
    }
    currency ??= customer.currency ?? undefined;
    if (!currency)
      throw invalidRequest("Missing required param: currency.", {
        code: "parameter_missing",
        param: "currency",
      });
  }
  const invoiceId = readString(params, "invoice") ?? null;
  if (invoiceId) {
    const invoice = getOr404(state.invoices, invoiceId, "invoice", "invoice");
    if (invoice.status !== "draft") {
      throw invalidRequest(
        `Invoice ${invoiceId} is no longer editable. You can only add invoice items to draft invoices.`,
        { code: "invoice_not_editable", param: "invoice" },
      );
    }
    if (invoice.customer !== customerId) {
      throw invalidRequest("The invoice belongs to a different customer.", { param: "invoice" });
    }
    if (invoice.currency !== currency) {
      throw invalidRequest(
        `The currency of this invoice item (${currency}) must match the currency of the invoice (${invoice.currency}).`,
        { param: "currency" },
      );
    }
  }
  const item = storeInvoiceItem(state, {
    customer: customerId,
    amount: /** @type {number} */ (amount),
    currency: /** @type {string} */ (currency),
    description: readString(params, "description") ?? null,
    price,
    quantity,
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
    invoice: invoiceId,
  });
  ctx.emit("invoiceitem.created", item);
  if (invoiceId) {
    const invoice = /** @type {Json} */ (state.invoices.get(invoiceId));
    addLineFromItem(invoice, item);
    recompute(invoice);
  }
  return { body: item };
}

/** @param {Ctx} ctx */
function retrieveInvoiceItem(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: getOr404(ctx.state.invoiceItems, ctx.pathParams.id ?? "", "invoiceitem") };
}

/** @param {Ctx} ctx */
function listInvoiceItems(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [...LIST_PARAMS, "created", "customer", "invoice", "pending"]);
  const customer = readString(params, "customer");
  const invoice = readString(params, "invoice");
  const pending = readBoolean(params, "pending");
  const items = newestFirst(
    ctx.state.invoiceItems,
    (ii) =>
      (!customer || ii.customer === customer) &&
      (!invoice || ii.invoice === invoice) &&
      (pending === undefined || (ii.invoice === null) === pending),
  );
  return { body: paginate(items, params, "/v1/invoiceitems") };
}

// ---------------------------------------------------------------------------------------------
// Invoices
// ---------------------------------------------------------------------------------------------

/**
 * @param {Json} invoice
 * @param {Json} item
 */
function addLineFromItem(invoice, item) {
  invoice.lines.data.push({
    id: newId("il_"),
    object: "line_item",
    amount: item.amount,
    currency: item.currency,
    description: item.description,
    discount_amounts: [],
    discountable: true,
    discounts: [],
    invoice: invoice.id,
    livemode: false,
    metadata: clone(item.metadata),
    parent: {
      invoice_item_details: {
        invoice_item: item.id,
        proration: item.proration,
        proration_details: { credited_items: null },
        subscription: item.parent?.subscription_details?.subscription ?? null,
      },
      subscription_item_details: null,
      type: "invoice_item_details",
    },
    period: clone(item.period),
    pretax_credit_amounts: [],
    pricing: clone(item.pricing),
    quantity: item.quantity,
    quantity_decimal: String(item.quantity),
    subscription: null,
    subtotal: item.amount,
    taxes: [],
  });
}

/**
 * The line a subscription item bills for one period.
 * @param {State} state
 * @param {Json} invoice
 * @param {Json} subscription
 * @param {Json} item A subscription item.
 */
function addLineFromSubscriptionItem(state, invoice, subscription, item) {
  const price = item.price;
  const amount = price.unit_amount * item.quantity;
  const product = state.products.get(price.product)?.name;
  invoice.lines.data.push({
    id: newId("il_"),
    object: "line_item",
    amount,
    currency: price.currency,
    description: `${item.quantity} × ${product ?? price.product} (at ${formatMoney(price.unit_amount, price.currency)} / ${price.recurring?.interval ?? "period"})`,
    discount_amounts: [],
    discountable: true,
    discounts: [],
    invoice: invoice.id,
    livemode: false,
    metadata: clone(subscription.metadata),
    parent: {
      invoice_item_details: null,
      subscription_item_details: {
        invoice_item: null,
        proration: false,
        proration_details: { credited_items: null },
        subscription: subscription.id,
        subscription_item: item.id,
      },
      type: "subscription_item_details",
    },
    period: { end: item.current_period_end, start: item.current_period_start },
    pretax_credit_amounts: [],
    pricing: {
      price_details: { price: price.id, product: price.product },
      type: "price_details",
      unit_amount_decimal: String(price.unit_amount),
    },
    quantity: item.quantity,
    quantity_decimal: String(item.quantity),
    subscription: null,
    subtotal: amount,
    taxes: [],
  });
}

/**
 * @param {number} amount
 * @param {string} currency
 */
export function formatMoney(amount, currency) {
  const sign = amount < 0 ? "-" : "";
  const abs = Math.abs(amount);
  return `${sign}${currency.toUpperCase()} ${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/**
 * Draft amounts follow the lines; the customer balance is applied at finalization.
 * @param {Json} invoice
 */
function recompute(invoice) {
  const subtotal = invoice.lines.data.reduce(
    (/** @type {number} */ sum, /** @type {Json} */ line) => sum + line.amount,
    0,
  );
  invoice.lines.total_count = invoice.lines.data.length;
  invoice.subtotal = subtotal;
  invoice.subtotal_excluding_tax = subtotal;
  invoice.total = subtotal;
  invoice.total_excluding_tax = subtotal;
  invoice.amount_due = Math.max(0, subtotal + invoice.starting_balance);
  invoice.amount_remaining = Math.max(0, invoice.amount_due - invoice.amount_paid);
}

/**
 * @param {Ctx} ctx
 * @param {{ customer: Json, currency: string, collectionMethod: string, autoAdvance: boolean,
 *   billingReason: string, description: string | null, metadata: Json,
 *   defaultPaymentMethod: string | null, subscription?: Json | null,
 *   periodStart?: number, periodEnd?: number }} f
 */
function storeInvoice(ctx, f) {
  const id = newId("in_");
  const created = now();
  const invoice = {
    id,
    object: "invoice",
    account_country: "US",
    account_name: "Local Stripe server",
    account_tax_ids: null,
    amount_due: 0,
    amount_overpaid: 0,
    amount_paid: 0,
    amount_remaining: 0,
    amount_shipping: 0,
    application: null,
    attempt_count: 0,
    attempted: false,
    auto_advance: f.autoAdvance,
    automatic_tax: {
      disabled_reason: null,
      enabled: false,
      liability: null,
      provider: null,
      status: null,
    },
    automatically_finalizes_at: null,
    billing_reason: f.billingReason,
    collection_method: f.collectionMethod,
    created,
    currency: f.currency,
    custom_fields: null,
    customer: f.customer.id,
    customer_account: null,
    customer_address: null,
    customer_email: f.customer.email,
    customer_name: f.customer.name,
    customer_phone: f.customer.phone,
    customer_shipping: null,
    customer_tax_exempt: "none",
    customer_tax_ids: [],
    default_payment_method: f.defaultPaymentMethod,
    default_source: null,
    default_tax_rates: [],
    description: f.description,
    discounts: [],
    due_date: null,
    effective_at: null,
    ending_balance: null,
    footer: null,
    from_invoice: null,
    hosted_invoice_url: null,
    invoice_pdf: null,
    issuer: { type: "self" },
    last_finalization_error: null,
    latest_revision: null,
    lines: {
      object: "list",
      data: [],
      has_more: false,
      total_count: 0,
      url: `/v1/invoices/${id}/lines`,
    },
    livemode: false,
    metadata: f.metadata,
    next_payment_attempt: null,
    number: null,
    on_behalf_of: null,
    parent: f.subscription
      ? {
          quote_details: null,
          subscription_details: {
            metadata: clone(f.subscription.metadata),
            subscription: f.subscription.id,
          },
          type: "subscription_details",
        }
      : null,
    payment_settings: {
      default_mandate: null,
      payment_method_options: null,
      payment_method_types: null,
    },
    period_end: f.periodEnd ?? created,
    period_start: f.periodStart ?? created,
    post_payment_credit_notes_amount: 0,
    pre_payment_credit_notes_amount: 0,
    receipt_number: null,
    rendering: null,
    shipping_cost: null,
    shipping_details: null,
    starting_balance: 0,
    statement_descriptor: null,
    status: "draft",
    status_transitions: {
      finalized_at: null,
      marked_uncollectible_at: null,
      paid_at: null,
      voided_at: null,
    },
    // Stripe's fixture still carries the pre-basil field, null; the id is in `parent`.
    subscription: null,
    subtotal: 0,
    subtotal_excluding_tax: 0,
    test_clock: null,
    total: 0,
    total_discount_amounts: [],
    total_excluding_tax: 0,
    total_pretax_credit_amounts: [],
    total_taxes: [],
    webhooks_delivered_at: null,
  };
  ctx.state.invoices.set(id, invoice);
  return invoice;
}

/**
 * The PaymentIntent behind an invoice's default payment, if it has one.
 * @param {State} state
 * @param {Json} invoice
 * @returns {Json | null}
 */
export function invoicePaymentIntent(state, invoice) {
  for (const payment of state.invoicePayments.values()) {
    if (payment.invoice === invoice.id && payment.is_default) {
      return state.paymentIntents.get(payment.payment.payment_intent) ?? null;
    }
  }
  return null;
}

/**
 * @param {State} state
 * @param {Json} invoice
 */
function defaultInvoicePayment(state, invoice) {
  for (const payment of state.invoicePayments.values()) {
    if (payment.invoice === invoice.id && payment.is_default) return payment;
  }
  return null;
}

INCLUDABLE["invoice.payments"] = (state, invoice) => {
  const data = newestFirst(state.invoicePayments, (p) => p.invoice === invoice.id);
  return {
    object: "list",
    data,
    has_more: false,
    total_count: data.length,
    url: `/v1/invoices/${invoice.id}/payments`,
  };
};
INCLUDABLE["invoice.confirmation_secret"] = (state, invoice) => {
  const pi = invoicePaymentIntent(state, invoice);
  return pi ? { client_secret: pi.client_secret, type: "payment_intent" } : null;
};

const PI_DESCRIPTIONS = /** @type {Record<string, string>} */ ({
  subscription_create: "Subscription creation",
  subscription_cycle: "Subscription update",
  subscription_update: "Subscription update",
});

/**
 * Finalizes a draft: number, hosted page, customer balance, and the PaymentIntent Stripe
 * creates for `charge_automatically` invoices. An invoice the balance covers is paid here.
 * Stripe does not copy the invoice's metadata to that PaymentIntent.
 * @param {Ctx} ctx
 * @param {Json} invoice
 */
export function finalizeInvoice(ctx, invoice) {
  const { state } = ctx;
  const customer = /** @type {Json} */ (state.customers.get(invoice.customer));
  recompute(invoice);
  const sequence = customer.next_invoice_sequence ?? 1;
  customer.next_invoice_sequence = sequence + 1;
  invoice.number = `${customer.invoice_prefix}-${String(sequence).padStart(4, "0")}`;
  invoice.status = "open";
  invoice.status_transitions.finalized_at = now();
  invoice.effective_at = invoice.status_transitions.finalized_at;
  invoice.hosted_invoice_url = `${ctx.app.baseUrl}/i/${invoice.id}`;
  invoice.invoice_pdf = `${ctx.app.baseUrl}/i/${invoice.id}/pdf`;
  // Customer balance: negative is credit. It reduces what is due; what is left stays on it,
  // and an invoice whose total is negative (a downgrade's prorations) adds to that credit.
  const balance = customer.balance ?? 0;
  const applied = invoice.total + balance;
  invoice.starting_balance = balance;
  invoice.amount_due = Math.max(0, applied);
  invoice.amount_remaining = invoice.amount_due;
  invoice.ending_balance = Math.min(0, applied);
  if (invoice.ending_balance !== balance) {
    customer.balance = invoice.ending_balance;
    ctx.emit("customer.updated", customer, { balance });
  }
  if (invoice.amount_due > 0) {
    const pi = storePaymentIntent(
      state,
      {
        amount: invoice.amount_due,
        currency: invoice.currency,
        customerId: invoice.customer,
        captureMethod: "automatic",
        setupFutureUsage: null,
        automaticEnabled: false,
        description: PI_DESCRIPTIONS[invoice.billing_reason] ?? null,
        receiptEmail: null,
        statementDescriptor: null,
        statementDescriptorSuffix: null,
        paymentMethodTypes: ["card"],
        metadata: {},
      },
      null,
    );
    const payment = {
      id: newId("inpay_"),
      object: "invoice_payment",
      amount_paid: null,
      amount_requested: invoice.amount_due,
      created: now(),
      currency: invoice.currency,
      invoice: invoice.id,
      is_default: true,
      livemode: false,
      payment: { payment_intent: pi.id, type: "payment_intent" },
      status: "open",
      status_transitions: { canceled_at: null, paid_at: null },
    };
    state.invoicePayments.set(payment.id, payment);
    if (invoice.collection_method === "charge_automatically" && invoice.auto_advance) {
      invoice.next_payment_attempt = now();
    }
  }
  ctx.emit("invoice.finalized", invoice);
  if (invoice.amount_due === 0) markInvoicePaid(ctx, invoice, 0);
}

/**
 * @param {Ctx} ctx
 * @param {Json} invoice
 * @param {number} amount
 */
function markInvoicePaid(ctx, invoice, amount) {
  const { state } = ctx;
  invoice.amount_paid += amount;
  invoice.amount_remaining = 0;
  invoice.status = "paid";
  invoice.status_transitions.paid_at = now();
  invoice.next_payment_attempt = null;
  invoice.auto_advance = false;
  const payment = defaultInvoicePayment(state, invoice);
  if (payment) {
    payment.status = "paid";
    payment.amount_paid = amount;
    payment.status_transitions.paid_at = invoice.status_transitions.paid_at;
  }
  ctx.emit("invoice.paid", invoice);
  ctx.emit("invoice.payment_succeeded", invoice);
  const subscriptionId = invoice.parent?.subscription_details?.subscription;
  const subscription = subscriptionId ? state.subscriptions.get(subscriptionId) : null;
  if (subscription && subscription.latest_invoice === invoice.id) {
    if (["incomplete", "past_due", "unpaid"].includes(subscription.status)) {
      setSubscriptionStatus(ctx, subscription, "active");
    }
  }
}

/**
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {string} status
 * @param {Json} [extraPrevious]
 */
function setSubscriptionStatus(ctx, subscription, status, extraPrevious = {}) {
  const previous = { ...extraPrevious, status: subscription.status };
  subscription.status = status;
  ctx.emit("customer.subscription.updated", subscription, previous);
}

const REQUIRES_ACTION_MESSAGE =
  "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice. For more details see: https://docs.stripe.com/billing/subscriptions/overview#requires-action";

/**
 * The payment method an attempt uses: the one given, else the invoice's, the subscription's,
 * then the customer's default.
 * @param {State} state
 * @param {Json} invoice
 * @returns {string | null}
 */
function resolvePaymentMethod(state, invoice) {
  const subscriptionId = invoice.parent?.subscription_details?.subscription;
  const subscription = subscriptionId ? state.subscriptions.get(subscriptionId) : null;
  const customer = state.customers.get(invoice.customer);
  return (
    invoice.default_payment_method ??
    subscription?.default_payment_method ??
    customer?.invoice_settings.default_payment_method ??
    null
  );
}

const noPaymentMethod = () =>
  invalidRequest(
    "This customer has no attached payment source or default payment method. Please consider adding a default payment method. For more information, visit https://docs.stripe.com/billing/migration/strong-customer-authentication#updating-customers-with-no-payment-method.",
  );

/**
 * One payment attempt on an open invoice. `present` means the customer is there (a hosted
 * page), so a card that needs authentication authenticates and succeeds.
 * @param {Ctx} ctx
 * @param {Json} invoice
 * @param {Json} pm
 * @param {{ present?: boolean }} [opts]
 * @returns {{ ok: true } | { ok: false, status: number, error: Json }}
 */
export function attemptInvoicePayment(ctx, invoice, pm, opts = {}) {
  const { state } = ctx;
  const pi = invoicePaymentIntent(state, invoice);
  if (!pi) {
    markInvoicePaid(ctx, invoice, 0);
    return { ok: true };
  }
  pi.payment_method = pm.id;
  pi.last_payment_error = null;
  pi.next_action = null;
  invoice.attempt_count += 1;
  invoice.attempted = true;
  let behavior = state.cardBehaviors.get(pm.id) ?? { kind: "succeed" };
  // The customer authenticates on the page; a …3155 card set up earlier needs none off-session.
  if (behavior.kind === "authentication_required" && (opts.present || behavior.setUp)) {
    behavior = { kind: "succeed" };
  }
  if (behavior.kind === "succeed") {
    succeedPayment(ctx, pi, pm);
    markInvoicePaid(ctx, invoice, pi.amount);
    return { ok: true };
  }
  invoice.next_payment_attempt = null;
  if (behavior.kind === "decline") {
    const charge = createCharge(state, pi, pm, behavior);
    const result = failPayment(ctx, pi, pm, { ...behavior, charge: charge.id });
    ctx.emit("invoice.payment_failed", invoice);
    return { ok: false, status: 402, error: result.body.error };
  }
  // Stripe Billing keeps the PaymentIntent in requires_action so the customer can finish on
  // the hosted invoice page, and reports invoice.payment_failed + payment_action_required.
  pi.status = "requires_action";
  pi.next_action = {
    redirect_to_url: { return_url: invoice.hosted_invoice_url, url: invoice.hosted_invoice_url },
    type: "redirect_to_url",
  };
  ctx.emit("payment_intent.requires_action", pi);
  ctx.emit("invoice.payment_failed", invoice);
  ctx.emit("invoice.payment_action_required", invoice);
  return {
    ok: false,
    status: 402,
    error: {
      code: "invoice_payment_intent_requires_action",
      doc_url: "https://stripe.com/docs/error-codes/invoice-payment-intent-requires-action",
      message: REQUIRES_ACTION_MESSAGE,
      payment_intent: clone(pi),
      payment_method: clone(pm),
      type: "card_error",
    },
  };
}

const INVOICE_COMMON_PARAMS = [
  "account_tax_ids",
  "application_fee_amount",
  "auto_advance",
  "automatic_tax",
  "automatically_finalizes_at",
  "collection_method",
  "custom_fields",
  "days_until_due",
  "default_payment_method",
  "default_source",
  "default_tax_rates",
  "description",
  "discounts",
  "due_date",
  "effective_at",
  "expand",
  "footer",
  "issuer",
  "metadata",
  "number",
  "on_behalf_of",
  "payment_settings",
  "rendering",
  "shipping_cost",
  "shipping_details",
  "statement_descriptor",
  "transfer_data",
];
const COLLECTION_METHODS = ["charge_automatically", "send_invoice"];

/**
 * @param {State} state
 * @param {Json} params
 * @param {string} customerId
 */
function readInvoicePaymentMethod(state, params, customerId) {
  const pmId = readString(params, "default_payment_method");
  if (!pmId) return pmId;
  const pm = state.paymentMethods.get(pmId);
  if (!pm || pm.customer !== customerId) {
    throw invalidRequest(
      `The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`,
      { param: "default_payment_method" },
    );
  }
  return pmId;
}

/** @param {Ctx} ctx */
function createInvoice(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    ...INVOICE_COMMON_PARAMS,
    "currency",
    "customer",
    "customer_account",
    "from_invoice",
    "pending_invoice_items_behavior",
    "subscription",
  ]);
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  const customer = getCustomerOr404(state, customerId, "customer");
  const collectionMethod =
    readEnum(params, "collection_method", COLLECTION_METHODS) ?? "charge_automatically";
  if (collectionMethod === "send_invoice" && readInteger(params, "days_until_due") === undefined) {
    if (params.due_date === undefined) {
      throw invalidRequest(
        "Invoices with `collection_method=send_invoice` must have a `due_date` or `days_until_due`.",
        { param: "days_until_due" },
      );
    }
  }
  const behavior =
    readEnum(params, "pending_invoice_items_behavior", ["exclude", "include"]) ?? "exclude";
  const defaultPm = readInvoicePaymentMethod(state, params, customerId) ?? null;
  const currency = readCurrency(params, "currency") ?? customer.currency ?? "usd";
  const invoice = storeInvoice(ctx, {
    customer,
    currency,
    collectionMethod,
    autoAdvance: readBoolean(params, "auto_advance") ?? false,
    billingReason: "manual",
    description: readString(params, "description") ?? null,
    metadata: mergeMetadata({}, readMetadata(params) ?? {}),
    defaultPaymentMethod: defaultPm,
  });
  if (behavior === "include") {
    for (const item of state.invoiceItems.values()) {
      if (item.customer === customerId && item.invoice === null && item.currency === currency) {
        item.invoice = invoice.id;
        addLineFromItem(invoice, item);
      }
    }
  }
  recompute(invoice);
  ctx.emit("invoice.created", invoice);
  return { body: invoice };
}

/**
 * @param {Ctx} ctx
 * @returns {Json}
 */
const invoiceFromPath = (ctx) =>
  getOr404(ctx.state.invoices, ctx.pathParams.id ?? "", "invoice", "invoice");

/** @param {Ctx} ctx */
function retrieveInvoice(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: invoiceFromPath(ctx) };
}

/** @param {Ctx} ctx */
function updateInvoice(ctx) {
  const { state, params } = ctx;
  const invoice = invoiceFromPath(ctx);
  rejectUnknown(params, INVOICE_COMMON_PARAMS);
  const metadata = readMetadata(params);
  const others = Object.keys(params).filter((k) => !["metadata", "expand"].includes(k));
  if (invoice.status !== "draft" && others.some((k) => k !== "description" && k !== "footer")) {
    throw invalidRequest(
      `You can only update the metadata, description and footer of a finalized invoice (status: ${invoice.status}).`,
      { code: "invoice_not_editable" },
    );
  }
  /** @type {Json} */
  const previous = {};
  const set = (/** @type {string} */ name, /** @type {unknown} */ value) => {
    if (value === undefined || canonicalJson(invoice[name]) === canonicalJson(value)) return;
    previous[name] = invoice[name];
    invoice[name] = value;
  };
  set("description", readString(params, "description"));
  set("auto_advance", readBoolean(params, "auto_advance"));
  set("collection_method", readEnum(params, "collection_method", COLLECTION_METHODS));
  set("default_payment_method", readInvoicePaymentMethod(state, params, invoice.customer));
  if (metadata !== undefined) set("metadata", mergeMetadata(invoice.metadata, metadata));
  if (Object.keys(previous).length > 0) ctx.emit("invoice.updated", invoice, previous);
  return { body: invoice };
}

/** @param {Ctx} ctx */
function deleteInvoice(ctx) {
  const invoice = invoiceFromPath(ctx);
  rejectUnknown(ctx.params, []);
  if (invoice.status !== "draft") {
    throw invalidRequest("You can only delete draft invoices.", { code: "invoice_not_editable" });
  }
  ctx.state.invoices.delete(invoice.id);
  for (const item of ctx.state.invoiceItems.values()) {
    if (item.invoice === invoice.id) item.invoice = null;
  }
  ctx.emit("invoice.deleted", invoice);
  return { body: { id: invoice.id, object: "invoice", deleted: true } };
}

/** @type {Record<string, (invoice: Json) => unknown>} */
const INVOICE_SEARCH_FIELDS = {
  created: (i) => i.created,
  currency: (i) => i.currency,
  customer: (i) => i.customer,
  number: (i) => i.number,
  status: (i) => i.status,
  subscription: (i) => i.parent?.subscription_details?.subscription ?? null,
  total: (i) => i.total,
};

/** @param {Ctx} ctx */
function listInvoices(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    ...LIST_PARAMS,
    "collection_method",
    "created",
    "customer",
    "customer_account",
    "due_date",
    "status",
    "subscription",
  ]);
  const customer = readString(params, "customer");
  const status = readEnum(params, "status", ["draft", "open", "paid", "uncollectible", "void"]);
  const subscription = readString(params, "subscription");
  const collection = readEnum(params, "collection_method", COLLECTION_METHODS);
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.invoices,
    (i) =>
      (!customer || i.customer === customer) &&
      (!status || i.status === status) &&
      (!subscription || INVOICE_SEARCH_FIELDS.subscription?.(i) === subscription) &&
      (!collection || i.collection_method === collection) &&
      createdOk(i.created),
  );
  return { body: paginate(items, params, "/v1/invoices") };
}

/** @param {Ctx} ctx */
function searchInvoices(ctx) {
  rejectUnknown(ctx.params, ["expand", "limit", "page", "query"]);
  const query = /** @type {string} */ (readString(ctx.params, "query", { required: true }));
  const matches = compileSearch(query, "invoices", INVOICE_SEARCH_FIELDS);
  return {
    body: searchResult(ctx, newestFirst(ctx.state.invoices, matches), "/v1/invoices/search"),
  };
}

/** @param {Ctx} ctx */
function listInvoiceLines(ctx) {
  rejectUnknown(ctx.params, LIST_PARAMS);
  const invoice = invoiceFromPath(ctx);
  return { body: paginate(invoice.lines.data, ctx.params, `/v1/invoices/${invoice.id}/lines`) };
}

/** @param {Ctx} ctx */
function finalizeInvoiceEndpoint(ctx) {
  rejectUnknown(ctx.params, ["auto_advance", "expand"]);
  const invoice = invoiceFromPath(ctx);
  if (invoice.status !== "draft") {
    throw invalidRequest(
      "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
      { code: "invoice_not_editable" },
    );
  }
  const autoAdvance = readBoolean(ctx.params, "auto_advance");
  if (autoAdvance !== undefined) invoice.auto_advance = autoAdvance;
  finalizeInvoice(ctx, invoice);
  // With auto_advance, Stripe attempts collection right after finalizing; here the attempt
  // happens within the request, and its failure does not fail the finalization.
  if (
    invoice.status === "open" &&
    invoice.auto_advance &&
    invoice.collection_method === "charge_automatically"
  ) {
    const pmId = resolvePaymentMethod(ctx.state, invoice);
    const pm = pmId ? ctx.state.paymentMethods.get(pmId) : null;
    if (pm) attemptInvoicePayment(ctx, invoice, pm);
  }
  return { body: invoice };
}

/** @param {Ctx} ctx */
function payInvoice(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "expand",
    "forgive",
    "mandate",
    "off_session",
    "paid_out_of_band",
    "payment_method",
    "source",
  ]);
  const invoice = invoiceFromPath(ctx);
  if (invoice.status === "paid") throw invalidRequest("Invoice is already paid");
  if (invoice.status === "void") throw invalidRequest("This invoice has been voided.");
  if (readBoolean(params, "paid_out_of_band")) {
    throw invalidRequest("paid_out_of_band is not modelled by the local Stripe server.", {
      param: "paid_out_of_band",
    });
  }
  readBoolean(params, "off_session");
  const pmParam = readString(params, "payment_method") ?? null;
  /** @type {Json | null} */
  let pm = null;
  if (pmParam) {
    if (isTemplate(pmParam)) {
      pm = materializeTemplate(state, pmParam, null);
    } else {
      pm = getOr404(state.paymentMethods, pmParam, "PaymentMethod", "payment_method");
      if (pm.customer && pm.customer !== invoice.customer) {
        throw invalidRequest(
          `The provided PaymentMethod ${pmParam} belongs to a different customer.`,
          { param: "payment_method" },
        );
      }
    }
  }
  if (invoice.status === "draft") {
    finalizeInvoice(ctx, invoice);
    if (invoice.status === "paid") return { body: invoice };
  }
  if (invoice.amount_remaining === 0) {
    markInvoicePaid(ctx, invoice, 0);
    return { body: invoice };
  }
  if (!pm) {
    const pmId = resolvePaymentMethod(state, invoice);
    pm = pmId ? (state.paymentMethods.get(pmId) ?? null) : null;
  }
  if (!pm) throw noPaymentMethod();
  const result = attemptInvoicePayment(ctx, invoice, pm);
  if (!result.ok) return { status: result.status, body: { error: result.error } };
  return { body: invoice };
}

/**
 * Voiding gives back the customer credit the invoice used and cancels its PaymentIntent.
 * @param {Ctx} ctx
 */
function voidInvoice(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  const invoice = invoiceFromPath(ctx);
  if (invoice.status !== "open" && invoice.status !== "uncollectible") {
    throw invalidRequest(
      `You can only void open or uncollectible invoices. This invoice is ${invoice.status}.`,
      { code: "invoice_not_editable" },
    );
  }
  const { state } = ctx;
  const pi = invoicePaymentIntent(state, invoice);
  if (pi && pi.status !== "succeeded") {
    pi.status = "canceled";
    pi.canceled_at = now();
    pi.cancellation_reason = "void_invoice";
    ctx.emit("payment_intent.canceled", pi);
  }
  const payment = defaultInvoicePayment(state, invoice);
  if (payment) {
    payment.status = "canceled";
    payment.status_transitions.canceled_at = now();
  }
  const credit = invoice.starting_balance - invoice.ending_balance;
  if (credit !== 0) {
    const customer = /** @type {Json} */ (state.customers.get(invoice.customer));
    const before = customer.balance;
    customer.balance -= credit;
    ctx.emit("customer.updated", customer, { balance: before });
  }
  invoice.status = "void";
  invoice.status_transitions.voided_at = now();
  invoice.auto_advance = false;
  invoice.next_payment_attempt = null;
  ctx.emit("invoice.voided", invoice);
  return { body: invoice };
}

/** @param {Ctx} ctx */
function markUncollectible(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  const invoice = invoiceFromPath(ctx);
  if (invoice.status !== "open") {
    throw invalidRequest(
      `You can only mark open invoices as uncollectible. This invoice is ${invoice.status}.`,
      { code: "invoice_not_editable" },
    );
  }
  invoice.status = "uncollectible";
  invoice.status_transitions.marked_uncollectible_at = now();
  invoice.auto_advance = false;
  invoice.next_payment_attempt = null;
  ctx.emit("invoice.marked_uncollectible", invoice);
  return { body: invoice };
}

/** @param {Ctx} ctx */
function listInvoicePayments(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [...LIST_PARAMS, "created", "invoice", "payment", "status"]);
  const invoice = readString(params, "invoice");
  const status = readEnum(params, "status", ["canceled", "open", "paid"]);
  const payment = readObject(params, "payment", ["payment_intent", "payment_record", "type"]);
  const pi = readString(payment, "payment_intent");
  const items = newestFirst(
    ctx.state.invoicePayments,
    (p) =>
      (!invoice || p.invoice === invoice) &&
      (!status || p.status === status) &&
      (!pi || p.payment.payment_intent === pi),
  );
  return { body: paginate(items, params, "/v1/invoice_payments") };
}

/** @param {Ctx} ctx */
function retrieveInvoicePayment(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return {
    body: getOr404(ctx.state.invoicePayments, ctx.pathParams.id ?? "", "invoice_payment"),
  };
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

const PAYMENT_BEHAVIORS = [
  "allow_incomplete",
  "default_incomplete",
  "error_if_incomplete",
  "pending_if_incomplete",
];
const PRORATION_BEHAVIORS = ["always_invoice", "create_prorations", "none"];
const SUBSCRIPTION_COMMON_PARAMS = [
  "add_invoice_items",
  "application_fee_percent",
  "automatic_tax",
  "billing_cycle_anchor",
  "billing_schedules",
  "billing_thresholds",
  "cancel_at",
  "cancel_at_period_end",
  "collection_method",
  "days_until_due",
  "default_payment_method",
  "default_source",
  "default_tax_rates",
  "description",
  "discounts",
  "expand",
  "invoice_settings",
  "items",
  "metadata",
  "off_session",
  "on_behalf_of",
  "payment_behavior",
  "payment_settings",
  "pending_invoice_item_interval",
  "proration_behavior",
  "transfer_data",
  "trial_end",
  "trial_from_plan",
  "trial_settings",
];
const ITEM_PARAMS = [
  "billing_thresholds",
  "clear_usage",
  "deleted",
  "discounts",
  "id",
  "metadata",
  "plan",
  "price",
  "price_data",
  "quantity",
  "tax_rates",
];

/**
 * The legacy `plan` view of a price, which subscription items still carry.
 * @param {Json} price
 */
function planOf(price) {
  return {
    id: price.id,
    object: "plan",
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: price.billing_scheme,
    created: price.created,
    currency: price.currency,
    interval: price.recurring.interval,
    interval_count: price.recurring.interval_count,
    livemode: false,
    metadata: clone(price.metadata),
    meter: null,
    nickname: price.nickname,
    product: price.product,
    tiers_mode: null,
    transform_usage: null,
    trial_period_days: null,
    usage_type: "licensed",
  };
}

/**
 * @param {Json} params
 * @param {State} state
 * @returns {{ id?: string, price?: Json, quantity?: number, deleted?: boolean, metadata?: Json }[]}
 */
function readItems(params, state) {
  const value = params.items;
  if (value === undefined || value === "") return [];
  if (!Array.isArray(value)) throw invalidRequest("Invalid array", { param: "items" });
  return value.map((raw, i) => {
    if (!isPlainObject(raw)) throw invalidRequest("Invalid object", { param: `items[${i}]` });
    rejectUnknown(raw, ITEM_PARAMS, `items[${i}]`);
    const priceId =
      readString(raw, "price", { label: `items[${i}][price]` }) ??
      readString(raw, "plan", { label: `items[${i}][plan]` });
    const price = priceId ? getPrice(state, priceId, `items[${i}][price]`) : undefined;
    if (price && !price.recurring) {
      throw invalidRequest(
        `The price specified (${price.id}) is set to \`type=one_time\` but this field only accepts prices with \`type=recurring\`.`,
        { param: `items[${i}][price]` },
      );
    }
    if (price && !price.active) {
      throw invalidRequest(`The price specified (${price.id}) is inactive.`, {
        param: `items[${i}][price]`,
      });
    }
    return {
      id: readString(raw, "id") ?? undefined,
      price,
      quantity: readInteger(raw, "quantity"),
      deleted: readBoolean(raw, "deleted"),
      metadata: readMetadata(raw) ?? undefined,
    };
  });
}

/**
 * @param {Json} subscription
 * @param {Json} price
 * @param {number} quantity
 * @param {number} start
 * @param {Json} metadata
 */
function newSubscriptionItem(subscription, price, quantity, start, metadata) {
  return {
    id: newId("si_", 14),
    object: "subscription_item",
    billing_thresholds: null,
    created: start,
    current_period_end: addInterval(
      start,
      price.recurring.interval,
      price.recurring.interval_count,
    ),
    current_period_start: start,
    discounts: [],
    metadata,
    plan: planOf(price),
    price: clone(price),
    quantity,
    subscription: subscription.id,
    tax_rates: [],
  };
}

/**
 * The invoice for a subscription's current period, finalized (as Stripe does for
 * `charge_automatically` invoices created by the subscription itself).
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {string} billingReason
 * @param {{ periodStart?: number, periodEnd?: number, withItems?: boolean,
 *   ownItemsOnly?: boolean }} [opts]
 */
function invoiceSubscription(ctx, subscription, billingReason, opts = {}) {
  const { state } = ctx;
  const customer = /** @type {Json} */ (state.customers.get(subscription.customer));
  const invoice = storeInvoice(ctx, {
    customer,
    currency: subscription.currency,
    collectionMethod: subscription.collection_method,
    autoAdvance: true,
    billingReason,
    description: null,
    metadata: {},
    defaultPaymentMethod: null,
    subscription,
    periodStart: opts.periodStart,
    periodEnd: opts.periodEnd,
  });
  if (opts.withItems !== false) {
    for (const item of subscription.items.data) {
      addLineFromSubscriptionItem(state, invoice, subscription, item);
    }
  }
  // Pending items ride along, as in Stripe: this subscription's (prorations) and the
  // customer's own ones, never another subscription's.
  for (const item of pendingItems(state, subscription, opts.ownItemsOnly ?? false)) {
    item.invoice = invoice.id;
    addLineFromItem(invoice, item);
  }
  recompute(invoice);
  subscription.latest_invoice = invoice.id;
  ctx.emit("invoice.created", invoice);
  finalizeInvoice(ctx, invoice);
  return invoice;
}

/**
 * Pending invoice items a subscription's next invoice takes.
 * @param {State} state
 * @param {Json} subscription
 * @param {boolean} ownOnly Only the subscription's own items (its prorations).
 */
function pendingItems(state, subscription, ownOnly) {
  return [...state.invoiceItems.values()].filter((item) => {
    if (item.customer !== subscription.customer || item.invoice !== null) return false;
    if (item.currency !== subscription.currency) return false;
    const owner = item.parent?.subscription_details?.subscription ?? null;
    return owner === subscription.id || (!ownOnly && owner === null);
  });
}

/**
 * @param {State} state
 * @param {Json} subscription
 */
function subscriptionPaymentMethod(state, subscription) {
  const customer = state.customers.get(subscription.customer);
  const pmId =
    subscription.default_payment_method ??
    customer?.invoice_settings.default_payment_method ??
    null;
  return pmId ? (state.paymentMethods.get(pmId) ?? null) : null;
}

/**
 * Creates an active-or-incomplete subscription and its first invoice. Shared by the API and
 * the Checkout page.
 * @param {Ctx} ctx
 * @param {{ customer: Json, items: { price: Json, quantity: number, metadata: Json }[],
 *   defaultPaymentMethod: string | null, paymentBehavior: string, metadata: Json,
 *   cancelAtPeriodEnd: boolean, collectionMethod: string, description: string | null,
 *   present?: boolean }} f
 * @returns {{ subscription: Json, invoice: Json, failure: { status: number, error: Json } | null }}
 */
export function startSubscription(ctx, f) {
  const { state } = ctx;
  const start = now();
  const id = newId("sub_");
  const currency = /** @type {string} */ (f.items[0]?.price.currency);
  const subscription = {
    id,
    object: "subscription",
    application: null,
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: start,
    billing_cycle_anchor_config: null,
    billing_mode: { flexible: null, type: "classic" },
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, reason: null },
    collection_method: f.collectionMethod,
    created: start,
    currency,
    customer: f.customer.id,
    customer_account: null,
    days_until_due: null,
    default_payment_method: f.defaultPaymentMethod,
    default_source: null,
    default_tax_rates: [],
    description: f.description,
    discounts: [],
    ended_at: null,
    invoice_settings: { account_tax_ids: null, issuer: { type: "self" } },
    items: {
      object: "list",
      data: /** @type {Json[]} */ ([]),
      has_more: false,
      total_count: 0,
      url: `/v1/subscription_items?subscription=${id}`,
    },
    latest_invoice: null,
    livemode: false,
    managed_payments: null,
    metadata: f.metadata,
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: {
      payment_method_options: null,
      payment_method_types: null,
      save_default_payment_method: "off",
    },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: start,
    status: "incomplete",
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: { end_behavior: { missing_payment_method: "create_invoice" } },
    trial_start: null,
  };
  for (const item of f.items) {
    subscription.items.data.push(
      newSubscriptionItem(subscription, item.price, item.quantity, start, item.metadata),
    );
  }
  subscription.items.total_count = subscription.items.data.length;
  applyCancelAtPeriodEnd(subscription, f.cancelAtPeriodEnd);
  state.subscriptions.set(id, subscription);
  ctx.emit("customer.subscription.created", subscription);
  const invoice = invoiceSubscription(ctx, subscription, "subscription_create");
  /** @type {{ status: number, error: Json } | null} */
  let failure = null;
  if (invoice.status === "paid") return { subscription, invoice, failure };
  if (f.paymentBehavior !== "default_incomplete" && f.collectionMethod === "charge_automatically") {
    const pm = subscriptionPaymentMethod(state, subscription);
    if (pm) {
      const result = attemptInvoicePayment(ctx, invoice, pm, { present: f.present });
      if (!result.ok) failure = { status: result.status, error: result.error };
    }
  } else if (f.collectionMethod === "send_invoice") {
    setSubscriptionStatus(ctx, subscription, "active");
  }
  return { subscription, invoice, failure };
}

/**
 * @param {Json} subscription
 * @param {boolean | undefined} value
 */
function applyCancelAtPeriodEnd(subscription, value) {
  if (value === undefined) return;
  subscription.cancel_at_period_end = value;
  subscription.cancel_at = value ? currentPeriodEnd(subscription) : null;
}

/** @param {Json} subscription */
export const currentPeriodEnd = (subscription) =>
  Math.min(...subscription.items.data.map((/** @type {Json} */ i) => i.current_period_end));

/**
 * What to charge with: the subscription's card, else the customer's default.
 * @param {State} state
 * @param {Json} params
 * @param {string} customerId
 */
function readSubscriptionPaymentMethod(state, params, customerId) {
  const pmId = readString(params, "default_payment_method");
  if (!pmId) return pmId;
  const pm = state.paymentMethods.get(pmId);
  if (!pm || pm.customer !== customerId) {
    throw invalidRequest(
      `The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`,
      { param: "default_payment_method" },
    );
  }
  return pmId;
}

/** @param {Ctx} ctx */
function createSubscription(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    ...SUBSCRIPTION_COMMON_PARAMS,
    "backdate_start_date",
    "billing_cycle_anchor_config",
    "billing_mode",
    "currency",
    "customer",
    "customer_account",
    "trial_period_days",
  ]);
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  const customer = getCustomerOr404(state, customerId, "customer");
  const items = readItems(params, state);
  if (items.length === 0)
    throw invalidRequest("Missing required param: items.", {
      code: "parameter_missing",
      param: "items",
    });
  const first = items[0]?.price;
  const resolved = items.map((item, i) => {
    if (!item.price)
      throw invalidRequest("Missing required param: items[0][price].", {
        code: "parameter_missing",
        param: `items[${i}][price]`,
      });
    if (item.price.currency !== first?.currency) {
      throw invalidRequest("All prices on a subscription must have the same currency.", {
        param: `items[${i}][price]`,
      });
    }
    return {
      price: item.price,
      quantity: item.quantity ?? 1,
      metadata: mergeMetadata({}, item.metadata ?? {}),
    };
  });
  const defaultPm = readSubscriptionPaymentMethod(state, params, customerId) ?? null;
  const paymentBehavior =
    readEnum(params, "payment_behavior", PAYMENT_BEHAVIORS) ?? "allow_incomplete";
  const collectionMethod =
    readEnum(params, "collection_method", COLLECTION_METHODS) ?? "charge_automatically";
  const metadata = mergeMetadata({}, readMetadata(params) ?? {});
  const cancelAtPeriodEnd = readBoolean(params, "cancel_at_period_end");
  readBoolean(params, "off_session");
  readEnum(params, "proration_behavior", PRORATION_BEHAVIORS);
  const total = resolved.reduce((sum, item) => sum + item.price.unit_amount * item.quantity, 0);
  const pmId = defaultPm ?? customer.invoice_settings.default_payment_method;
  const pm = pmId ? state.paymentMethods.get(pmId) : null;
  const needsCard =
    collectionMethod === "charge_automatically" &&
    paymentBehavior !== "default_incomplete" &&
    total + (customer.balance ?? 0) > 0;
  if (needsCard && !pm) throw noPaymentMethod();
  if (paymentBehavior === "error_if_incomplete" && needsCard && pm) {
    // Stripe creates nothing when the first invoice cannot be paid at once.
    const behavior = state.cardBehaviors.get(pm.id) ?? { kind: "succeed" };
    if (behavior.kind !== "succeed") throw cardRefusal(behavior);
  }
  const { subscription } = startSubscription(ctx, {
    customer,
    items: resolved,
    defaultPaymentMethod: defaultPm,
    paymentBehavior,
    metadata,
    cancelAtPeriodEnd: cancelAtPeriodEnd ?? false,
    collectionMethod,
    description: readString(params, "description") ?? null,
  });
  return { body: subscription };
}

/** @param {Ctx} ctx */
const subscriptionFromPath = (ctx) =>
  getOr404(ctx.state.subscriptions, ctx.pathParams.id ?? "", "subscription", "id");

/** @param {Ctx} ctx */
function retrieveSubscription(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: subscriptionFromPath(ctx) };
}

/** @param {Ctx} ctx */
function listSubscriptions(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    ...LIST_PARAMS,
    "automatic_tax",
    "collection_method",
    "created",
    "current_period_end",
    "current_period_start",
    "customer",
    "customer_account",
    "price",
    "status",
    "test_clock",
  ]);
  const customer = readString(params, "customer");
  const price = readString(params, "price");
  const status = readEnum(params, "status", [
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
  ]);
  const createdOk = readCreatedFilter(params);
  const items = newestFirst(
    ctx.state.subscriptions,
    (s) =>
      (!customer || s.customer === customer) &&
      (!price || s.items.data.some((/** @type {Json} */ i) => i.price.id === price)) &&
      // Without a status filter Stripe leaves canceled subscriptions out.
      (status === "all" ||
        (status === "ended"
          ? ["canceled", "incomplete_expired"].includes(s.status)
          : status
            ? s.status === status
            : s.status !== "canceled")) &&
      createdOk(s.created),
  );
  return { body: paginate(items, params, "/v1/subscriptions") };
}

/**
 * The default proration date: now, or the period start when the renew control has moved the
 * period ahead of the clock (it stands in for the time having passed).
 * @param {Json} subscription
 */
export const prorationNow = (subscription) =>
  Math.min(
    Math.max(now(), subscription.items.data[0]?.current_period_start ?? 0),
    currentPeriodEnd(subscription),
  );

/**
 * "6 Dec 2026", the date Stripe's proration descriptions name.
 * @param {number} ts
 */
const prorationDay = (ts) =>
  new Date(ts * 1000).toLocaleDateString("en-GB", {
    day: "numeric",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  });

/**
 * The two proration items of switching a subscription item at `at`, to the second, as Stripe
 * computes them: the unused time on the old price as a credit, the remaining time on the new
 * one as a charge, both pending until an invoice takes them.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {Json} item
 * @param {Json} price
 * @param {number} quantity
 * @param {number} at
 */
function prorate(ctx, subscription, item, price, quantity, at) {
  const span = item.current_period_end - item.current_period_start;
  const fraction = span > 0 ? Math.max(0, item.current_period_end - at) / span : 0;
  const productName = (/** @type {Json} */ p) => ctx.state.products.get(p.product)?.name ?? p.id;
  const base = {
    customer: subscription.customer,
    currency: subscription.currency,
    metadata: {},
    invoice: null,
    period: { start: at, end: item.current_period_end },
    subscription: subscription.id,
    subscriptionItem: item.id,
    proration: true,
  };
  const credit = storeInvoiceItem(ctx.state, {
    ...base,
    amount: -Math.round(item.price.unit_amount * item.quantity * fraction),
    description: `Unused time on ${productName(item.price)} after ${prorationDay(at)}`,
    price: item.price,
    quantity: item.quantity,
  });
  const charge = storeInvoiceItem(ctx.state, {
    ...base,
    amount: Math.round(price.unit_amount * quantity * fraction),
    description: `Remaining time on ${quantity} × ${productName(price)} after ${prorationDay(at)}`,
    price,
    quantity,
  });
  ctx.emit("invoiceitem.created", credit);
  ctx.emit("invoiceitem.created", charge);
}

/**
 * Switches prices or quantities. With `create_prorations` (the API's default) the prorations
 * stay pending for the next invoice; `always_invoice` bills them at once (changePlan);
 * `none` bills nothing for the rest of the period.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {{ id?: string, price?: Json, quantity?: number }[]} changes
 * @param {string} proration
 * @param {number} at The proration date.
 * @returns {Json | null} previous items, when anything changed
 */
function changeItems(ctx, subscription, changes, proration, at) {
  const before = clone(subscription.items);
  let changed = false;
  for (const [i, change] of changes.entries()) {
    const item = change.id
      ? subscription.items.data.find((/** @type {Json} */ it) => it.id === change.id)
      : subscription.items.data[0];
    if (!item) {
      throw invalidRequest(`No such subscription item: '${change.id}'`, {
        code: "resource_missing",
        param: `items[${i}][id]`,
      });
    }
    const price = change.price ?? item.price;
    const quantity = change.quantity ?? item.quantity;
    if (price.id === item.price.id && quantity === item.quantity) continue;
    if (price.currency !== subscription.currency) {
      throw invalidRequest("All prices on a subscription must have the same currency.", {
        param: `items[${i}][price]`,
      });
    }
    if (proration !== "none") prorate(ctx, subscription, item, price, quantity, at);
    setItemPrice(item, price, quantity);
    changed = true;
  }
  return changed ? { items: before } : null;
}

/**
 * @param {Json} item A subscription item.
 * @param {Json} price
 * @param {number} quantity
 */
export function setItemPrice(item, price, quantity) {
  item.price = clone(price);
  item.plan = planOf(price);
  item.quantity = quantity;
}

/**
 * A plan change as Stripe applies it, for the API and the portal page: items switched (with
 * prorations per `proration`), `customer.subscription.updated`, and for `always_invoice` an
 * invoice (`subscription_update`) finalized and charged at once. An invoice left unpaid (no
 * card, a decline, or `default_incomplete`, which does not try) makes an active subscription
 * `past_due`, as `payment_behavior` says for updates.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {{ changes: { id?: string, price?: Json, quantity?: number }[], proration: string,
 *   at: number, paymentBehavior: string, previous?: Json }} f `previous`: other changes made.
 */
export function changePlan(ctx, subscription, f) {
  const itemsBefore = changeItems(ctx, subscription, f.changes, f.proration, f.at);
  const previous = { ...(itemsBefore ?? {}), ...(f.previous ?? {}) };
  if (Object.keys(previous).length > 0) {
    ctx.emit("customer.subscription.updated", subscription, previous);
  }
  if (!itemsBefore || f.proration !== "always_invoice") return null;
  const invoice = invoiceSubscription(ctx, subscription, "subscription_update", {
    withItems: false,
  });
  if (invoice.status !== "open") return invoice;
  const pm = subscriptionPaymentMethod(ctx.state, subscription);
  if (pm && f.paymentBehavior !== "default_incomplete") attemptInvoicePayment(ctx, invoice, pm);
  if (invoice.status === "open" && subscription.status === "active") {
    setSubscriptionStatus(ctx, subscription, "past_due");
  }
  return invoice;
}

/**
 * `error_if_incomplete` makes Stripe refuse (402, nothing changed) a change whose invoice
 * cannot be paid at once.
 * @param {State} state
 * @param {Json} subscription
 */
export function refuseIfUnpayable(state, subscription) {
  const pm = subscriptionPaymentMethod(state, subscription);
  const behavior = pm ? (state.cardBehaviors.get(pm.id) ?? { kind: "succeed" }) : null;
  if (behavior?.kind === "succeed") return;
  if (!behavior) throw noPaymentMethod();
  throw cardRefusal(behavior);
}

/**
 * The 402 a card that cannot pay at once gets: its decline, or the authentication it needs.
 * @param {Json} behavior a card behaviour other than `succeed`
 */
function cardRefusal(behavior) {
  return new StripeHttpError(
    402,
    behavior.kind === "decline"
      ? {
          code: behavior.code,
          decline_code: behavior.decline_code,
          message: behavior.message,
          type: "card_error",
        }
      : {
          code: "subscription_payment_intent_requires_action",
          message: REQUIRES_ACTION_MESSAGE,
          type: "card_error",
        },
  );
}

/** @param {Ctx} ctx */
function updateSubscription(ctx) {
  const { state, params } = ctx;
  const subscription = subscriptionFromPath(ctx);
  rejectUnknown(params, [
    ...SUBSCRIPTION_COMMON_PARAMS,
    "cancellation_details",
    "pause_collection",
    "proration_date",
  ]);
  if (subscription.status === "canceled") {
    const allowed = ["cancellation_details", "metadata", "expand"];
    if (Object.keys(params).some((k) => !allowed.includes(k))) {
      throw invalidRequest(
        "A canceled subscription can only update its cancellation_details and metadata.",
      );
    }
  }
  const changes = readItems(params, state);
  const proration =
    readEnum(params, "proration_behavior", PRORATION_BEHAVIORS) ?? "create_prorations";
  const periodStart = subscription.items.data[0]?.current_period_start ?? now();
  const given = readInteger(params, "proration_date");
  const at = given ?? prorationNow(subscription);
  if (given !== undefined && (at < periodStart || at > currentPeriodEnd(subscription))) {
    throw invalidRequest("The proration date must be within the current billing period.", {
      param: "proration_date",
    });
  }
  const cancelAtPeriodEnd = readBoolean(params, "cancel_at_period_end");
  if (cancelAtPeriodEnd !== undefined && subscription.schedule) {
    throw invalidRequest(
      `The subscription is managed by the subscription schedule \`${subscription.schedule}\`, and updating any cancelation behavior directly is not allowed. Please update the schedule instead.`,
    );
  }
  const defaultPm = readSubscriptionPaymentMethod(state, params, subscription.customer);
  const metadata = readMetadata(params);
  const nextMetadata =
    metadata === undefined ? undefined : mergeMetadata(subscription.metadata, metadata);
  const paymentBehavior =
    readEnum(params, "payment_behavior", PAYMENT_BEHAVIORS) ?? "allow_incomplete";
  if (paymentBehavior === "pending_if_incomplete") {
    throw invalidRequest("pending_if_incomplete (pending updates) is not modelled.", {
      param: "payment_behavior",
    });
  }
  const description = readString(params, "description");
  // Checked before anything changes: the 402 leaves the subscription as it was.
  if (paymentBehavior === "error_if_incomplete" && proration === "always_invoice") {
    if (changes.length > 0) refuseIfUnpayable(state, subscription);
  }

  /** @type {Json} */
  const previous = {};
  if (cancelAtPeriodEnd !== undefined && cancelAtPeriodEnd !== subscription.cancel_at_period_end) {
    previous.cancel_at_period_end = subscription.cancel_at_period_end;
    previous.cancel_at = subscription.cancel_at;
    previous.canceled_at = subscription.canceled_at;
    previous.cancellation_details = clone(subscription.cancellation_details);
    setCancelAtPeriodEnd(subscription, cancelAtPeriodEnd);
  }
  if (defaultPm !== undefined && defaultPm !== subscription.default_payment_method) {
    previous.default_payment_method = subscription.default_payment_method;
    subscription.default_payment_method = defaultPm;
  }
  if (nextMetadata && canonicalJson(nextMetadata) !== canonicalJson(subscription.metadata)) {
    previous.metadata = clone(subscription.metadata);
    subscription.metadata = nextMetadata;
  }
  if (description !== undefined && description !== subscription.description) {
    previous.description = subscription.description;
    subscription.description = description;
  }
  changePlan(ctx, subscription, { changes, proration, at, paymentBehavior, previous });
  return { body: subscription };
}

/**
 * Sets or clears a cancellation at period end (API and portal).
 * @param {Json} subscription
 * @param {boolean} value
 */
export function setCancelAtPeriodEnd(subscription, value) {
  applyCancelAtPeriodEnd(subscription, value);
  subscription.canceled_at = value ? now() : null;
  subscription.cancellation_details = value
    ? { comment: null, feedback: null, reason: "cancellation_requested" }
    : { comment: null, feedback: null, reason: null };
}

/**
 * Ends a subscription now. A schedule attached to it is canceled with it.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {string} reason
 */
export function endSubscription(ctx, subscription, reason) {
  const at = now();
  subscription.status = "canceled";
  subscription.canceled_at ??= at;
  subscription.ended_at = at;
  subscription.cancellation_details.reason ??= reason;
  const schedule = subscription.schedule
    ? ctx.state.subscriptionSchedules.get(subscription.schedule)
    : null;
  if (schedule) {
    schedule.status = "canceled";
    schedule.canceled_at = at;
    schedule.current_phase = null;
    ctx.emit("subscription_schedule.canceled", schedule);
  }
  ctx.emit("customer.subscription.deleted", subscription);
}

/**
 * The last invoice of a subscription that ends: only its own pending items. None when
 * nothing is pending.
 * @param {Ctx} ctx
 * @param {Json} subscription
 * @param {string} billingReason
 */
function finalInvoice(ctx, subscription, billingReason) {
  if (pendingItems(ctx.state, subscription, true).length === 0) return null;
  const invoice = invoiceSubscription(ctx, subscription, billingReason, {
    withItems: false,
    ownItemsOnly: true,
  });
  const pm = subscriptionPaymentMethod(ctx.state, subscription);
  if (invoice.status === "open" && pm) attemptInvoicePayment(ctx, invoice, pm);
  return invoice;
}

/**
 * `DELETE /v1/subscriptions/:id`: ends it now. `prorate` credits the unused time (a pending
 * proration item); `invoice_now` bills the subscription's pending items at once. Without
 * either, its pending prorations are deleted, as Stripe's reference says.
 * @param {Ctx} ctx
 */
function cancelSubscription(ctx) {
  rejectUnknown(ctx.params, ["cancellation_details", "expand", "invoice_now", "prorate"]);
  const subscription = subscriptionFromPath(ctx);
  if (subscription.status === "canceled") {
    throw invalidRequest(`This subscription has already been canceled: ${subscription.id}.`, {
      code: "resource_missing",
    });
  }
  const details = readObject(ctx.params, "cancellation_details", ["comment", "feedback"]);
  const invoiceNow = readBoolean(ctx.params, "invoice_now") ?? false;
  const prorateUnused = readBoolean(ctx.params, "prorate") ?? false;
  subscription.cancellation_details.comment = readString(details, "comment") ?? null;
  subscription.cancellation_details.feedback = readString(details, "feedback") ?? null;
  subscription.cancellation_details.reason = "cancellation_requested";
  const { state } = ctx;
  if (prorateUnused && subscription.status !== "incomplete") {
    const at = prorationNow(subscription);
    const fraction = (/** @type {Json} */ item) => {
      const span = item.current_period_end - item.current_period_start;
      return span > 0 ? Math.max(0, item.current_period_end - at) / span : 0;
    };
    for (const item of subscription.items.data) {
      const credit = storeInvoiceItem(state, {
        customer: subscription.customer,
        currency: subscription.currency,
        metadata: {},
        invoice: null,
        period: { start: at, end: item.current_period_end },
        subscription: subscription.id,
        subscriptionItem: item.id,
        proration: true,
        amount: -Math.round(item.price.unit_amount * item.quantity * fraction(item)),
        description: `Unused time on ${state.products.get(item.price.product)?.name ?? item.price.id} after ${prorationDay(at)}`,
        price: item.price,
        quantity: item.quantity,
      });
      ctx.emit("invoiceitem.created", credit);
    }
  }
  if (!invoiceNow && !prorateUnused) {
    for (const item of pendingItems(state, subscription, true)) {
      if (!item.proration) continue;
      state.invoiceItems.delete(item.id);
      ctx.emit("invoiceitem.deleted", item);
    }
  }
  endSubscription(ctx, subscription, "cancellation_requested");
  if (invoiceNow) finalInvoice(ctx, subscription, "subscription_update");
  return { body: subscription };
}

/**
 * Moves a subscription into its next period, as Stripe does at period end. A cancellation at
 * period end ends it (its pending prorations are still billed, on a final invoice, as
 * Stripe's cancel reference says). Otherwise a subscription schedule moves to its next phase
 * (or releases the subscription after its last one), the items advance one interval, and the
 * next invoice (`subscription_cycle`) is created, finalized and charged off-session; a
 * failure makes the subscription `past_due`. Used by the private renew helper.
 * @param {Ctx} ctx
 * @param {Json} subscription
 */
export function renewSubscription(ctx, subscription) {
  if (subscription.status === "canceled" || subscription.status === "incomplete") {
    throw invalidRequest(
      `Only active or past_due subscriptions renew; ${subscription.id} is ${subscription.status}.`,
    );
  }
  if (subscription.cancel_at_period_end) {
    const invoice = finalInvoice(ctx, subscription, "subscription_cycle");
    endSubscription(ctx, subscription, "cancellation_requested");
    return { subscription, invoice };
  }
  const before = clone(subscription.items);
  const previousInvoice = subscription.latest_invoice;
  const periodStart = subscription.items.data[0].current_period_start;
  const previousSchedule = subscription.schedule;
  // A schedule's next phase takes effect as the new period starts: no proration.
  const phaseItems = advanceSchedule(ctx, subscription, currentPeriodEnd(subscription)) ?? [];
  for (const [i, next] of phaseItems.entries()) {
    const item = subscription.items.data[i];
    if (item) setItemPrice(item, getPrice(ctx.state, next.price), next.quantity);
  }
  for (const item of subscription.items.data) {
    item.current_period_start = item.current_period_end;
    item.current_period_end = addInterval(
      item.current_period_start,
      item.price.recurring.interval,
      item.price.recurring.interval_count,
    );
  }
  const invoice = invoiceSubscription(ctx, subscription, "subscription_cycle", {
    periodStart,
    periodEnd: subscription.items.data[0].current_period_start,
  });
  ctx.emit("customer.subscription.updated", subscription, {
    items: before,
    latest_invoice: previousInvoice,
    ...(previousSchedule !== subscription.schedule ? { schedule: previousSchedule } : {}),
  });
  if (invoice.status === "open" && subscription.collection_method === "charge_automatically") {
    const pm = subscriptionPaymentMethod(ctx.state, subscription);
    const result = pm ? attemptInvoicePayment(ctx, invoice, pm) : { ok: false };
    if (!result.ok && subscription.status === "active") {
      setSubscriptionStatus(ctx, subscription, "past_due");
    }
  }
  return { subscription, invoice };
}

/** @param {Ctx} ctx */
function renewEndpoint(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  const subscription = subscriptionFromPath(ctx);
  const { invoice } = renewSubscription(ctx, subscription);
  return { body: { subscription, invoice } };
}

export const SUBSCRIPTION_EXPAND = [
  "customer",
  "default_payment_method",
  "latest_invoice",
  "latest_invoice.payments",
  "latest_invoice.confirmation_secret",
  "items.data.price.product",
  "schedule",
];
export const INVOICE_EXPAND = [
  "customer",
  "default_payment_method",
  "payments",
  "confirmation_secret",
  "parent.subscription_details.subscription",
];

/** @param {string[]} paths */
const inList = (paths) => paths.map((p) => `data.${p}`);

/** Route table entries: [method, path, handler, expandable]. */
export const BILLING_ROUTES = /** @type {const} */ ([
  ["POST", "/v1/products", createProduct, []],
  ["GET", "/v1/products", listProducts, []],
  ["GET", "/v1/products/search", searchProducts, []],
  ["GET", "/v1/products/:id", retrieveProduct, ["default_price"]],
  ["POST", "/v1/products/:id", updateProduct, ["default_price"]],
  ["POST", "/v1/prices", createPrice, ["product"]],
  ["GET", "/v1/prices", listPrices, inList(["product"])],
  ["GET", "/v1/prices/search", searchPrices, inList(["product"])],
  ["GET", "/v1/prices/:id", retrievePrice, ["product"]],
  ["POST", "/v1/prices/:id", updatePrice, ["product"]],
  ["POST", "/v1/invoiceitems", createInvoiceItem, ["customer", "invoice"]],
  ["GET", "/v1/invoiceitems", listInvoiceItems, inList(["customer", "invoice"])],
  ["GET", "/v1/invoiceitems/:id", retrieveInvoiceItem, ["customer", "invoice"]],
  ["POST", "/v1/invoices", createInvoice, INVOICE_EXPAND],
  ["GET", "/v1/invoices", listInvoices, inList(INVOICE_EXPAND)],
  ["GET", "/v1/invoices/search", searchInvoices, inList(INVOICE_EXPAND)],
  ["GET", "/v1/invoices/:id", retrieveInvoice, INVOICE_EXPAND],
  ["POST", "/v1/invoices/:id", updateInvoice, INVOICE_EXPAND],
  ["DELETE", "/v1/invoices/:id", deleteInvoice, []],
  ["GET", "/v1/invoices/:id/lines", listInvoiceLines, []],
  ["POST", "/v1/invoices/:id/finalize", finalizeInvoiceEndpoint, INVOICE_EXPAND],
  ["POST", "/v1/invoices/:id/pay", payInvoice, INVOICE_EXPAND],
  ["POST", "/v1/invoices/:id/void", voidInvoice, INVOICE_EXPAND],
  ["POST", "/v1/invoices/:id/mark_uncollectible", markUncollectible, INVOICE_EXPAND],
  ["GET", "/v1/invoice_payments", listInvoicePayments, inList(["payment.payment_intent"])],
  ["GET", "/v1/invoice_payments/:id", retrieveInvoicePayment, ["payment.payment_intent"]],
  ["POST", "/v1/subscriptions", createSubscription, SUBSCRIPTION_EXPAND],
  ["GET", "/v1/subscriptions", listSubscriptions, inList(SUBSCRIPTION_EXPAND)],
  ["GET", "/v1/subscriptions/:id", retrieveSubscription, SUBSCRIPTION_EXPAND],
  ["POST", "/v1/subscriptions/:id", updateSubscription, SUBSCRIPTION_EXPAND],
  ["DELETE", "/v1/subscriptions/:id", cancelSubscription, SUBSCRIPTION_EXPAND],
  ["POST", "/_local/subscriptions/:id/renew", renewEndpoint, []],
]);
