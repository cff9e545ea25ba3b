import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Safe to run more than once: applied migrations are tracked in d1_migrations.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
