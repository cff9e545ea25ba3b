import { Hono } from "hono";
import { iso, loadUsage, usageQuery } from "../accounts/usage";
import type { AppEnv } from "../http/context";
import { describe } from "../http/openapi";
import { parseQuery } from "../platform/body";

const usageDoc = describe({
  summary: "Requests and credits per hour or day, zero-filled",
  tag: "Usage",
  security: ["api_key", "session"],
  // The schema is built per request (its defaults are relative to now); any instant documents it.
  query: usageQuery(0),
});

/** `GET /v1/account/usage`: the account's requests and credits per hour or day, zero-filled. */
export const usageRoutes = new Hono<AppEnv>().get("/", usageDoc, async (c) => {
  const range = parseQuery(c, usageQuery(Date.now()));
  const series = await loadUsage(c.env, c.get("accountId"), range);
  return c.json(
    { granularity: range.granularity, from: iso(range.start), to: iso(range.end), series },
    200,
  );
});
