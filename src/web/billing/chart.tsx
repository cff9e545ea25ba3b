import type { FC } from "hono/jsx";
import type { UsagePoint } from "../../accounts/usage";
import { formatCredits, formatDay } from "../kit/format";

/**
 * Two drawings of the same numbers: a wide one, and one for phones (its viewBox is about as
 * wide as a phone's screen, so its 12-unit labels stay about 12 px there, with fewer of them).
 * CSS shows one of the two; the hidden one is out of the accessibility tree too.
 */
const SIZES = {
  wide: { width: 720, height: 220, labels: 6, pad: { left: 48, right: 8, top: 12, bottom: 28 } },
  narrow: { width: 340, height: 200, labels: 3, pad: { left: 44, right: 6, top: 12, bottom: 28 } },
} as const;

/**
 * The smallest 1, 2 or 5 × 10ⁿ at or above `n` (at least 10), so the axis reads in round
 * numbers and its midpoint is a whole number.
 */
export function niceCeiling(n: number): number {
  if (n <= 10) return 10;
  let step = 1;
  while (step * 10 <= n) step *= 10;
  for (const m of [1, 2, 5, 10]) if (m * step >= n) return m * step;
  return 10 * step;
}

const DAY_MS = 86_400_000;

/**
 * Credits per day as an inline SVG bar chart (no script, no external image), described for
 * screen readers by its title and desc, with the same numbers as a table below it. `slots`
 * days wide (the whole cycle), so the empty days still ahead show where in the cycle today is.
 */
export const UsageChart: FC<{
  days: UsagePoint[];
  slots: number;
  unusual: ReadonlySet<string>;
}> = ({ days, slots, unusual }) => (
  <div>
    <ChartSvg days={days} slots={slots} unusual={unusual} size="wide" />
    <ChartSvg days={days} slots={slots} unusual={unusual} size="narrow" />
    {unusual.size > 0 ? (
      <p class="hint">Orange bars are unusual days; they are listed under Advice.</p>
    ) : null}
    <details>
      <summary>Show the numbers as a table</summary>
      <div class="table-scroll">
        <table>
          <caption class="muted">Usage per day this cycle (UTC)</caption>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col" class="num">
                Requests
              </th>
              <th scope="col" class="num">
                Credits
              </th>
            </tr>
          </thead>
          <tbody>
            {days.map((d) => (
              <tr>
                <th scope="row">
                  {formatDay(d.start)}
                  {unusual.has(d.start) ? <span class="tag">unusual</span> : null}
                </th>
                <td class="num">{formatCredits(d.requests)}</td>
                <td class="num">{formatCredits(d.credits)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  </div>
);

const ChartSvg: FC<{
  days: UsagePoint[];
  slots: number;
  unusual: ReadonlySet<string>;
  size: keyof typeof SIZES;
}> = ({ days, slots, unusual, size }) => {
  const { width: WIDTH, height: HEIGHT, labels, pad: PAD } = SIZES[size];
  // The wide chart keeps the plain ids (tests and links use them); the narrow one is suffixed.
  const id = (name: string) => (size === "wide" ? name : `${name}-narrow`);
  const total = days.reduce((a, d) => a + d.credits, 0);
  const peak = days.reduce<UsagePoint | null>(
    (a, d) => (d.credits > (a?.credits ?? 0) ? d : a),
    null,
  );
  const top = niceCeiling(peak?.credits ?? 0);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const width = Math.max(slots, days.length, 1);
  const slot = plotW / width;
  const barW = Math.max(2, Math.round(slot * 0.7));
  const y = (v: number) => PAD.top + plotH - Math.round((v / top) * plotH);
  const first = days[0];
  const last = days[days.length - 1];
  const labelEvery = Math.max(1, Math.ceil(width / labels));
  const lastIndex = width - 1;
  // Every few days, and always the last one, without crowding it.
  const labelled = (i: number) =>
    i === lastIndex || (i % labelEvery === 0 && lastIndex - i >= labelEvery / 2);
  const description =
    first && last
      ? `${formatCredits(total)} credits used from ${formatDay(first.start)} to ${formatDay(last.start)} (UTC)${
          peak
            ? `; the busiest day was ${formatDay(peak.start)} with ${formatCredits(peak.credits)} credits`
            : ""
        }.`
      : "No days to show yet.";

  return (
    <svg
      class={`chart chart-${size}`}
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-labelledby={`${id("usage-chart-title")} ${id("usage-chart-desc")}`}
    >
      <title id={id("usage-chart-title")}>Credits used per day this cycle</title>
      <desc id={id("usage-chart-desc")}>{description}</desc>
      {[0, top / 2, top].map((v) => (
        <g>
          <line class="grid" x1={PAD.left} x2={WIDTH - PAD.right} y1={y(v)} y2={y(v)} />
          <text x={PAD.left - 6} y={y(v) + 4} text-anchor="end">
            {formatCredits(v)}
          </text>
        </g>
      ))}
      {days.map((d, i) => {
        const x = Math.round(PAD.left + i * slot + (slot - barW) / 2);
        const h = y(0) - y(d.credits);
        return d.credits > 0 ? (
          <rect
            class={unusual.has(d.start) ? "bar unusual" : "bar"}
            x={x}
            y={y(d.credits)}
            width={barW}
            height={Math.max(h, 1)}
            rx="2"
          >
            <title>{`${formatDay(d.start)}: ${formatCredits(d.credits)} credits, ${formatCredits(d.requests)} requests${unusual.has(d.start) ? " (unusual)" : ""}`}</title>
          </rect>
        ) : null;
      })}
      {first
        ? Array.from({ length: width }, (_, i) => i)
            .filter(labelled)
            .map((i) => (
              // The last label ends at the plot's edge instead of running past it.
              <text
                x={i === lastIndex ? WIDTH - PAD.right : Math.round(PAD.left + (i + 0.5) * slot)}
                y={HEIGHT - 8}
                text-anchor={i === lastIndex ? "end" : "middle"}
              >
                {formatDay(new Date(Date.parse(first.start) + i * DAY_MS).toISOString())}
              </text>
            ))
        : null}
      <line class="axis" x1={PAD.left} x2={WIDTH - PAD.right} y1={y(0)} y2={y(0)} />
    </svg>
  );
};
