import type { Db } from "../env";
import { createDb } from "./client";

const clients = new WeakMap<D1Database, Db>();

/** One drizzle client per D1 binding per isolate, so the hot path allocates none. */
export function dbFor(d1: D1Database): Db {
  let db = clients.get(d1);
  if (!db) {
    db = createDb(d1);
    clients.set(d1, db);
  }
  return db;
}
