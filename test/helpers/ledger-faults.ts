/**
 * A test-only wrapper of the `ACCOUNT_LEDGER` binding whose calls fail at the edge, the way
 * Cloudflare's runtime fails them (src/platform/errors.ts `durableObjectFailure`). Passed to one request
 * as its bindings (`send(request, { env })`); the rest of the test, the queue consumers and
 * the reconciler keep the real binding. Nothing of ours is replaced: every call that is not
 * failed goes to the real object, and `lost_reply` really runs the call before losing its reply.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { ledgerFor } from "../../src/ledger/client";
import type { Bindings } from "../../src/platform/env";

export type LedgerFault =
  /** Refused before it ran: the object cannot keep up. */
  | "overloaded"
  /** The request never arrived (the connection dropped on the way). */
  | "lost_request"
  /** The call ran (and committed) but its reply never came back. */
  | "lost_reply"
  /** The object was reset: the call goes through a stub the runtime itself has broken. */
  | "reset";

/** The errors the runtime throws, with the properties Cloudflare documents. */
function runtimeError(fault: "overloaded" | "lost_request" | "lost_reply"): Error {
  return fault === "overloaded"
    ? Object.assign(new Error("Durable Object is overloaded. Too many requests queued."), {
        overloaded: true,
      })
    : Object.assign(new Error("Network connection lost."), { retryable: true });
}

type Stub = ReturnType<typeof ledgerFor>;
type Callable = Record<PropertyKey, (...args: unknown[]) => Promise<unknown>>;

/**
 * Bindings whose ledger fails the calls of `accountId`'s object ("*": every account's) named in
 * `faults` (a method name, or "*" for every method) with that fault. For "reset" the object is reset now, through
 * the stub the failed calls then use.
 */
export async function ledgerFailing(
  accountId: string,
  faults: Record<string, LedgerFault>,
): Promise<Bindings> {
  let broken: Stub | null = null;
  if (Object.values(faults).includes("reset")) {
    if (accountId === "*") throw new Error("a reset needs one account's object");
    broken = ledgerFor(env, accountId);
    await runInDurableObject(broken, (_i, state) => state.abort("reset")).catch(() => {});
  }
  const real = env.ACCOUNT_LEDGER;
  const target = accountId === "*" ? null : real.idFromName(accountId).toString();
  // The gateway sends a debit alone as `debit`, and debits coalesced behind a call in flight
  // as one `debitMany` (src/gateway/debit-lanes.ts): a fault named for `debit` fails both.
  const faultOf = (prop: PropertyKey): LedgerFault | undefined =>
    typeof prop === "string"
      ? (faults[prop] ?? (prop === "debitMany" ? faults.debit : undefined) ?? faults["*"])
      : undefined;
  const wrap = (stub: Stub, id: DurableObjectId): Stub =>
    target !== null && id.toString() !== target
      ? stub
      : new Proxy(stub, {
          get(_t, prop) {
            const call = (s: Stub) => (s as unknown as Callable)[prop];
            // RPC stubs answer any property, `bind` included: call through the stub instead.
            const fault = faultOf(prop);
            if (!fault) return (...args: unknown[]) => call(stub)?.(...args);
            return async (...args: unknown[]) => {
              if (fault === "reset" && broken) return call(broken)?.(...args);
              if (fault === "lost_reply") await call(stub)?.(...args);
              throw runtimeError(fault === "reset" ? "lost_request" : fault);
            };
          },
        });
  const namespace = {
    idFromName: (name: string) => real.idFromName(name),
    get: (id: DurableObjectId, options?: DurableObjectNamespaceGetDurableObjectOptions) =>
      wrap(real.get(id, options), id),
  };
  return { ...env, ACCOUNT_LEDGER: namespace as unknown as Bindings["ACCOUNT_LEDGER"] };
}
