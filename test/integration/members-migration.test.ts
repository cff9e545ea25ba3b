/**
 * The members migration (issue 20) on an account made by the previous schema: every account
 * gets its account email as its first, active owner, who can then sign in. The migrations are
 * applied in two steps to a database of the test's own: all before the members migration, an
 * account written as the previous code wrote it, then the rest.
 */
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const all = env.TEST_MIGRATIONS;
const cut = all.findIndex((m) => m.name.endsWith("_members.sql"));

describe("the members migration", () => {
  it("gives each existing account its email as owner, once, with the mailbox key", async () => {
    expect(cut).toBeGreaterThan(0);
    const db = env.MIGRATION_DB;
    await applyD1Migrations(db, all.slice(0, cut));
    // The tables before it: no members table yet.
    const before = await db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'members'")
      .all();
    expect(before.results).toEqual([]);
    // Two accounts as the previous code made them (email_key as 0007 and sign-up set it).
    await db.batch([
      db
        .prepare(
          "INSERT INTO accounts (id, email, email_key, plan, created_at) VALUES (?, ?, ?, 'free', ?)",
        )
        .bind(
          "acct_old1",
          "Old.Owner+Tag@Example.com",
          "old.owner@example.com",
          "2026-01-02T03:04:05.000Z",
        ),
      db
        .prepare("INSERT INTO accounts (id, email, email_key, plan) VALUES (?, ?, NULL, 'pro')")
        .bind("acct_old2", " second@example.com "),
    ]);

    await applyD1Migrations(db, all);
    const rows = await db
      .prepare(
        "SELECT id, account_id, email, email_key, role, status, session_epoch, created_at, last_sign_in_at FROM members ORDER BY account_id",
      )
      .all<Record<string, unknown>>();
    expect(rows.results).toEqual([
      {
        id: expect.stringMatching(/^mem_[0-9a-f]{24}$/),
        account_id: "acct_old1",
        email: "old.owner+tag@example.com",
        email_key: "old.owner@example.com",
        role: "owner",
        status: "active",
        session_epoch: 0,
        created_at: "2026-01-02T03:04:05.000Z",
        last_sign_in_at: null,
      },
      {
        id: expect.stringMatching(/^mem_[0-9a-f]{24}$/),
        account_id: "acct_old2",
        email: "second@example.com",
        email_key: "second@example.com",
        role: "owner",
        status: "active",
        session_epoch: 0,
        created_at: expect.any(String),
        last_sign_in_at: null,
      },
    ]);
    // Sign-up rows made before it are sign-up links still.
    const purpose = await db
      .prepare("SELECT dflt_value FROM pragma_table_info('signup_tokens') WHERE name = 'purpose'")
      .first<{ dflt_value: string }>();
    expect(purpose?.dflt_value).toBe("'signup'");
    // Applying again changes nothing (applied migrations are tracked).
    await applyD1Migrations(db, all);
    const count = await db.prepare("SELECT count(*) AS n FROM members").first<{ n: number }>();
    expect(count?.n).toBe(2);
  });
});
