/**
 * Delivers the ledger's outbox after the transaction that wrote it has committed: at once for a
 * caller that waits (its history row readable when the call returns), else by the alarm. An
 * item leaves the outbox only once delivered; a failure keeps it for the alarm's next try.
 */
import { deliverItem } from "../delivery/outbox";
import type { Bindings } from "../platform/env";
import type { AlarmClock } from "./alarms";
import { OUTBOX_RETRY_MS } from "./domain/alarms";
import type { Effects } from "./domain/effects";
import type { OutboxItem } from "./domain/types";
import { outboxId, outboxRows } from "./store/recharges";

export class OutboxRunner {
  constructor(
    private readonly sql: SqlStorage,
    private readonly env: Bindings,
    private readonly alarms: AlarmClock,
  ) {}

  /**
   * Delivers what a committed mutation put in the outbox: its history row (so a caller that
   * reads the history after the call sees it), its job, then its alert email.
   */
  async afterCommit(fx: Effects): Promise<void> {
    for (const at of fx.alarms) this.alarms.schedule(at);
    for (const item of fx.deliver) await this.deliver(item);
  }

  /** Effects of a mutation whose caller delivers nothing: the alarm delivers its items. */
  leaveToAlarm(fx: Effects): void {
    for (const at of fx.alarms) this.alarms.schedule(at);
    if (fx.deliver.length > 0) this.alarms.schedule(Date.now() + OUTBOX_RETRY_MS);
  }

  /** Every item still in the outbox, oldest first (the alarm). */
  async flush(): Promise<void> {
    for (const item of outboxRows(this.sql)) await this.deliver(item);
  }

  /**
   * Delivers one outbox item after the write that created it; a failure leaves it in the
   * outbox and the alarm tries again.
   */
  private async deliver(item: OutboxItem): Promise<void> {
    // Armed before the first await: if the object dies mid-send, the alarm still re-sends.
    this.alarms.schedule(Date.now() + OUTBOX_RETRY_MS);
    const id = outboxId(item);
    try {
      await deliverItem(this.env, item);
      this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    } catch (err) {
      console.warn(
        item.type === "recharge"
          ? "recharge job not queued yet; the alarm will retry"
          : item.type === "projection"
            ? "history row not written to D1 yet; the alarm will retry"
            : item.type === "purchase"
              ? "purchase row or its email not written yet; the alarm will retry"
              : item.type === "event"
                ? "webhook event not fanned out yet; the alarm will retry"
                : "notice email not sent yet; the alarm will retry",
        id,
        String(err),
      );
      this.sql.exec("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", id);
      this.alarms.schedule(Date.now() + OUTBOX_RETRY_MS);
    }
  }
}
