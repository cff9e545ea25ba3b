/**
 * A Durable Object's own storage, counted or failed from inside it (`runInDurableObject`):
 * `state.storage.sql` is the very `SqlStorage` the object runs its statements on, so an own
 * `exec` on it sees each one. Nothing of ours is replaced; the runtime's storage runs every
 * statement that is not failed.
 */

/** Rows written by every statement run on the object's storage from now on. */
export function meter(state: DurableObjectState) {
  const sql = state.storage.sql;
  const exec = sql.exec.bind(sql);
  const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  sql.exec = ((query: string, ...bindings: SqlStorageValue[]) => {
    const cursor = exec(query, ...bindings);
    cursors.push(cursor);
    return cursor;
  }) as SqlStorage["exec"];
  return {
    written: () => cursors.reduce((n, c) => n + c.rowsWritten, 0),
    stop: () => Reflect.deleteProperty(sql, "exec"),
  };
}

/**
 * The object's next statement matching `write` runs `fault` instead (the runtime's storage
 * failing, or the object dying at that point); every other statement runs as it is.
 */
export function failNextWrite(state: DurableObjectState, write: RegExp, fault: () => never) {
  const sql = state.storage.sql;
  const real = sql.exec.bind(sql);
  sql.exec = ((query: string, ...bindings: SqlStorageValue[]) => {
    if (!write.test(query)) return real(query, ...bindings);
    Reflect.deleteProperty(sql, "exec");
    return fault();
  }) as SqlStorage["exec"];
}
