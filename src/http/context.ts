/** What Hono carries for a request: the bindings and the values middleware puts on it. */

import type { KeyScope } from "../db/api-keys";
import type { Db } from "../db/client";
import type { Role } from "../db/members";
import type { Actor } from "../platform/actor";
import type { Bindings } from "../platform/env";

export interface Variables {
  requestId: string;
  db: Db;
  /** Set by the auth middleware on every authenticated route. */
  accountId: string;
  /** The key, for key-authenticated requests (the proxy's are); absent for a person's session. */
  apiKeyId: string;
  /** The account's escrow shards, for key-authenticated requests (docs/ledger-shards.md). */
  shards: number;
  /** The person's role on the account for a session request; null for an API key. */
  role: Role | null;
  /** The member a session names; absent for an API key. */
  memberId: string;
  /** Who is acting, for the audit log: the key, or the person the session names. */
  actor: Actor;
  /**
   * What a key may do: `classify` keys spend credits and read. A session counts as `full`; what
   * its person may do is capped by `role` instead.
   */
  scope: KeyScope;
  /** True once a response comes from the upstream: its headers pass through unchanged. */
  proxied: boolean;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}
