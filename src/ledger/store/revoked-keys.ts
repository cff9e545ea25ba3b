/** Revoked API keys (`revoked_keys`): refused on every later debit of the account. */

export function loadRevokedKeys(sql: SqlStorage): Set<string> {
  return new Set(
    sql
      .exec<{ key_id: string }>("SELECT key_id FROM revoked_keys")
      .toArray()
      .map((r) => r.key_id),
  );
}

/** Idempotent: a second revocation of the same key keeps the first time. */
export function insertRevokedKey(sql: SqlStorage, keyId: string, now: number): void {
  sql.exec(
    "INSERT INTO revoked_keys (key_id, revoked_at) VALUES (?, ?) ON CONFLICT(key_id) DO NOTHING",
    keyId,
    now,
  );
}
