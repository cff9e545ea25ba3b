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

/**
 * The revoked key ids as the object keeps them: read once, on the first keyed debit (an
 * operator's debit reads nothing), and written through on each revocation.
 */
export class RevokedKeys {
  private ids: Set<string> | null = null;

  constructor(private readonly sql: SqlStorage) {}

  has(keyId: string): boolean {
    return this.loaded().has(keyId);
  }

  revoke(keyId: string, now: number): void {
    insertRevokedKey(this.sql, keyId, now);
    this.loaded().add(keyId);
  }

  private loaded(): Set<string> {
    if (!this.ids) this.ids = loadRevokedKeys(this.sql);
    return this.ids;
  }
}
