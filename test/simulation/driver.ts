/**
 * Runs a seeded simulation against one fresh account: generate a step, put stress around it,
 * perform it, check the invariants that hold at every instant, wait until nothing is in flight
 * (checking again on every poll), then check all five invariants and the model.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { type MockInstance, vi } from "vitest";
import { ledgerFor } from "../../src/ledger/client";
import { shardFor } from "../../src/ledger/shards/client";
import type { PlanId } from "../../src/pricing";
import { reconcile } from "../../src/purchases/reconciler";
import { admin, createAccount, type TestAccount } from "../helpers/http";
import {
  type ActionContext,
  deliverJob,
  jobFromRow,
  ModelDivergence,
  perform,
  restartLedger,
  startsPurchase,
} from "./actions";
import {
  billingTimeline,
  type FaultPlan,
  type GeneratorContext,
  generateStep,
  type Step,
} from "./generators";
import {
  checkLedger,
  checkSystem,
  type FailureHistory,
  InvariantViolation,
  noteFailures,
  type SystemSnapshot,
  type Violation,
} from "./invariants";
import * as M from "./model";
import { busyWith, type LiveLedger, readLedger, readPurchaseRows, readSystem } from "./observe";
import { replayCommand } from "./plan";
import { Prng } from "./prng";

/** The ledger re-sends a failed queue send after this long (OUTBOX_RETRY_MS in the ledger). */
const OUTBOX_RETRY_MS = 5_000;
const HOUR = 60 * 60_000;

export interface SimulationOptions {
  seed: number;
  /** How long a step may take to come to rest before it counts as stuck. */
  settleTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * Escrow shards (docs/ledger-shards.md): the account's requests spread over this many shard
   * objects (default 1: the ledger alone). Every step ends with the leases recalled, so the
   * ledger holds the whole account when it is checked; restarts restart the shards too.
   */
  shards?: number;
}

/** Something a step left in flight that the system never finished (money rule 7). */
export class NotQuiescent extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotQuiescent";
  }
}

export class Simulation {
  readonly rng: Prng;
  readonly trace: string[] = [];
  model!: M.ModelState;
  history: FailureHistory = { lastEnableStep: -1, failureFirstSeen: {} };
  account!: TestAccount;
  customerId!: string;
  private gen!: GeneratorContext;
  private step = 0;
  /** What the run exercised, for the summary line (so a quiet run is visible as one). */
  readonly stats: Record<string, number> = {};
  /** Recharge ids already seen settled. */
  private readonly settled: string[] = [];

  private constructor(readonly options: SimulationOptions) {
    this.rng = new Prng(options.seed);
  }

  /** A fresh account on a random plan, and the subscription timeline its webhooks come from. */
  static async start(options: SimulationOptions): Promise<Simulation> {
    const sim = new Simulation(options);
    const plan = sim.rng.pick<PlanId>(["free", "starter", "pro"]);
    sim.account = await createAccount(plan, `sim-${options.seed}@example.com`);
    if (!sim.account.stripe_customer_id) throw new Error("account without a Stripe customer");
    sim.customerId = sim.account.stripe_customer_id;
    const shards = options.shards ?? 1;
    if (shards > 1) {
      const res = await admin(`/accounts/${sim.account.id}`, {
        method: "PATCH",
        body: JSON.stringify({ shards }),
      });
      if (res.status !== 200) throw new Error(`setting ${shards} shards: ${res.status}`);
      await res.arrayBuffer();
    }
    const ledger = await readLedger(sim.account.id);
    sim.model = M.initialState(plan, ledger.cycleEndsAt);
    sim.gen = {
      timeline: billingTimeline(sim.rng, options.seed, Math.floor(Date.now() / 1000)),
    };
    sim.log(`seed ${options.seed}: account ${sim.account.id} on ${plan}, ${shards} shard(s)`);
    return sim;
  }

  count(what: string): void {
    this.stats[what] = (this.stats[what] ?? 0) + 1;
  }

  summary(): string {
    return Object.entries(this.stats)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
  }

  log(line: string): void {
    this.options.log?.(line);
  }

  /** Runs `steps` random steps; any failure names the seed, the step and how to replay it. */
  async run(steps: number): Promise<void> {
    for (let i = 0; i < steps; i++)
      await this.runStep(generateStep(this.rng, this.model, this.gen));
  }

  /** Runs one step (random or scripted), with all checks. */
  async runStep(step: Step): Promise<void> {
    const n = this.step++;
    this.trace.push(`${n}: ${JSON.stringify(step)}`);
    try {
      await this.execute(step, n);
    } catch (err) {
      if (err instanceof Error) {
        err.message = `${err.message}\n${this.describe(n)}`;
      }
      throw err;
    }
  }

  describe(failedAt: number): string {
    const recent = this.trace.slice(-12).join("\n    ");
    return [
      `  seed ${this.options.seed}, account ${this.account.id}, failed at step ${failedAt}`,
      `  replay: ${replayCommand(this.options.seed, failedAt + 1)}`,
      `  last steps:\n    ${recent}`,
    ].join("\n");
  }

  private context(n: number): ActionContext {
    return {
      account: this.account,
      customerId: this.customerId,
      model: this.model,
      step: n,
      seed: this.options.seed,
      timeline: this.gen.timeline,
      settled: this.settled,
      enabled: () => {
        this.history = { ...this.history, lastEnableStep: n };
      },
      count: (what) => this.count(what),
    };
  }

  private async execute(step: Step, n: number): Promise<void> {
    const c = this.context(n);
    const purchase = startsPurchase(c, step);
    this.count(step.kind === "restart" ? "restart at rest" : step.kind);
    if (step.restartInflight) this.count(purchase ? "restart during a purchase" : "restart");
    const sendSpy = purchase && step.stress ? await this.armStress(step.stress) : null;
    const knownBefore = new Set(this.settled);
    let races: Array<Promise<unknown>> = [];
    try {
      await perform(c, step);
      if (purchase && step.stress) races = await this.startRaces(step, knownBefore);
      if (step.restartInflight) await restartLedger(this.account.id);
      if (step.restartInflight || step.kind === "restart") await this.restartShards();
      // Every lease back at the ledger (the account-wide trigger runs on their return).
      if (this.shards > 1) {
        const recalled = await ledgerFor(env, this.account.id).leaseRecall();
        for (let i = 0; i < recalled; i++) this.count("lease recalled");
      }
      // The ledger commits each change atomically: 1, 2 and 4 hold even mid-flight.
      this.assertLedger(await readLedger(this.account.id), `right after step ${n}`);
      await Promise.allSettled(races);
      await this.settle(n);
    } finally {
      sendSpy?.mockRestore();
    }
    await this.checkAtRest(n);
  }

  private get shards(): number {
    return this.options.shards ?? 1;
  }

  /** Aborts every shard of the account: memory gone, storage (the lease, its spending) kept. */
  private async restartShards(): Promise<void> {
    for (let i = 0; i < this.shards && this.shards > 1; i++) {
      await runInDurableObject(shardFor(env, this.account.id, i), (_i, state) =>
        state.abort("simulated restart"),
      ).catch((err: unknown) => {
        if (!String(err).includes("simulated restart")) throw err;
      });
      this.count("shard restart");
    }
  }

  // ---------------------------------------------------------------- stress

  private async armStress(stress: NonNullable<Step["stress"]>): Promise<MockInstance | null> {
    if (stress.fault) await this.injectFault(stress.fault);
    if (stress.racingRedelivery) this.count("racing redelivery");
    if (stress.racingReconcile) this.count("racing reconcile");
    if (!stress.queueSendFails) return null;
    this.count("queue send fails");
    // The test's queue binding is the very object the ledgers send through (one isolate), so
    // its next send fails; the spy is restored after the step.
    return vi
      .spyOn(env.RECHARGE_QUEUE, "send")
      .mockRejectedValueOnce(new Error("simulated queue outage"));
  }

  /** One fault at a time for this customer, so a recharge always ends within its retries. */
  private async injectFault(fault: FaultPlan): Promise<void> {
    const base = env.STRIPE_API_URL;
    const listed = await fetch(`${base}/_test/faults`).then((r) =>
      r.json<{ faults: Array<{ match: Record<string, string> | null }> }>(),
    );
    if (listed.faults.some((f) => f.match?.customer === this.customerId)) return;
    this.count(`fault ${fault.kind}`);
    const res = await fetch(`${base}/_test/faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        faults: [
          {
            method: "POST",
            // The purchase's first two steps name the customer: the invoice and its item
            // (alternating, so a lost answer or a 5xx lands before and after the invoice exists).
            path: this.step % 2 === 0 ? "/v1/invoices" : "/v1/invoiceitems",
            ...fault,
            match: { customer: this.customerId },
          },
        ],
      }),
    });
    if (res.status !== 200) throw new Error(`injecting a fault: ${res.status}`);
    await res.arrayBuffer();
  }

  /** Races started while the step's recharge is in flight. */
  private async startRaces(step: Step, knownBefore: Set<string>): Promise<Array<Promise<unknown>>> {
    const races: Array<Promise<unknown>> = [];
    if (step.stress?.racingRedelivery) {
      const rows = await readPurchaseRows(this.account.id);
      const fresh = rows.find((r) => r.status === "pending" && !knownBefore.has(r.id));
      const job = fresh ? await jobFromRow(fresh.id) : null;
      // Acked or retried are both fine here: the real delivery is still working on it.
      if (job) races.push(deliverJob(job, 1, `race${this.options.seed}_${this.step}`));
    }
    if (step.stress?.racingReconcile) races.push(reconcile(env, { now: Date.now() + HOUR }));
    return races;
  }

  // ---------------------------------------------------------------- settling and checks

  private assertLedger(ledger: LiveLedger, when: string): void {
    const violations = checkLedger(ledger);
    if (violations.length > 0) throw new InvariantViolation(violations, when);
  }

  /**
   * Waits until nothing is in flight. Every poll re-checks invariants 1, 2 and 4. A job left in
   * the outbox after a failed send must have an alarm due to re-send it (money rule 7); we fire
   * that alarm at once instead of waiting out its delay.
   */
  private async settle(n: number): Promise<void> {
    const id = this.account.id;
    let problem: Violation[] | string | null;
    try {
      problem = await vi.waitFor(() => this.poll(id), {
        timeout: this.options.settleTimeoutMs ?? 15_000,
        interval: 50,
      });
    } catch (err) {
      throw await this.stuck(id, n, err);
    }
    if (Array.isArray(problem)) throw new InvariantViolation(problem, `while settling step ${n}`);
    if (problem) throw new NotQuiescent(problem);
  }

  /** One poll: null at rest, a problem to report, or a throw (still busy: poll again). */
  private async poll(id: string): Promise<Violation[] | string | null> {
    const ledger = await readLedger(id);
    const violations = checkLedger(ledger);
    if (violations.length > 0) return violations;
    const retrying = ledger.outbox.filter((o) => o.attempts > 0);
    if (retrying.length > 0) {
      if (ledger.alarmAt === null || ledger.alarmAt > Date.now() + OUTBOX_RETRY_MS + 1_000)
        return `outbox holds ${retrying.map((o) => o.id).join(", ")} with no alarm due to re-send it (alarm ${ledger.alarmAt})`;
      await runDurableObjectAlarm(ledgerFor(env, id));
    }
    const rows = await readPurchaseRows(id);
    if (rows.some((r) => r.status === "pending" && r.needsAttention)) {
      // The queue gave up (a racing party held the Stripe idempotency key through all its
      // immediate retries); in production the cron's reconciler carries it on, so run it.
      this.count("dead-lettered, reconciled");
      await reconcile(env);
    }
    const busy = busyWith(ledger, rows);
    if (busy) throw new Error(busy);
    return null;
  }

  /**
   * Never came to rest: once nothing moves any more, say whether anything is already broken,
   * which is usually why. (Checking a system that is merely slow would blame a half-done step.)
   */
  private async stuck(id: string, n: number, err: unknown): Promise<Error> {
    const system = await this.stable(id);
    const violations = checkSystem(system, noteFailures(this.history, system, n));
    if (violations.length > 0)
      return new InvariantViolation(violations, `step ${n} never came to rest`);
    return new NotQuiescent(`step ${n} never came to rest: ${String(err)}`);
  }

  /** The system once two reads 250 ms apart agree on every purchase and ledger entry. */
  private async stable(id: string): Promise<SystemSnapshot> {
    let previous = "";
    return vi.waitFor(
      async () => {
        const { system } = await readSystem(id, this.customerId);
        const print = JSON.stringify([
          system.ledger.length,
          system.recharges.map((r) => `${r.id}:${r.status}`).sort(),
          system.d1.map((r) => `${r.id}:${r.status}`).sort(),
          system.stripe.map((p) => `${p.id}:${p.status}`).sort(),
        ]);
        const same = print === previous;
        previous = print;
        if (!same) throw new Error("still moving");
        return system;
      },
      { timeout: 10_000, interval: 250 },
    );
  }

  /** All five invariants, then the model: balances, settings and the purchases the step made. */
  private async checkAtRest(n: number): Promise<void> {
    const { ledger, system } = await readSystem(this.account.id, this.customerId);
    this.history = noteFailures(this.history, system, n);
    const violations = checkSystem(system, this.history);
    if (violations.length > 0) throw new InvariantViolation(violations, `after step ${n}`);

    const expected = M.settle(this.model);
    const fresh = ledger.recharges.filter((r) => !this.settled.includes(r.id));
    // With shards, money rule 3 holds per lease (docs/ledger-shards.md): a shard may spend the
    // purchased credits of its lease while another holds monthly ones. The total must match
    // exactly; the model then follows the observed split.
    const observed =
      this.shards > 1 && M.total(this.model) === ledger.monthly + ledger.purchased
        ? { ...ledger, monthly: this.model.monthly, purchased: this.model.purchased }
        : ledger;
    const diffs = [...M.diffPurchases(expected, fresh), ...M.diffState(this.model, observed)];
    if (this.shards > 1 && diffs.length === 0) {
      this.model.monthly = ledger.monthly;
      this.model.purchased = ledger.purchased;
    }
    if (diffs.length > 0)
      throw new ModelDivergence(`after step ${n} the model disagrees:\n  ${diffs.join("\n  ")}`);
    this.settled.push(...fresh.map((r) => r.id));
    for (const r of fresh) this.count(`${r.kind} ${r.status}`);
  }
}
