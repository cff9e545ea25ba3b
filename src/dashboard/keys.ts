import { and, desc, eq, isNull } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { isTestMode } from "../billing/stripe-client";
import { newId } from "../crypto";
import { accounts, apiKeys } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { generateApiKey } from "../gateway/api-keys";
import { forgetKey } from "../gateway/auth";
import { parseJson } from "../http/body";

const CreateKeyBody = z.strictObject({ name: z.string().trim().min(1).max(100).optional() });

/** A key as listed: never the full key, only its prefix and last four characters. */
const listed = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  last4: apiKeys.last4,
  created_at: apiKeys.createdAt,
  revoked_at: apiKeys.revokedAt,
};

/** `/v1/account/keys`: list, create (the full key is returned once), revoke. */
export const keyRoutes = new Hono<AppEnv>()
  .get("/", async (c) => {
    const data = await c
      .get("db")
      .select(listed)
      .from(apiKeys)
      .where(eq(apiKeys.accountId, c.get("accountId")))
      .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
      .all();
    return c.json({ data }, 200);
  })
  .post("/", async (c) => {
    const body = await parseJson(c, CreateKeyBody);
    const db = c.get("db");
    const account = await db
      .select({ testMode: accounts.testMode })
      .from(accounts)
      .where(eq(accounts.id, c.get("accountId")))
      .get();
    if (!account) throw ApiError.notFound("No such account.");
    const key = await generateApiKey(account.testMode || isTestMode(c.env) ? "test" : "live");
    const id = newId("key");
    const row = await db
      .insert(apiKeys)
      .values({
        id,
        accountId: c.get("accountId"),
        keyHash: key.hash,
        prefix: key.prefix,
        last4: key.last4,
        name: body.name ?? null,
      })
      .returning(listed)
      .get();
    return c.json({ ...row, key: key.key }, 201);
  })
  .delete("/:id", async (c) => {
    const db = c.get("db");
    const accountId = c.get("accountId");
    // Scoped by account: another account's key id is indistinguishable from a missing one.
    const key = await db
      .select({ id: apiKeys.id, keyHash: apiKeys.keyHash, revokedAt: apiKeys.revokedAt })
      .from(apiKeys)
      .where(and(eq(apiKeys.id, c.req.param("id")), eq(apiKeys.accountId, accountId)))
      .get();
    if (!key) throw ApiError.notFound("No such API key.");
    if (!key.revokedAt) {
      const active = await db
        .select({ id: apiKeys.id })
        .from(apiKeys)
        .where(and(eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
        .all();
      if (active.length <= 1) {
        throw new ApiError(
          "conflict",
          "This is the account's last active key; create another before revoking it.",
        );
      }
      await db
        .update(apiKeys)
        .set({ revokedAt: new Date().toISOString() })
        .where(and(eq(apiKeys.id, key.id), isNull(apiKeys.revokedAt)));
      forgetKey(key.keyHash);
    }
    const row = await db.select(listed).from(apiKeys).where(eq(apiKeys.id, key.id)).get();
    return c.json({ ...row, revoked: true }, 200);
  });
