/**
 * Accounts that start life under the previous ledger schema (v3: one ledger row per debit, the
 * balance in the state row, per-minute usage kept for D1), so the simulation also runs on
 * objects migrated in place. A fresh object is rewritten into the v3 shape (the columns and
 * tables v4 and v5 added are removed, v3's `usage` table is back), given `debits` v3-style debit
 * rows, and restarted: its next call migrates it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { ledgerFor } from "../../src/ledger/client";
import { minuteOf } from "../../src/ledger/domain/rules";
import { restartLedger } from "./actions";
import type { DirectDebit } from "./model";

export async function downgradeToV3(accountId: string, debits: number): Promise<DirectDebit[]> {
  const made: DirectDebit[] = [];
  await runInDurableObject(ledgerFor(env, accountId), (_i, state) => {
    const sql = state.storage.sql;
    state.storage.transactionSync(() => {
      const open = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM debit_minutes").one().n;
      if (open > 0) throw new Error("downgradeToV3 wants a fresh object");
      sql.exec("DROP TABLE debit_minutes");
      sql.exec("DROP TABLE usage_hours");
      sql.exec("DROP TABLE usage_days");
      sql.exec("ALTER TABLE state DROP COLUMN compacted_until");
      // v5's low-balance alert columns.
      sql.exec("ALTER TABLE state DROP COLUMN low_balance_credits");
      sql.exec("ALTER TABLE state DROP COLUMN low_balance_armed");
      sql.exec(`CREATE TABLE usage (
          minute INTEGER PRIMARY KEY,
          requests INTEGER NOT NULL,
          credits INTEGER NOT NULL,
          dirty INTEGER NOT NULL DEFAULT 1
        )`);
      sql.exec("UPDATE meta SET value = '3' WHERE key = 'schema_version'");
      // v3's debit, one credit at a time: guarded UPDATE, ledger row, usage upsert.
      // After the account's initial grant, as v3's debits were.
      const at = Date.now();
      for (let i = 0; i < debits; i++) {
        const s = sql.exec<{ monthly: number }>("SELECT monthly FROM state WHERE id = 1").one();
        const take = s.monthly > 0 ? { monthly: 1, purchased: 0 } : { monthly: 0, purchased: 1 };
        sql.exec(
          "UPDATE state SET monthly = monthly - ?, purchased = purchased - ? WHERE id = 1",
          take.monthly,
          take.purchased,
        );
        const ref = `dbt_v3_${accountId}_${i}`;
        sql.exec(
          "INSERT INTO ledger (ref, kind, monthly_delta, purchased_delta, at) VALUES (?, 'debit', ?, ?, ?)",
          ref,
          -take.monthly,
          -take.purchased,
          at,
        );
        sql.exec(
          `INSERT INTO usage (minute, requests, credits, dirty) VALUES (?, 1, 1, 1)
           ON CONFLICT(minute) DO UPDATE SET requests = requests + 1, credits = credits + 1, dirty = 1`,
          minuteOf(at),
        );
        made.push({ ref, minute: minuteOf(at), ...take, refunded: false });
      }
    });
  });
  await restartLedger(accountId);
  return made;
}
