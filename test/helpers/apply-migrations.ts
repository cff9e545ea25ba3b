import { applyD1Migrations, env } from "cloudflare:test";

// Safe to run more than once: applied migrations are tracked in d1_migrations.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
