import { createApp } from "./app";
import { handleWebhookBatch, handleWebhookDeadLetters } from "./delivery/webhook-consumer";
import type { WebhookMessage } from "./delivery/webhooks";
import { handleRefundBatch, handleRefundDeadLetters } from "./gateway/refunds";
import type { Bindings } from "./platform/env";
import { handleDeadLetterBatch, handleRechargeBatch } from "./purchases/consumer";
import { reconcile } from "./purchases/reconciler";

export { AccountLedger } from "./ledger/account-ledger";
export { LedgerShard } from "./ledger/shards/ledger-shard";

const app = createApp();

export default {
  fetch: app.fetch,
  async queue(batch, env, _ctx) {
    // Queue names come from wrangler.toml: `…-webhooks` carries webhooks to customers, `…-refund` refunds, a `-dlq` suffix marks
    // a dead-letter queue, anything else is the recharge queue.
    const name = batch.queue;
    if (name.endsWith("-webhooks-dlq"))
      return handleWebhookDeadLetters(batch as MessageBatch<WebhookMessage>, env);
    if (name.endsWith("-webhooks"))
      return handleWebhookBatch(batch as MessageBatch<WebhookMessage>, env);
    if (name.endsWith("-refund-dlq")) return handleRefundDeadLetters(batch, env);
    if (name.endsWith("-refund")) return handleRefundBatch(batch, env);
    if (name.endsWith("-dlq")) return handleDeadLetterBatch(batch, env);
    return handleRechargeBatch(batch, env);
  },
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      reconcile(env).then((report) => {
        const repaired =
          report.credited.length +
          report.failed.length +
          report.redriven.length +
          report.grantsRepaired.length +
          report.refundsApplied.length;
        if (repaired > 0 || report.attention.length > 0)
          console.warn("reconciler", JSON.stringify(report));
      }),
    );
  },
} satisfies ExportedHandler<Bindings>;
