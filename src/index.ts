import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleDeadLetterBatch, handleRechargeBatch } from "./recharge/consumer";

export { AccountLedger } from "./ledger/account-ledger";

const app = createApp();

export default {
  fetch: app.fetch,
  async queue(batch, env, _ctx) {
    // Queue names come from wrangler.toml; a `-dlq` suffix marks the dead-letter queue.
    if (batch.queue.endsWith("-dlq")) return handleDeadLetterBatch(batch, env);
    return handleRechargeBatch(batch, env);
  },
} satisfies ExportedHandler<Bindings>;
