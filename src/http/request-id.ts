import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/context";
import { randomHex32 } from "../platform/crypto";
import { finishResponse } from "./error-response";

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Echoes a client's X-Request-Id when it is 1–128 safe characters; otherwise makes one.
 *
 * Not Hono's `requestId` middleware: its character check is fixed (`[\w=-]`, only the length is
 * configurable), so it would replace ids with `.` or `:` that the contract echoes and echo ids
 * with `=` that the contract replaces; and this middleware also gives the gateway's own JSON its
 * charset and no-store headers. The rules are pinned by contract.test.ts ("X-Request-Id").
 */
export const requestId = createMiddleware<AppEnv>(async (c, next) => {
  const sent = c.req.header("X-Request-Id");
  const id = sent && SAFE_ID.test(sent) ? sent : `req_${randomHex32()}`;
  c.set("requestId", id);
  await next();
  finishResponse(c.res, id, c.get("proxied") === true);
});
