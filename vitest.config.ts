import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));

export default defineConfig({
  // The stripe package ships source maps without sources; vite warns for each file.
  logLevel: "error",
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // An empty database of its own for test/integration/members-migration.test.ts, which
        // applies the migrations in two steps (the app's DB has them all already).
        d1Databases: ["MIGRATION_DB"],
        bindings: {
          TEST_MIGRATIONS: migrations,
          UPSTREAM_URL: inject("upstreamUrl"),
          UPSTREAM_TIMEOUT_MS: "1000",
          UPSTREAM_TOKEN: "upstream-secret",
          STRIPE_API_URL: inject("stripeUrl"),
          STRIPE_SECRET_KEY: "sk_test_tollgate",
          STRIPE_WEBHOOK_SECRET: "whsec_test_tollgate",
          ADMIN_TOKEN: "test-admin-token",
          // Cloudflare Access in front of /admin, its keys served by test/global/access-keys.ts.
          ACCESS_TEAM_DOMAIN: "tollgate-test.cloudflareaccess.com",
          ACCESS_AUD: "test-access-aud",
          ACCESS_CERTS_URL: `${inject("accessKeysUrl")}/cdn-cgi/access/certs`,
          ACCESS_KEYS_URL: inject("accessKeysUrl"),
          SESSION_SECRET: "test-session-secret",
          SIGNUP_ENABLED: "true",
          RECHARGE_RETRY_BASE_SECONDS: "0",
          // One machine, one clock: a debit sent after a ledger started is in its memory.
          LEDGER_CLOCK_MARGIN_MS: "0",
          // The ledger's one test seam: `testSetClock` works only where this is set.
          LEDGER_TEST_CLOCK: "true",
          // The subscription model test's budget: CI's default, or a longer soak from the shell.
          ...Object.fromEntries(
            ["MODEL_SEEDS", "MODEL_STEPS", "MODEL_FIRST_SEED", "MODEL_VERBOSE"].flatMap((name) =>
              process.env[name] ? [[name, process.env[name]]] : [],
            ),
          ),
          // Made in the local Stripe server by `npm run stripe:setup`'s code (global setup).
          ...inject("stripeEnv"),
        },
      },
    })),
  ],
  test: {
    globalSetup: ["./test/global/servers.ts"],
    setupFiles: ["./test/helpers/apply-migrations.ts"],
    include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // vitest's default is one worker less than the cores: one file at a time on CI's two. The
    // files wait on workerd, queues and the local servers more than they compute, so two at a
    // time take about 300 s here instead of 470 (every test makes its own accounts and ids).
    maxWorkers: 2,
  },
});
