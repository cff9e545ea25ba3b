import { env } from "cloudflare:workers";

// Each test file starts from empty storage: the schema goes in as one D1 batch (one round trip)
// rather than migration by migration, which cost about 5 s per file. The migration files
// themselves are tested as migrations by test/integration/members-migration.test.ts.
const exists = await env.DB.prepare(
  "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'",
).first();
if (!exists) {
  const statements = env.TEST_MIGRATIONS.flatMap((m) => m.queries);
  await env.DB.batch(statements.map((q) => env.DB.prepare(q)));
}
