import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** Empty until a test applies migrations to it (members-migration.test.ts). */
      MIGRATION_DB: D1Database;
      ADMIN_TOKEN: string;
      STRIPE_SECRET_KEY: string;
      STRIPE_WEBHOOK_SECRET: string;
      STRIPE_API_URL: string;
      UPSTREAM_TOKEN: string;
      SESSION_SECRET: string;
      STRIPE_PRICE_STARTER: string;
      STRIPE_PRICE_PRO: string;
      STRIPE_PRICE_CREDITS_1000: string;
      STRIPE_PORTAL_CONFIGURATION: string;
      ACCESS_TEAM_DOMAIN: string;
      ACCESS_AUD: string;
      /** Where a test posts its Access public key (test/global/access-keys.ts). */
      ACCESS_KEYS_URL: string;
      /** The subscription model test's budget (test/integration/subscription-model.test.ts). */
      MODEL_SEEDS?: string;
      MODEL_STEPS?: string;
      MODEL_FIRST_SEED?: string;
      MODEL_VERBOSE?: string;
    }
  }
}
