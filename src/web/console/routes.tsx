/**
 * The operator console (contract: "Operators", `GET /admin`): the overview first, account
 * search with paging, an account's page, and its actions (adjust credits, suspend, lift the
 * suspension, revoke a key, email a member a sign-in link), each with a required reason and
 * its form token. Mounted at /admin
 * before the JSON routes; like them it does not exist (404) with neither Access nor
 * ADMIN_TOKEN configured. Who is signing in: see ./auth.ts.
 */
import { type Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { accountView } from "../../accounts/account-view";
import { auditJson, listAudit } from "../../accounts/audit";
import { adjustCredits } from "../../accounts/create-account";
import { listKeys } from "../../accounts/key-list";
import { revokeKey } from "../../accounts/keys";
import { recordOperatorAction } from "../../accounts/operator-actions";
import { operatorsConfigured } from "../../accounts/operator-auth";
import { overview } from "../../accounts/overview";
import { searchAccounts, searchRowJson } from "../../accounts/search";
import { sendOperatorSignInLink } from "../../accounts/sign-in";
import { publicOrigin } from "../../accounts/signup-config";
import { suspendAccount } from "../../accounts/suspension";
import { listTransactions } from "../../accounts/transactions";
import { getAccount } from "../../db/accounts";
import { listEmails } from "../../db/emails";
import { listMembers } from "../../db/members";
import type { AppEnv } from "../../http/context";
import { CursorParam, encodeCursor } from "../../http/cursor";
import { ledgerFor } from "../../ledger/client";
import type { Actor } from "../../platform/actor";
import { secretsEqual } from "../../platform/crypto";
import { ApiError } from "../../platform/errors";
import { pageWords } from "../../platform/refusals";
import { PageError, parseFields, readFields } from "../kit/forms";
import { Document, type Notice, renderHtml } from "../kit/layout";
import { pageSecurityHeaders } from "../kit/security";
import { AccountBody } from "./account-page";
import {
  CONSOLE_PATH,
  type ConsolePurpose,
  checkConsoleForm,
  consoleFormToken,
  consoleOperator,
  endOperatorSession,
  formSecret,
  startOperatorSession,
} from "./auth";
import {
  accountPath,
  ConsoleMessage,
  ConsolePage,
  type ConsoleTokens,
  OperatorSignIn,
  OverviewBody,
  SearchBody,
  SIGN_IN_PATH,
} from "./pages";

/** Not an operator: Access refused above, so local mode's sign-in form, or a plain 401. */
class NotSignedIn extends Error {}

const ACTION_PURPOSES: readonly ConsolePurpose[] = [
  "operator-credits",
  "operator-suspend",
  "operator-unsuspend",
  "operator-revoke-key",
  "operator-sign-in-link",
];

/** What the account page says after an action (`?done=`). */
const DONE: Record<string, Notice> = {
  adjusted: { tone: "ok", text: "Credits adjusted." },
  suspended: { tone: "ok", text: "Account suspended." },
  unsuspended: { tone: "ok", text: "Suspension lifted." },
  revoked: { tone: "ok", text: "Key revoked." },
  link_sent: { tone: "ok", text: "Sign-in link emailed. It works once, for 30 minutes." },
  link_failed: {
    tone: "bad",
    text: "The sign-in link could not be emailed: see the error under Emails.",
  },
};

const Reason = z.string().trim().min(1, "give a reason").max(500);
const credits = z
  .string()
  .trim()
  .regex(/^-?\d{1,9}$/, "must be a whole number")
  .transform(Number);
const AdjustFields = z.object({
  monthly: credits.optional().default(0),
  purchased: credits.optional().default(0),
  reason: Reason,
  idempotency_key: z
    .string()
    .regex(/^[A-Za-z0-9_-]{8,64}$/)
    .optional(),
  csrf: z.string().optional(),
});
const ReasonFields = z.object({ reason: Reason, csrf: z.string().optional() });
const SignInLinkFields = z.object({
  email: z.email("choose a member").max(254),
  reason: Reason,
  csrf: z.string().optional(),
});
const SearchQuery = z.object({
  query: z.string().max(254).optional(),
  cursor: CursorParam.optional(),
});

async function operatorOf(c: Context<AppEnv>): Promise<Actor> {
  const operator = await consoleOperator(c);
  if (!operator) throw new NotSignedIn();
  c.set("actor", operator);
  return operator;
}

/** The tokens of the forms a page shows: none without a secret to sign them. */
async function tokensFor(
  c: Context<AppEnv>,
  purposes: readonly ConsolePurpose[],
): Promise<ConsoleTokens> {
  const secret = await formSecret(c);
  if (!secret) return {};
  const tokens: ConsoleTokens = {};
  for (const p of purposes) tokens[p] = await consoleFormToken(c, secret, p);
  return tokens;
}

/** Local mode signs out here; under Access the edge does. */
async function signOutToken(c: Context<AppEnv>): Promise<string | undefined> {
  if (c.req.header("Cf-Access-Jwt-Assertion")) return undefined;
  return (await tokensFor(c, ["operator-sign-out"]))["operator-sign-out"];
}

async function existing(c: Context<AppEnv>) {
  const account = await getAccount(c.get("db"), c.req.param("id") ?? "");
  if (!account) throw new PageError(404, "No such account", "That account does not exist.");
  return account;
}

/** Only the console's own paths: the JSON routes under /admin keep their own middleware. */
const onlyWhenConfigured = createMiddleware<AppEnv>(async (c, next) => {
  if (!operatorsConfigured(c.env)) throw ApiError.notFound();
  await next();
});

export const consoleRoutes = new Hono<AppEnv>()
  .use("/", onlyWhenConfigured, pageSecurityHeaders)
  .use("/console/*", onlyWhenConfigured, pageSecurityHeaders)
  .get("/", async (c) => {
    const operator = await operatorOf(c);
    const o = await overview(c.get("db"));
    return renderHtml(
      c,
      <ConsolePage title="Overview" operator={operator} signOut={await signOutToken(c)}>
        <OverviewBody o={o} />
      </ConsolePage>,
    );
  })
  .get("/console/accounts", async (c) => {
    const operator = await operatorOf(c);
    const q = SearchQuery.safeParse(c.req.query());
    if (!q.success) throw new PageError(400, "Not a valid search", "The page link is not valid.");
    const query = q.data.query ?? "";
    const after = q.data.cursor ? { email: q.data.cursor.createdAt, id: q.data.cursor.id } : null;
    const page = await searchAccounts(c.get("db"), query, after);
    return renderHtml(
      c,
      <ConsolePage title="Accounts" operator={operator} signOut={await signOutToken(c)}>
        <SearchBody
          query={query}
          rows={page.rows.map(searchRowJson)}
          next={page.next ? encodeCursor(page.next.email, page.next.id) : null}
        />
      </ConsolePage>,
    );
  })
  .get("/console/accounts/:id", async (c) => {
    const operator = await operatorOf(c);
    const account = await existing(c);
    const db = c.get("db");
    const [ledger, history, keys, emails, people, audit] = await Promise.all([
      ledgerFor(c.env, account.id).snapshot(),
      listTransactions(db, account.id, 25),
      listKeys(c.env, db, account.id, 50),
      listEmails(db, account.id, 20),
      listMembers(db, account.id),
      listAudit(db, { accountId: account.id }, 20),
    ]);
    const done = DONE[c.req.query("done") ?? ""] ?? null;
    return renderHtml(
      c,
      <ConsolePage title={account.email} operator={operator} signOut={await signOutToken(c)}>
        <AccountBody
          d={{
            view: accountView(account),
            stripeCustomerId: account.stripeCustomerId,
            ledger,
            history: history.data,
            keys: keys.data,
            emails,
            members: people,
            audit: audit.rows.map(auditJson),
            adjustKey: crypto.randomUUID(),
          }}
          tokens={await tokensFor(c, ACTION_PURPOSES)}
          notice={done}
        />
      </ConsolePage>,
    );
  })
  .post("/console/accounts/:id/credits", async (c) => {
    await operatorOf(c);
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-credits", fields.csrf);
    const account = await existing(c);
    const f = parseFields(fields, AdjustFields);
    if (f.monthly === 0 && f.purchased === 0)
      throw new PageError(400, "Nothing to adjust", "Give a non-zero monthly or purchased amount.");
    const result = await adjustCredits(c.env, account.id, {
      monthly: f.monthly,
      purchased: f.purchased,
      reason: f.reason,
      idempotencyKey: f.idempotency_key,
    });
    if (!result.ok) {
      const words = pageWords(result.reason);
      throw new PageError(
        409,
        words.title,
        "The adjustment would take a bucket below zero, or was already used; nothing changed.",
      );
    }
    // A second post of the same form (its idempotency key) applied nothing: nothing to record.
    if (!result.replayed)
      await recordOperatorAction(c.get("db"), c.get("actor"), {
        action: "adjust_credits",
        accountId: account.id,
        reason: f.reason,
        detail: { adjustment_id: result.ref, monthly: f.monthly, purchased: f.purchased },
        ref: result.ref,
      });
    return c.redirect(`${accountPath(account.id)}?done=adjusted`, 303);
  })
  .post("/console/accounts/:id/suspend", async (c) => {
    await operatorOf(c);
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-suspend", fields.csrf);
    const account = await existing(c);
    const f = parseFields(fields, ReasonFields);
    const result = await suspendAccount(c.env, c.get("db"), account.id, { reason: f.reason });
    if (!result.ok) throw new PageError(404, "No ledger", "This account has no ledger.");
    await recordOperatorAction(c.get("db"), c.get("actor"), {
      action: "suspend",
      accountId: account.id,
      reason: f.reason,
    });
    return c.redirect(`${accountPath(account.id)}?done=suspended`, 303);
  })
  .post("/console/accounts/:id/unsuspend", async (c) => {
    await operatorOf(c);
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-unsuspend", fields.csrf);
    const account = await existing(c);
    const f = parseFields(fields, ReasonFields);
    const result = await suspendAccount(c.env, c.get("db"), account.id, null);
    if (!result.ok) throw new PageError(404, "No ledger", "This account has no ledger.");
    await recordOperatorAction(c.get("db"), c.get("actor"), {
      action: "unsuspend",
      accountId: account.id,
      reason: f.reason,
    });
    return c.redirect(`${accountPath(account.id)}?done=unsuspended`, 303);
  })
  .post("/console/accounts/:id/keys/:keyId/revoke", async (c) => {
    await operatorOf(c);
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-revoke-key", fields.csrf);
    const account = await existing(c);
    const f = parseFields(fields, ReasonFields);
    const keyId = c.req.param("keyId");
    const result = await revokeKey(c.env, c.get("db"), account.id, keyId, c.get("actor"), null, {
      reason: f.reason,
    });
    if (!result.ok) {
      const words = pageWords(result.reason);
      throw new PageError(409, words.title, words.text);
    }
    return c.redirect(`${accountPath(account.id)}?done=revoked`, 303);
  })
  .post("/console/accounts/:id/sign-in-link", async (c) => {
    await operatorOf(c);
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-sign-in-link", fields.csrf);
    const account = await existing(c);
    const f = parseFields(fields, SignInLinkFields);
    const result = await sendOperatorSignInLink(
      c.env,
      c.get("db"),
      {
        accountId: account.id,
        email: f.email,
        origin: publicOrigin(c.env, c.req.url),
        reason: f.reason,
      },
      c.get("actor"),
    );
    if (!result.ok) {
      const words = pageWords(result.reason);
      throw new PageError(404, words.title, words.text);
    }
    const done = result.delivery === "failed" ? "link_failed" : "link_sent";
    return c.redirect(`${accountPath(account.id)}?done=${done}`, 303);
  })
  .get("/console/sign-in", async (c) => signInPage(c, 200))
  .post("/console/sign-in", async (c) => {
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-sign-in", fields.csrf);
    const secret = await formSecret(c);
    const expected = c.env.ADMIN_TOKEN;
    if (!secret || !expected || !(await secretsEqual(fields.admin_token ?? "", expected))) {
      return signInPage(c, 401, { tone: "bad", text: "That is not the admin token." });
    }
    await startOperatorSession(c, secret);
    return c.redirect(CONSOLE_PATH, 303);
  })
  .post("/console/sign-out", async (c) => {
    const fields = await readFields(c);
    await checkConsoleForm(c, "operator-sign-out", fields.csrf);
    endOperatorSession(c);
    return c.redirect(SIGN_IN_PATH, 303);
  })
  .onError((err, c) => {
    if (err instanceof NotSignedIn) {
      // Local mode has a sign-in form; under Access alone, only the edge can sign anyone in.
      if (c.env.ADMIN_TOKEN) return c.redirect(SIGN_IN_PATH, 303);
      return message(
        c,
        401,
        "Sign in through Cloudflare Access",
        "This console is behind Cloudflare Access.",
      );
    }
    if (err instanceof PageError) return message(c, err.status, err.title, err.message);
    if (err instanceof ApiError) return c.json(err.toBody(), err.status, err.headers);
    throw err;
  });

async function signInPage(c: Context<AppEnv>, status: 200 | 401, notice?: Notice) {
  const secret = await formSecret(c);
  if (!secret || !c.env.ADMIN_TOKEN)
    return message(c, 404, "No local sign-in", "Operators sign in through Cloudflare Access here.");
  const csrf = await consoleFormToken(c, secret, "operator-sign-in");
  return renderHtml(
    c,
    <Document title="Sign in · Operator console">
      <OperatorSignIn csrf={csrf} notice={notice ?? null} />
    </Document>,
    status,
  );
}

function message(c: Context<AppEnv>, status: PageError["status"], title: string, text: string) {
  return renderHtml(
    c,
    <Document title={`${title} · Operator console`}>
      <ConsoleMessage title={title} text={text} />
    </Document>,
    status,
  );
}
