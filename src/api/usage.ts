import { Hono } from "hono";
import { iso, loadUsageSeries, usageQuery } from "../accounts/usage";
import type { AppEnv } from "../http/context";
import { csvResponse, wantsCsv } from "../http/csv";
import { describe } from "../http/openapi";
import { parseQuery } from "../platform/body";

const usageDoc = describe({
  summary: "Requests and credits per minute, hour or day, or per key; CSV with format=csv",
  tag: "Usage",
  security: ["api_key", "session"],
  // The schema is built per request (its defaults are relative to now); any instant documents it.
  query: usageQuery(0),
});

/**
 * `GET /v1/account/usage`: the account's requests and credits per minute, hour or day,
 * zero-filled, or per key and period with traffic (`group_by=key`); JSON, or CSV with
 * `format=csv` / `Accept: text/csv` (the same points, the whole range at once).
 */
export const usageRoutes = new Hono<AppEnv>().get("/", usageDoc, async (c) => {
  const q = parseQuery(c, usageQuery(Date.now()));
  const series = await loadUsageSeries(c.env, c.get("accountId"), q);
  if (wantsCsv(c, c.req.query("format"))) {
    const columns = q.byKey
      ? ["start", "key_id", "requests", "credits"]
      : ["start", "requests", "credits"];
    const rows = series.map((p) =>
      "key_id" in p ? [p.start, p.key_id, p.requests, p.credits] : [p.start, p.requests, p.credits],
    );
    return csvResponse(
      `usage-${q.granularity}.csv`,
      columns,
      (async function* () {
        yield rows;
      })(),
    );
  }
  return c.json({ granularity: q.granularity, from: iso(q.start), to: iso(q.end), series }, 200);
});
