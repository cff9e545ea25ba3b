/** The Billing page's usage: the chart, usage per key with its CSV, and the plan advice. */
import type { FC } from "hono/jsx";
import { PLANS, RECHARGE_THRESHOLD } from "../../pricing";
import { formatCredits, formatDay, formatPrice, formatTime, packageLabel } from "../kit/format";
import { MIN_ADVICE_DAYS, type PlanAdvice, runwaySentence } from "./advice";
import { UsageChart } from "./chart";
import type { BillingModel } from "./data";
import { keyLabel } from "./keys-sections";

export const UsageSection: FC<{ model: BillingModel }> = ({ model }) => (
  <section class="card" aria-labelledby="usage-h">
    <h2 id="usage-h">Usage this cycle</h2>
    <UsageChart
      days={model.cycleUsage}
      slots={model.cycleDays}
      unusual={new Set(model.unusual.map((d) => d.start))}
    />
    <KeyUsageTable model={model} />
    <p class="actions">
      <a id="usage-csv" href={USAGE_CSV} download>
        Download CSV
      </a>
      <span class="muted"> usage per key and day, the last 30 days</span>
    </p>
  </section>
);

/** The usage export the page links to: per key and day, the API's default range (30 days). */
const USAGE_CSV = "/v1/account/usage?granularity=day&group_by=key&format=csv";

/** "Usage per key": each key's requests and credits this cycle, and its last use. */
const KeyUsageTable: FC<{ model: BillingModel }> = ({ model }) => {
  const named = new Map(model.keys.map((k) => [k.id, keyLabel(k)]));
  const label = (id: string) =>
    id === "" ? "No key (operator)" : (named.get(id) ?? `Revoked key ${id}`);
  return model.keyUsage.length === 0 ? (
    <p id="key-usage" class="muted">
      No requests this cycle yet.
    </p>
  ) : (
    <div class="table-scroll">
      <table id="key-usage" class="stack">
        <caption class="muted">Usage per key this cycle</caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col" class="num">
              Requests
            </th>
            <th scope="col" class="num">
              Credits
            </th>
            <th scope="col">Last used</th>
          </tr>
        </thead>
        <tbody>
          {model.keyUsage.map((u) => {
            const last = model.keysLastUsed[u.keyId];
            return (
              <tr data-key={u.keyId}>
                <td data-label="Key">{label(u.keyId)}</td>
                <td data-label="Requests" class="num">
                  {formatCredits(u.requests)}
                </td>
                <td data-label="Credits" class="num">
                  {formatCredits(u.credits)}
                </td>
                <td data-label="Last used">
                  {last === undefined ? "—" : formatTime(new Date(last * 1000).toISOString())}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
};

export const AdviceSection: FC<{ model: BillingModel }> = ({ model }) => {
  const a = model.advice;
  const e = model.evidence;
  return (
    <section class="card advice" aria-labelledby="advice-h">
      <h2 id="advice-h">Advice</h2>
      <h3>Runway</h3>
      <p id="runway">
        {runwaySentence(model.runway, model.runwayWindow, RECHARGE_THRESHOLD, model.historyDays)}
      </p>
      <h3>Plan advisor</h3>
      <p id="advice-basis">
        {e.period === "last_cycle"
          ? `Based on ${formatCredits(e.usedCredits)} credits used in your last billing cycle (${e.days} days):`
          : a
            ? `Based on ${formatCredits(e.usedCredits)} credits used in the first ${e.days} days of this ${e.cycleDays}-day cycle, projected to ${formatCredits(e.projectedCredits ?? e.usedCredits)} over the whole cycle:`
            : `Not enough usage yet to compare plans: the advisor needs ${MIN_ADVICE_DAYS} days of this cycle (or a whole previous cycle), and ${e.days === 1 ? "1 day has" : `${e.days} days have`} passed, with ${formatCredits(e.usedCredits)} credits used.`}
      </p>
      {a ? <AdviceTable a={a} /> : null}
      <h3>Unusual usage</h3>
      {model.unusual.length === 0 ? (
        <p>No day this cycle used more than 3× its trailing 7-day average.</p>
      ) : (
        <ul>
          {model.unusual.map((d) => (
            <li>
              <strong>{formatDay(d.start)}</strong>: {formatCredits(d.credits)} credits,{" "}
              {d.trailingCredits === 0
                ? `after ${d.window} days with no usage`
                : `${Math.round((d.credits * d.window) / d.trailingCredits)}× the ${d.window}-day average of ${formatCredits(Math.round(d.trailingCredits / d.window))}`}
              .
            </li>
          ))}
        </ul>
      )}
    </section>
  );
};

const AdviceTable: FC<{ a: PlanAdvice }> = ({ a }) => (
  <>
    <p class="headline">{a.sentence}</p>
    <div class="table-scroll">
      <table>
        <thead>
          <tr>
            <th scope="col">Plan</th>
            <th scope="col" class="num">
              Plan price
            </th>
            <th scope="col">Packages for usage beyond the plan</th>
            <th scope="col" class="num">
              Total
            </th>
          </tr>
        </thead>
        <tbody>
          {a.costs.map((c) => (
            <tr class={c.plan === a.current ? "current" : undefined}>
              <th scope="row">
                {PLANS[c.plan].name}
                {c.plan === a.current ? <span class="tag">your plan</span> : null}
                {c.plan === a.cheapest ? <span class="tag">cheapest</span> : null}
                {c.fitsPeak ? null : <span class="tag">rate limit too low</span>}
              </th>
              <td class="num">{formatPrice(c.planCents)}</td>
              <td>
                {c.cover.packages.length === 0
                  ? "none needed"
                  : `${c.cover.packages
                      .map((p) => `${p.count} × ${packageLabel(p.package)}`)
                      .join(" + ")}`}
              </td>
              <td class="num">{formatPrice(c.totalCents)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
    <p class="hint">
      Packages are bought whole. Your busiest minute had {formatCredits(a.peakRequestsPerMinute)}{" "}
      requests; a plan whose rate limit is below that is not advised.
    </p>
  </>
);
