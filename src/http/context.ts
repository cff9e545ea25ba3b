/** What Hono carries for a request: the bindings and the values middleware puts on it. */

import type { KeyScope } from "../db/api-keys";
import type { Db } from "../db/client";
import type { Actor } from "../platform/actor";
import type { Bindings } from "../platform/env";

export interface Variables {
  requestId: string;
  db: Db;
  /** Set by the auth middleware on every authenticated route. */
  accountId: string;
  apiKeyId: string;
  /** Who is acting, for the audit log: the key, or the person the session names. */
  actor: Actor;
  /** What the caller may do: `classify` keys spend credits and read; the Billing page is `full`. */
  scope: KeyScope;
  /** True once a response comes from the upstream: its headers pass through unchanged. */
  proxied: boolean;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}
