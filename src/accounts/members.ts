/**
 * An account's people, for `/v1/account/members` and the Billing page alike: invitations (a
 * week-long `invite` link of the one token mechanism, ./email-links.ts), role changes and
 * removals. "An account always keeps one owner" (money rule 11) is one guarded statement in
 * ../db/members, so concurrent demotions and removals cannot get past it together.
 */
import { getAccount } from "../db/accounts";
import type { Db } from "../db/client";
import {
  activateInvited,
  activeMember,
  changeRoleGuarded,
  getMember,
  insertInvited,
  type ListedMember,
  markSignedIn,
  removeMemberGuarded,
} from "../db/members";
import { consumeToken, insertInvitation, usableToken } from "../db/signup-tokens";
import { invitation } from "../delivery/email-templates";
import { sendEmailOnce } from "../delivery/mailer";
import type { Actor } from "../platform/actor";
import { personActor } from "../platform/actor";
import { brandOf } from "../platform/brand";
import { newId, sha256Hex } from "../platform/crypto";
import { mailboxKey } from "../platform/email-address";
import type { Bindings } from "../platform/env";
import { recordAudit } from "./audit";
import { newLinkToken } from "./email-links";
import type { Role } from "./roles";
import {
  EMAIL_KINDS,
  INVITE_PATH,
  INVITE_TTL_MS,
  normalizeEmail,
  signupStoresLinks,
  TOKEN_PATTERN,
} from "./signup-config";

function listed(row: {
  id: string;
  email: string;
  role: Role;
  status: "active" | "invited";
  createdAt: string;
  lastSignInAt: string | null;
}): ListedMember {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    status: row.status,
    created_at: row.createdAt,
    last_sign_in_at: row.lastSignInAt,
  };
}

export type InviteResult =
  | { ok: true; member: ListedMember }
  | { ok: false; reason: "member_exists" | "not_initialized" };

/** Invites `email` as `role`: an invited member row, and an emailed link valid for a week. */
export async function inviteMember(
  env: Bindings,
  db: Db,
  input: { accountId: string; email: string; role: Role; invitedBy: string; origin: string },
  actor: Actor,
  now = Date.now(),
): Promise<InviteResult> {
  const account = await getAccount(db, input.accountId);
  if (!account) return { ok: false, reason: "not_initialized" };
  const email = normalizeEmail(input.email);
  const id = newId("mem");
  if (!(await insertInvited(db, { id, accountId: input.accountId, email, role: input.role }))) {
    return { ok: false, reason: "member_exists" };
  }
  const { token, tokenHash } = await newLinkToken();
  await insertInvitation(db, {
    tokenHash,
    email,
    emailKey: mailboxKey(email),
    accountId: input.accountId,
    memberId: id,
    now,
    expiresAt: now + INVITE_TTL_MS,
  });
  await sendEmailOnce(env, db, {
    ref: `invitation:${tokenHash}`,
    accountId: input.accountId,
    kind: EMAIL_KINDS.invite,
    to: email,
    ...invitation({
      brand: brandOf(env),
      link: `${input.origin}${INVITE_PATH}?token=${token}`,
      accountEmail: account.email,
      role: input.role,
      invitedBy: input.invitedBy,
      expiresInDays: INVITE_TTL_MS / 86_400_000,
    }),
    secret: signupStoresLinks(env) ? undefined : token,
  });
  await recordAudit(db, input.accountId, actor, "member.invited", {
    member_id: id,
    email,
    role: input.role,
  });
  const row = await getMember(db, input.accountId, id);
  if (!row) throw new Error(`member ${id} missing after insert`);
  return { ok: true, member: listed(row) };
}

export type MemberChangeResult =
  | { ok: true; member: ListedMember }
  | { ok: false; reason: "member_not_found" | "last_owner" };

/** Changes a member's role; the account's last active owner stays an owner. */
export async function changeRole(
  db: Db,
  accountId: string,
  memberId: string,
  role: Role,
  actor: Actor,
): Promise<MemberChangeResult> {
  const result = await changeRoleGuarded(db, accountId, memberId, role);
  if (result === "not_found") return { ok: false, reason: "member_not_found" };
  if (result === "last_owner") return { ok: false, reason: "last_owner" };
  const row = await getMember(db, accountId, memberId);
  if (!row) return { ok: false, reason: "member_not_found" };
  await recordAudit(db, accountId, actor, "member.role_changed", {
    member_id: memberId,
    email: row.email,
    role,
  });
  return { ok: true, member: listed(row) };
}

/**
 * Removes a member (an invitation too); the account's last active owner stays. Their sessions
 * on this account end at their next request: each reads the member row, which is gone.
 */
export async function removeMember(
  db: Db,
  accountId: string,
  memberId: string,
  actor: Actor,
): Promise<MemberChangeResult> {
  const { result, removed } = await removeMemberGuarded(db, accountId, memberId);
  if (result === "last_owner") return { ok: false, reason: "last_owner" };
  if (!removed) return { ok: false, reason: "member_not_found" };
  await recordAudit(db, accountId, actor, "member.removed", {
    member_id: memberId,
    email: removed.email,
    role: removed.role,
  });
  return { ok: true, member: listed(removed) };
}

/** What an invitation's page shows without using the link; null when it cannot be used. */
export async function peekInvitation(
  db: Db,
  token: string,
  now = Date.now(),
): Promise<{ email: string; accountEmail: string; role: Role } | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const row = await usableToken(db, await sha256Hex(token), now, "invite");
  if (!row?.accountId || !row.memberId) return null;
  const member = await getMember(db, row.accountId, row.memberId);
  const account = await getAccount(db, row.accountId);
  if (member?.status !== "invited" || !account) return null;
  return { email: row.email, accountEmail: account.email, role: member.role };
}

export type AcceptResult =
  | { kind: "invalid" }
  | { kind: "signed_in"; accountId: string; memberId: string; epoch: number; email: string };

/** Uses the invitation's link (once): its member becomes active and is signed in. */
export async function acceptInvitation(
  db: Db,
  token: string,
  now = Date.now(),
): Promise<AcceptResult> {
  if (!TOKEN_PATTERN.test(token)) return { kind: "invalid" };
  const used = await consumeToken(db, await sha256Hex(token), now, "invite");
  if (!used?.accountId || !used.memberId) return { kind: "invalid" };
  if (!(await activateInvited(db, used.accountId, used.memberId))) return { kind: "invalid" };
  const member = await activeMember(db, used.accountId, used.memberId);
  if (!member) return { kind: "invalid" };
  await markSignedIn(db, member.id, now);
  await recordAudit(db, used.accountId, personActor(member.id, member.email), "member.joined", {
    role: member.role,
  });
  return {
    kind: "signed_in",
    accountId: used.accountId,
    memberId: member.id,
    epoch: member.sessionEpoch,
    email: member.email,
  };
}
