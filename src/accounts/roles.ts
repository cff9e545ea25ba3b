/**
 * What each role of a person may do (contract: "People, roles and sign-in"; money rule 11),
 * as one pure table. Reading is every role's; a permission names a kind of change.
 * Keys are capped by their scope instead (./scope.ts); this table is for people only.
 */
import type { Role } from "../db/members";

export type { Role };

export const ROLES: readonly Role[] = ["owner", "billing", "developer", "viewer"];

export type Permission =
  /** Plans, cards, purchases, auto-recharge, spending limit, alerts, invoices, the portal. */
  | "billing"
  /** Creating and revoking `classify` keys. */
  | "classify_keys"
  /** Creating and revoking `full` keys. */
  | "full_keys"
  /** Usage exports and webhooks to customers. */
  | "developer_tools"
  /** Inviting, changing and removing members. */
  | "members";

const TABLE: Record<Role, readonly Permission[]> = {
  owner: ["billing", "classify_keys", "full_keys", "developer_tools", "members"],
  billing: ["billing"],
  developer: ["classify_keys", "developer_tools"],
  viewer: [],
};

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/** Whether a person with `role` may make this kind of change. */
export function may(role: Role, permission: Permission): boolean {
  return TABLE[role].includes(permission);
}

/** The permission managing a key of this scope needs. */
export function keyPermission(scope: "full" | "classify"): Permission {
  return scope === "full" ? "full_keys" : "classify_keys";
}

/**
 * Whether the caller may make this kind of change as far as people go: a person by their role;
 * an API key (role null) always, as its scope caps it instead (./scope.ts).
 */
export function callerMay(role: Role | null, permission: Permission): boolean {
  return role === null || may(role, permission);
}
