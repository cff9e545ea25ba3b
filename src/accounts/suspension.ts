/**
 * An operator's suspension: decided by the account's ledger (the debit refuses in the same
 * call, purchases stop there), then mirrored to D1 for search, the console, the overview and
 * what the account's people read (`GET /v1/account`, the Billing page). Both steps are
 * idempotent, so a retry after a failure between them converges.
 */
import { setSuspension } from "../db/accounts";
import type { Db } from "../db/client";
import { ledgerFor } from "../ledger/client";
import type { SuspendResult } from "../ledger/domain/types";
import type { Bindings } from "../platform/env";

export async function suspendAccount(
  env: Bindings,
  db: Db,
  accountId: string,
  suspension: { reason: string } | null,
): Promise<SuspendResult> {
  const result = await ledgerFor(env, accountId).setSuspension(suspension);
  if (result.ok) await setSuspension(db, accountId, result.suspension);
  // An account's escrow shards stop spending at once: no lease is granted while it is suspended.
  if (result.ok && result.suspension) await ledgerFor(env, accountId).leaseRecall();
  return result;
}
