/**
 * LedgerShard: one of an account's escrow shards (docs/ledger-shards.md). It spends only
 * credits the bank (the account's `AccountLedger`) leased to it: each debit is decided in memory
 * against the lease at once, and answered once it is written; debits decided together share
 * that write (group commit, ../debit-batch.ts, as in the ledger: one row per minute). Before
 * it runs dry it returns the lease and takes a new one; when the bank grants nothing (near
 * zero) it forwards the request to the bank, which contends the last credits across every
 * shard. Its alarm returns the lease before it expires, idle or not; the bank recalls one it
 * did not get back.
 */
import { DurableObject } from "cloudflare:workers";
import { randomHex32 } from "../../platform/crypto";
import type { Bindings } from "../../platform/env";
import { ledgerFor } from "../client";
import { DebitBatch } from "../debit-batch";
import { debitOutcome } from "../domain/decisions";
import { groupCommitMode } from "../domain/group-commit";
import {
  EMPTY_REPORT,
  LEASE_MARGIN_MS,
  LEASE_MAX,
  type LeaseReport,
  leaseRemaining,
  RECALL_RETRY_MS,
  shardRateLimit,
  shardTake,
} from "../domain/leases";
import { addToBatch, type MinuteDelta } from "../domain/minute-row";
import { type RateDecision, type RateWindow, takeFromWindow } from "../domain/rate-window";
import { clockMarginMs, RecentDebits, unansweredDebitOutcome } from "../domain/recent-debits";
import { type Buckets, minuteOf, withTotal } from "../domain/rules";
import type {
  DebitCharge,
  DebitItem,
  DebitOutcome,
  DebitResult,
  RefundResult,
} from "../domain/types";
import {
  activate,
  dropLease,
  ensureShardSchema,
  hasRefund,
  insertTaking,
  markClosing,
  readLease,
  readMeta,
  readReport,
  recordRefund,
  recordSpends,
  type ShardLease,
  writeMeta,
} from "./store";

/** Who the shard is: the gateway says so on every call (the first one is stored). */
export interface ShardAddress {
  accountId: string;
  shard: number;
  shards: number;
}

/** A debit answered by a shard: `lease` names the lease it was taken from (null: the bank). */
export type ShardDebitResult = DebitResult & { lease: string | null };

/** After the bank granted nothing, requests go straight to it this long. */
const DRY_MS = 1_000;

export class LedgerShard extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private lease: ShardLease | null;
  /** The one exchange with the bank in flight (return and take), shared by every caller. */
  private syncing: Promise<void> | null = null;
  private dryUntil = 0;
  /** This shard's part of the account's rate window (memory only, as the ledger's). */
  private readonly window: RateWindow = { start: 0, count: 0 };
  /** This instance's committed debits and their leases, for a gateway that lost a reply. */
  private readonly recent = new RecentDebits(Date.now());
  /** Debits decided and waiting for their shared write; null: group commit off. */
  private readonly batch: DebitBatch | null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ensureShardSchema(this.sql);
    this.lease = readLease(this.sql);
    const mode = groupCommitMode(env.LEDGER_GROUP_COMMIT);
    this.batch =
      mode === "off"
        ? null
        : new DebitBatch((deltas) => this.writeSpends(deltas), mode, {
            committed: () => {},
            // Nothing of the batch was charged: the lease's sums back to what is stored. If
            // storage cannot even be read, the object is reset: it restarts from storage.
            failed: () => {
              try {
                this.lease = readLease(this.sql);
              } catch (err) {
                this.ctx.abort(`lease unreadable after a failed write: ${String(err)}`);
              }
            },
          });
  }

  /** One minute's row is one statement, atomic alone; more go in one transaction. */
  private writeSpends(deltas: MinuteDelta[]): void {
    if (deltas.length <= 1) recordSpends(this.sql, deltas);
    else this.ctx.storage.transactionSync(() => recordSpends(this.sql, deltas));
  }

  /** Pending debits written now (and answered); what reads or writes the lease comes after. */
  private flush(): void {
    this.batch?.flush();
  }

  private address(a?: ShardAddress): ShardAddress {
    if (a) {
      if (readMeta(this.sql, "account_id") === null) {
        writeMeta(this.sql, "account_id", a.accountId);
        writeMeta(this.sql, "shard", String(a.shard));
      }
      writeMeta(this.sql, "shards", String(a.shards));
      return a;
    }
    return {
      accountId: readMeta(this.sql, "account_id") ?? "",
      shard: Number(readMeta(this.sql, "shard") ?? 0),
      shards: Number(readMeta(this.sql, "shards") ?? 1),
    };
  }

  private bank(accountId: string) {
    return ledgerFor(this.env, accountId);
  }

  /** Takes `cost` credits, monthly first, all or nothing: from the lease, else at the bank. */
  async debit(
    at: ShardAddress,
    cost: number,
    ref: string,
    apiKeyId?: string,
  ): Promise<ShardDebitResult> {
    if (this.lease === null || this.lease.status !== "active") this.address(at);
    // Declared never committed after its reply was lost (`refund` with `sentAt`): refused. Asked
    // again after every wait: a gateway that gave up on this call (a lane waits 10 s at most)
    // may have reversed it while the lease was being exchanged.
    const voided: ShardDebitResult = { ok: false, reason: "not_found", rate: null, lease: null };
    if (this.recent.isVoided(ref)) return voided;
    for (let attempt = 0; attempt < 3 && Date.now() >= this.dryUntil; attempt++) {
      const local = this.takeLocal(cost, ref, apiKeyId ?? "", at.shards);
      if (local) return local;
      await this.refill(at, cost);
      if (this.recent.isVoided(ref)) return voided;
      if (this.lease?.status !== "active") break;
    }
    // Near zero: the bank decides, after recalling every lease (money rules 1 and 2).
    const r = await this.bank(at.accountId).leaseDebit(cost, ref, apiKeyId);
    return { ...r, lease: null };
  }

  /**
   * Several debits in one call (the gateway's coalesced debits of this shard): each decided on
   * its own, in order, and answered on its own, as `debit` would (they share the write).
   */
  async debitMany(at: ShardAddress, items: DebitItem[]): Promise<DebitOutcome<ShardDebitResult>[]> {
    const taken = items.map((i) => this.debit(at, i.cost, i.ref, i.key));
    return (await Promise.allSettled(taken)).map(debitOutcome);
  }

  /**
   * A debit on the lease, decided with no await in between and answered once written (with
   * the debits decided alongside it); null: the lease cannot pay it.
   */
  private takeLocal(
    cost: number,
    ref: string,
    keyId: string,
    shards: number,
  ): ShardDebitResult | Promise<ShardDebitResult> | null {
    const l = this.lease;
    if (l?.status !== "active") return null;
    // Keys revoked when the lease was granted; a revocation since recalls the lease.
    if (keyId !== "" && l.revoked.has(keyId))
      return { ok: false, reason: "key_revoked", rate: null, lease: null };
    const now = Date.now();
    const take = shardTake(leaseRemaining(l.granted, l.spent, l.refunded), l.expiresAt, cost, now);
    if (!take) return null;
    // The account's rate limit, shared: each shard lets through its part of the minute (keyed
    // requests only, as the ledger), before any credit is taken. A debit whose write then fails
    // keeps its place in the window, as in the ledger: the retry counts again.
    let rate: RateDecision | null = null;
    if (keyId !== "") {
      rate = takeFromWindow(this.window, now, shardRateLimit(l.rateLimit, shards));
      if (!rate.allowed) return { ok: false, reason: "rate_limited", rate, lease: null };
    }
    const minute = minuteOf(now);
    const remember = () => this.remember(ref, { minute, ...take, key_id: keyId }, l.id);
    // Group commit off: written before memory moves, as one write per debit always was.
    if (!this.batch) recordSpends(this.sql, [deltaOf(minute, keyId, take)]);
    l.spent = {
      monthly: l.spent.monthly + take.monthly,
      purchased: l.spent.purchased + take.purchased,
    };
    const left = leaseRemaining(l.granted, l.spent, l.refunded);
    const balance = withTotal(left);
    // What the account holds as far as this shard knows: its lease and the bank at the grant.
    balance.total += l.bankTotal;
    const answer: ShardDebitResult = {
      ok: true,
      charged: take,
      minute,
      balance,
      rate,
      lease: l.id,
    };
    if (!this.batch) {
      remember();
      return answer;
    }
    // The next decision already sees this take; the write and the answer come with the batch.
    return this.batch.take(minute, keyId, take, answer, remember);
  }

  private remember(ref: string, charge: DebitCharge, leaseId: string): void {
    this.recent.remember(ref, charge, Date.now(), leaseId);
  }

  /** One exchange at a time: the lease held is returned, then a new one taken. */
  private refill(at: ShardAddress, cost: number): Promise<void> {
    this.syncing ??= this.exchange(at, cost).finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  private async exchange(at: ShardAddress, cost: number): Promise<void> {
    await this.returnLease(at.accountId);
    const id = `lse_${randomHex32()}`;
    insertTaking(this.sql, id);
    this.lease = readLease(this.sql);
    const r = await this.bank(at.accountId).leaseTake({
      id,
      shard: at.shard,
      shards: at.shards,
      want: LEASE_MAX,
      cost,
    });
    // Surrendered while the take was in flight: never spent, returned by the bank's recall.
    if (this.lease?.id !== id || this.lease.status !== "taking") return;
    if (!r.ok) {
      dropLease(this.sql);
      this.lease = null;
      this.dryUntil = Date.now() + DRY_MS;
      return;
    }
    activate(this.sql, id, {
      ...r.lease,
      bankTotal: r.bankTotal,
      revoked: r.revoked,
      rateLimit: r.rateLimit,
    });
    this.lease = readLease(this.sql);
    await this.ctx.storage.setAlarm(r.lease.expiresAt - LEASE_MARGIN_MS);
  }

  /** Freezes the lease (no debit on it from now on) and sends its report until the bank has it. */
  private async returnLease(accountId: string): Promise<void> {
    this.flush();
    const l = this.lease;
    if (!l) return;
    if (l.status !== "closing") this.freeze(l);
    await this.bank(accountId).leaseClose({ id: l.id, report: readReport(this.sql) });
    if (this.lease?.id === l.id) {
      dropLease(this.sql);
      this.lease = null;
    }
  }

  private freeze(l: ShardLease): void {
    markClosing(this.sql, l.id);
    l.status = "closing";
  }

  /**
   * The bank recalls lease `id` (near zero, fewer shards, or its expiry): frozen at once, and
   * its report answered; the bank settles it. A lease this shard does not hold was never taken
   * here or was settled already: nothing was spent of it here.
   */
  surrender(id: string): LeaseReport {
    this.flush();
    const l = this.lease;
    if (!l || l.id !== id) return EMPTY_REPORT;
    if (l.status !== "closing") this.freeze(l);
    return readReport(this.sql);
  }

  /**
   * Reverses one debit (money rule 8): into the lease it was taken from while this shard still
   * spends it; otherwise at the bank, which holds it once the lease is settled.
   */
  async refund(
    accountId: string,
    debitRef: string,
    given: DebitCharge | null,
    givenLease: string | null,
    sentAt?: number,
  ): Promise<RefundResult> {
    this.flush();
    let charge = given;
    let leaseId = givenLease;
    if (charge === null) {
      // A debit whose reply was lost (money rule 8): as the ledger decides it (recent-debits.ts).
      const outcome = unansweredDebitOutcome({
        remembered: this.recent.charge(debitRef),
        memorySince: this.recent.memorySince,
        sentAt: sentAt ?? 0,
        marginMs: clockMarginMs(this.env.LEDGER_CLOCK_MARGIN_MS),
      });
      if (outcome.outcome === "unknown") return { ok: false, reason: "outcome_unknown" };
      if (outcome.outcome === "never_committed") {
        // Not here; it may have been forwarded to the ledger, which decides it by its memory.
        this.recent.void(debitRef);
        return this.bank(accountId).refund(debitRef, null, sentAt);
      }
      charge = outcome.charge;
      leaseId = this.recent.lease(debitRef);
    }
    const l = this.lease;
    if (l && l.id === leaseId && l.status === "active") {
      const within =
        l.refunded.monthly + charge.monthly <= l.spent.monthly &&
        l.refunded.purchased + charge.purchased <= l.spent.purchased;
      const replay = hasRefund(this.sql, debitRef);
      if (!replay && !within) return { ok: false, reason: "not_found" };
      const key = { ...charge, key_id: charge.key_id ?? "" };
      const fresh = !replay && recordRefund(this.sql, debitRef, key);
      if (fresh)
        l.refunded = {
          monthly: l.refunded.monthly + charge.monthly,
          purchased: l.refunded.purchased + charge.purchased,
        };
      const balance = withTotal(leaseRemaining(l.granted, l.spent, l.refunded));
      balance.total += l.bankTotal;
      return { ok: true, balance, refunded: fresh };
    }
    // The lease is frozen or settled: make sure the bank has its report, then refund there.
    if (l && l.id === leaseId) await this.settleHeld(accountId);
    return this.bank(accountId).refund(debitRef, charge);
  }

  private async settleHeld(accountId: string): Promise<void> {
    if (this.syncing) await this.syncing;
    if (!this.lease) return;
    this.syncing ??= this.returnLease(accountId).finally(() => {
      this.syncing = null;
    });
    await this.syncing;
  }

  /** Before the lease expires, idle or not: it goes back to the bank (retried until it does). */
  override async alarm(): Promise<void> {
    const { accountId } = this.address();
    if (!this.lease || accountId === "") return;
    try {
      await this.settleHeld(accountId);
    } catch (err) {
      console.warn("shard lease not returned yet", String(err));
      await this.ctx.storage.setAlarm(Date.now() + RECALL_RETRY_MS);
    }
  }
}

/** One debit as a batch's delta (group commit off: each debit its own write). */
function deltaOf(minute: number, keyId: string, take: Buckets): MinuteDelta {
  const one = new Map<number, MinuteDelta>();
  addToBatch(one, minute, keyId, take);
  const delta = one.get(minute);
  if (!delta) throw new Error("unreachable: a delta was just added");
  return delta;
}
