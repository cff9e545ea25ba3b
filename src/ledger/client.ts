import type { Bindings } from "../env";

/** The AccountLedger stub of an account: one object per account id, addressed by name. */
export function ledgerFor(env: Pick<Bindings, "ACCOUNT_LEDGER">, accountId: string) {
  return env.ACCOUNT_LEDGER.get(env.ACCOUNT_LEDGER.idFromName(accountId));
}
