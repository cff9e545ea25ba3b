// @ts-check
/**
 * Billing portal configurations and sessions. The session `url` points at the local portal
 * page (pages.mjs).
 */
import {
  getCustomerOr404,
  getOr404,
  invalidRequest,
  isPlainObject,
  mergeMetadata,
  newestFirst,
  newId,
  now,
  paginate,
  readBoolean,
  readEnum,
  readMetadata,
  readObject,
  readString,
  readStringList,
  rejectUnknown,
} from "./lib.mjs";

/** @typedef {import("./lib.mjs").Json} Json */
/** @typedef {import("./lib.mjs").Ctx} Ctx */
/** @typedef {import("./lib.mjs").State} State */

const PRORATIONS = ["always_invoice", "create_prorations", "none"];
const SCHEDULE_CONDITIONS = ["decreasing_item_amount", "shortening_interval"];

/**
 * @param {Json} params `features[subscription_update]`
 * @param {State} state
 * @param {Json} current
 */
function readSubscriptionUpdate(params, state, current) {
  const value = readObject(params, "subscription_update", [
    "billing_cycle_anchor",
    "default_allowed_updates",
    "enabled",
    "products",
    "proration_behavior",
    "schedule_at_period_end",
    "trial_update_behavior",
  ]);
  const label = "features[subscription_update]";
  const next = { ...current };
  const enabled = readBoolean(value, "enabled");
  if (enabled !== undefined) next.enabled = enabled;
  const allowed = readStringList(value, "default_allowed_updates");
  if (allowed) next.default_allowed_updates = allowed;
  const proration = readEnum(value, "proration_behavior", PRORATIONS, {
    label: `${label}[proration_behavior]`,
  });
  if (proration) next.proration_behavior = proration;
  const schedule = readObject(value, "schedule_at_period_end", ["conditions"]);
  if (schedule.conditions !== undefined) {
    const conditions = schedule.conditions === "" ? [] : schedule.conditions;
    if (!Array.isArray(conditions)) {
      throw invalidRequest("Invalid array", {
        param: `${label}[schedule_at_period_end][conditions]`,
      });
    }
    next.schedule_at_period_end = {
      conditions: conditions.map((/** @type {unknown} */ raw, /** @type {number} */ i) => {
        const p = `${label}[schedule_at_period_end][conditions][${i}]`;
        if (!isPlainObject(raw)) throw invalidRequest("Invalid object", { param: p });
        rejectUnknown(/** @type {Json} */ (raw), ["type"], p);
        const type = readEnum(/** @type {Json} */ (raw), "type", SCHEDULE_CONDITIONS, {
          label: `${p}[type]`,
          required: true,
        });
        return { type };
      }),
    };
  }
  if (value.products !== undefined) {
    if (!Array.isArray(value.products)) {
      throw invalidRequest("Invalid array", { param: `${label}[products]` });
    }
    next.products = value.products.map((/** @type {unknown} */ raw, /** @type {number} */ i) => {
      const p = `${label}[products][${i}]`;
      if (!isPlainObject(raw)) throw invalidRequest("Invalid object", { param: p });
      const entry = /** @type {Json} */ (raw);
      rejectUnknown(entry, ["adjustable_quantity", "prices", "product"], p);
      const product = /** @type {string} */ (
        readString(entry, "product", { required: true, label: `${p}[product]` })
      );
      getOr404(state.products, product, "product", `${p}[product]`);
      const prices = readStringList(entry, "prices") ?? [];
      for (const priceId of prices) {
        const price = getOr404(state.prices, priceId, "price", `${p}[prices]`);
        if (price.product !== product) {
          throw invalidRequest(`The price ${priceId} does not belong to product ${product}.`, {
            param: `${p}[prices]`,
          });
        }
      }
      return {
        adjustable_quantity: { enabled: false, maximum: null, minimum: 1 },
        prices,
        product,
      };
    });
  }
  if (next.enabled && next.products.length === 0) {
    throw invalidRequest(
      "You must specify at least one product when subscription updates are enabled.",
      { param: `${label}[products]` },
    );
  }
  return next;
}

/**
 * @param {Ctx} ctx
 * @param {Json} config
 * @param {Json} params
 */
function applyConfiguration(ctx, config, params) {
  const { state } = ctx;
  const profile = readObject(params, "business_profile", [
    "headline",
    "privacy_policy_url",
    "terms_of_service_url",
  ]);
  const features = readObject(params, "features", [
    "customer_update",
    "invoice_history",
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
  ]);
  for (const key of ["headline", "privacy_policy_url", "terms_of_service_url"]) {
    const value = readString(profile, key);
    if (value !== undefined) config.business_profile[key] = value;
  }
  const f = config.features;
  const invoiceHistory = readObject(features, "invoice_history", ["enabled"]);
  const ih = readBoolean(invoiceHistory, "enabled");
  if (ih !== undefined) f.invoice_history.enabled = ih;
  const pmUpdate = readObject(features, "payment_method_update", [
    "enabled",
    "payment_method_configuration",
  ]);
  const pmu = readBoolean(pmUpdate, "enabled");
  if (pmu !== undefined) f.payment_method_update.enabled = pmu;
  const cancel = readObject(features, "subscription_cancel", [
    "cancellation_reason",
    "enabled",
    "mode",
    "proration_behavior",
  ]);
  const ce = readBoolean(cancel, "enabled");
  if (ce !== undefined) f.subscription_cancel.enabled = ce;
  const mode = readEnum(cancel, "mode", ["at_period_end", "immediately"], {
    label: "features[subscription_cancel][mode]",
  });
  if (mode) f.subscription_cancel.mode = mode;
  const cancelProration = readEnum(cancel, "proration_behavior", PRORATIONS, {
    label: "features[subscription_cancel][proration_behavior]",
  });
  if (cancelProration) f.subscription_cancel.proration_behavior = cancelProration;
  const customerUpdate = readObject(features, "customer_update", ["allowed_updates", "enabled"]);
  const cu = readBoolean(customerUpdate, "enabled");
  if (cu !== undefined) f.customer_update.enabled = cu;
  const cua = readStringList(customerUpdate, "allowed_updates");
  if (cua) f.customer_update.allowed_updates = cua;
  f.subscription_update = readSubscriptionUpdate(features, state, f.subscription_update);
  const returnUrl = readString(params, "default_return_url");
  if (returnUrl !== undefined) config.default_return_url = returnUrl;
  const name = readString(params, "name");
  if (name !== undefined) config.name = name;
  const active = readBoolean(params, "active");
  if (active !== undefined) config.active = active;
  const metadata = readMetadata(params);
  if (metadata !== undefined) config.metadata = mergeMetadata(config.metadata, metadata);
  config.updated = now();
}

/**
 * @param {State} state
 * @param {boolean} isDefault
 */
function storeConfiguration(state, isDefault) {
  const created = now();
  const config = {
    id: newId("bpc_"),
    object: "billing_portal.configuration",
    active: true,
    application: null,
    business_profile: { headline: null, privacy_policy_url: null, terms_of_service_url: null },
    created,
    default_return_url: null,
    features: {
      customer_update: { allowed_updates: [], enabled: false },
      invoice_history: { enabled: true },
      payment_method_update: { enabled: true, payment_method_configuration: null },
      subscription_cancel: {
        cancellation_reason: { enabled: false, options: [] },
        enabled: true,
        mode: "at_period_end",
        proration_behavior: "none",
      },
      subscription_update: {
        billing_cycle_anchor: null,
        default_allowed_updates: [],
        enabled: false,
        products: [],
        proration_behavior: "none",
        schedule_at_period_end: { conditions: [] },
        trial_update_behavior: "end_trial",
      },
    },
    is_default: isDefault,
    livemode: false,
    login_page: { enabled: false, url: null },
    metadata: {},
    name: null,
    updated: created,
  };
  state.portalConfigurations.set(config.id, config);
  return config;
}

/**
 * The account's default configuration. Stripe's is made in the Dashboard; here the first one
 * made through the API becomes the default, or one is made on first use.
 * @param {State} state
 */
export function defaultConfiguration(state) {
  for (const config of state.portalConfigurations.values()) if (config.is_default) return config;
  return storeConfiguration(state, true);
}

const CONFIG_PARAMS = [
  "business_profile",
  "default_return_url",
  "expand",
  "features",
  "login_page",
  "metadata",
  "name",
];

/** @param {Ctx} ctx */
function createConfiguration(ctx) {
  rejectUnknown(ctx.params, CONFIG_PARAMS);
  const hasDefault = [...ctx.state.portalConfigurations.values()].some((c) => c.is_default);
  // A bad request must store nothing: the new configuration is removed again on error.
  const config = storeConfiguration(ctx.state, !hasDefault);
  try {
    applyConfiguration(ctx, config, ctx.params);
  } catch (err) {
    ctx.state.portalConfigurations.delete(config.id);
    throw err;
  }
  ctx.emit("billing_portal.configuration.created", config);
  return { body: config };
}

/** @param {Ctx} ctx */
const configFromPath = (ctx) =>
  getOr404(
    ctx.state.portalConfigurations,
    ctx.pathParams.id ?? "",
    "configuration",
    "configuration",
  );

/** @param {Ctx} ctx */
function retrieveConfiguration(ctx) {
  rejectUnknown(ctx.params, ["expand"]);
  return { body: configFromPath(ctx) };
}

/** @param {Ctx} ctx */
function updateConfiguration(ctx) {
  rejectUnknown(ctx.params, [...CONFIG_PARAMS, "active"]);
  const config = configFromPath(ctx);
  const before = structuredClone(config);
  try {
    applyConfiguration(ctx, config, ctx.params);
  } catch (err) {
    Object.assign(config, before);
    throw err;
  }
  ctx.emit("billing_portal.configuration.updated", config);
  return { body: config };
}

/** @param {Ctx} ctx */
function listConfigurations(ctx) {
  const { params } = ctx;
  rejectUnknown(params, [
    "active",
    "ending_before",
    "expand",
    "is_default",
    "limit",
    "starting_after",
  ]);
  const active = readBoolean(params, "active");
  const isDefault = readBoolean(params, "is_default");
  const items = newestFirst(
    ctx.state.portalConfigurations,
    (c) =>
      (active === undefined || c.active === active) &&
      (isDefault === undefined || c.is_default === isDefault),
  );
  return { body: paginate(items, params, "/v1/billing_portal/configurations") };
}

/** @param {Ctx} ctx */
function createPortalSession(ctx) {
  const { state, params } = ctx;
  rejectUnknown(params, [
    "configuration",
    "customer",
    "customer_account",
    "expand",
    "flow_data",
    "locale",
    "on_behalf_of",
    "return_url",
  ]);
  const customerId = /** @type {string} */ (readString(params, "customer", { required: true }));
  getCustomerOr404(state, customerId, "customer");
  const configId = readString(params, "configuration");
  const config = configId
    ? getOr404(state.portalConfigurations, configId, "configuration", "configuration")
    : defaultConfiguration(state);
  if (!config.active) {
    throw invalidRequest("The configuration is inactive.", { param: "configuration" });
  }
  const returnUrl = readString(params, "return_url") ?? config.default_return_url ?? null;
  const id = newId("bps_");
  const session = {
    id,
    object: "billing_portal.session",
    configuration: config.id,
    created: now(),
    customer: customerId,
    customer_account: null,
    flow: null,
    livemode: false,
    locale: readString(params, "locale") ?? null,
    on_behalf_of: null,
    return_url: returnUrl,
    url: `${ctx.app.baseUrl}/p/session/${id}`,
  };
  state.portalSessions.set(id, session);
  return { body: session };
}

export const PORTAL_ROUTES = /** @type {const} */ ([
  ["POST", "/v1/billing_portal/configurations", createConfiguration, []],
  ["GET", "/v1/billing_portal/configurations", listConfigurations, []],
  ["GET", "/v1/billing_portal/configurations/:id", retrieveConfiguration, []],
  ["POST", "/v1/billing_portal/configurations/:id", updateConfiguration, []],
  ["POST", "/v1/billing_portal/sessions", createPortalSession, ["configuration"]],
]);
