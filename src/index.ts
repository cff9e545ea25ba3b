import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleDeadLetterBatch, handleRechargeBatch } from "./recharge/consumer";
import { reconcile } from "./recharge/reconciler";

export { AccountLedger } from "./ledger/account-ledger";

const app = createApp();

export default {
  fetch: app.fetch,
  async queue(batch, env, _ctx) {
    // Queue names come from wrangler.toml; a `-dlq` suffix marks the dead-letter queue.
    if (batch.queue.endsWith("-dlq")) return handleDeadLetterBatch(batch, env);
    return handleRechargeBatch(batch, env);
  },
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      reconcile(env).then((report) => {
        const repaired =
          report.credited.length +
          report.failed.length +
          report.redriven.length +
          report.grantsRepaired.length;
        if (repaired > 0 || report.attention.length > 0)
          console.warn("reconciler", JSON.stringify(report));
      }),
    );
  },
} satisfies ExportedHandler<Bindings>;
