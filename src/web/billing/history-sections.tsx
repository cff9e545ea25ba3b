/** The Billing page's history (transactions, paged, with its CSV) and the Activity section (the audit log). */
import type { FC } from "hono/jsx";
import { PACKAGES, type PackageId } from "../../pricing";
import { failureReason, formatCredits, formatPrice, formatTime } from "../kit/format";
import { activityAction, activityActor, activityDetail } from "./activity";
import type { Activity, HistoryPage, Transaction } from "./data";
import { BILLING_PATH } from "./pages";

const TYPE_LABELS: Record<Transaction["type"], string> = {
  auto_recharge: "Auto-recharge",
  top_up: "Top-up",
  monthly_grant: "Monthly credits",
  adjustment: "Adjustment",
};

/** The whole history as CSV (every page). */
const HISTORY_CSV = "/v1/account/transactions?format=csv";

/**
 * "Transaction history", a page at a time, newest first. Paging is plain links
 * (`?history=<cursor>`), as in Activity, so every transaction is reachable without JavaScript;
 * the CSV link exports them all at once.
 */
export const HistorySection: FC<{
  transactions: Transaction[];
  page: HistoryPage;
  retry: string | null;
}> = ({ transactions, page, retry }) => (
  <section class="card" id="history" aria-labelledby="history-h">
    <h2 id="history-h">Transaction history</h2>
    {transactions.length === 0 ? (
      <p>{page.paged ? "No older transactions." : "No transactions yet."}</p>
    ) : (
      <div class="table-scroll">
        <table id="transactions" class="stack">
          <caption class="muted">
            {page.paged
              ? "Older transactions, newest first"
              : transactions.length === 1
                ? "The latest transaction"
                : `The latest ${transactions.length}, newest first`}
          </caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Type</th>
              <th scope="col" class="num">
                Credits
              </th>
              <th scope="col" class="num">
                Amount
              </th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {transactions.map((t) => (
              <HistoryRow t={t} retry={t.id === retry} />
            ))}
          </tbody>
        </table>
      </div>
    )}
    <nav aria-label="History pages">
      <p class="actions">
        {page.paged ? <a href={`${BILLING_PATH}#history`}>Newest transactions</a> : null}
        {page.older ? (
          <a
            id="history-older"
            href={`${BILLING_PATH}?history=${encodeURIComponent(page.older)}#history`}
          >
            Older transactions
          </a>
        ) : null}
        <a id="history-csv" href={HISTORY_CSV} download>
          Download CSV
        </a>
      </p>
    </nav>
  </section>
);

const STATUS_LABELS: Record<string, string> = {
  succeeded: "succeeded",
  pending: "pending",
  requires_action: "needs your action",
  failed: "failed",
};

/**
 * One history row. Only a succeeded row says "+credits": a pending one says what it will add,
 * a failed one that nothing was added and nothing charged, and why; `retry` (the newest
 * purchase, failed: see `retryableFailure`) also says what to do about it. A row with a
 * description (an operator's reason) says why the balance changed.
 */
export const HistoryRow: FC<{ t: Transaction; retry?: boolean }> = ({ t, retry = false }) => {
  const failed = t.status === "failed";
  const settled = t.status === "succeeded";
  const purchase = t.type === "auto_recharge" || t.type === "top_up";
  return (
    <tr data-type={t.type} data-status={t.status} data-id={t.id}>
      <td data-label="Date">{formatTime(t.created_at)}</td>
      <td data-label="Type">
        {TYPE_LABELS[t.type]}
        {purchase && t.package && t.package in PACKAGES ? (
          <span class="muted pkg">
            {formatCredits(PACKAGES[t.package as PackageId].credits)}-credit package
          </span>
        ) : null}
        {t.description ? <span class="muted desc">{t.description}</span> : null}
      </td>
      <td data-label="Credits" class="num">
        {failed ? (
          <span>none added</span>
        ) : settled ? (
          `${t.credits > 0 ? "+" : ""}${formatCredits(t.credits)}`
        ) : (
          `${formatCredits(t.credits)} when paid`
        )}
      </td>
      <td data-label="Amount" class="num">
        {t.amount_cents <= 0
          ? "—"
          : failed
            ? "not charged"
            : settled
              ? formatPrice(t.amount_cents)
              : `${formatPrice(t.amount_cents)}, not yet charged`}
      </td>
      <td data-label="Status">
        <span class={`pill ${t.status}`}>{STATUS_LABELS[t.status] ?? t.status}</span>
        {failed ? (
          <span class="why">
            {" "}
            {failureReason(t.failure_code)}
            {t.failure_code ? (
              <>
                {" "}
                (<code>{t.failure_code}</code>)
              </>
            ) : null}
            .
          </span>
        ) : null}
        {t.action_url && !settled ? (
          <>
            {" "}
            <a href={t.action_url} class="row-link">
              Complete the payment
            </a>
          </>
        ) : failed && purchase && retry ? (
          <>
            {" "}
            <a href="#buy-credits" class="row-link">
              Retry: buy credits now
            </a>
          </>
        ) : null}
        {t.invoice_url ? (
          <>
            {" "}
            <a href={t.invoice_url} class="row-link">
              Invoice
            </a>
          </>
        ) : null}
      </td>
    </tr>
  );
};

/**
 * "Activity": the audit log, who changed what on the account, newest first, a page at a time.
 * Paging is plain links (`?activity=<cursor>`), so it works without JavaScript.
 */
export const ActivitySection: FC<{ activity: Activity }> = ({ activity }) => (
  <section class="card" id="activity" aria-labelledby="activity-h">
    <h2 id="activity-h">Activity</h2>
    {activity.entries.length === 0 ? (
      <p>{activity.paged ? "No older entries." : "Nothing has been changed yet."}</p>
    ) : (
      <div class="table-scroll">
        <table id="activity-log" class="stack">
          <caption class="muted">
            {activity.paged ? "Older changes, newest first" : "The latest changes, newest first"}
          </caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Change</th>
              <th scope="col">By</th>
            </tr>
          </thead>
          <tbody>
            {activity.entries.map((e) => {
              const detail = activityDetail(e);
              return (
                <tr data-action={e.action}>
                  <td data-label="Date">{formatTime(e.at)}</td>
                  <td data-label="Change">
                    {activityAction(e.action)}
                    {detail ? <span class="muted desc">{detail}</span> : null}
                  </td>
                  <td data-label="By">{activityActor(e.actor)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    )}
    {activity.paged || activity.older ? (
      <nav aria-label="Activity pages">
        <p class="actions">
          {activity.paged ? <a href={`${BILLING_PATH}#activity`}>Newest changes</a> : null}
          {activity.older ? (
            <a href={`${BILLING_PATH}?activity=${encodeURIComponent(activity.older)}#activity`}>
              Older changes
            </a>
          ) : null}
        </p>
      </nav>
    ) : null}
  </section>
);
