/**
 * The Billing page's "Activity" section in words: what each audit-log entry says to the
 * account's people. Pure; an action this file does not know yet (members, suspensions added
 * elsewhere) is shown by its dotted name, never dropped.
 */
import type { AuditJson } from "../../accounts/audit";
import { isPackageId, PACKAGES, PLANS, type PlanId } from "../../pricing";
import { formatCredits, formatPrice } from "../kit/format";

const ACTIONS: Record<string, string> = {
  "account.created": "Account created",
  "key.created": "API key created",
  "key.revoked": "API key revoked",
  "auto_recharge.updated": "Auto-recharge changed",
  "auto_recharge.disabled": "Auto-recharge turned off",
  "limits.updated": "Limits changed",
  "shards.updated": "Capacity changed",
  "alerts.updated": "Low-balance email changed",
  "top_up.started": "Credits purchase started",
  "checkout.started": "Plan checkout started",
  "card_setup.started": "Card setup started",
  "billing_portal.started": "Billing portal opened",
  "payment_method.attached": "Card attached",
  "plan.changed": "Plan changed",
  "credits.adjusted": "Credits adjusted",
  "person.signed_in": "Signed in",
  "person.signed_out_everywhere": "Signed out everywhere",
  "passkey.added": "Passkey added",
  "passkey.removed": "Passkey removed",
  "member.invited": "Member invited",
  "member.joined": "Member joined",
  "member.role_changed": "Member's role changed",
  "member.removed": "Member removed",
  "account.suspended": "Account suspended",
  "account.unsuspended": "Suspension lifted",
  "sign_in_link.sent": "Sign-in link emailed by an operator",
  "webhook.created": "Webhook endpoint added",
  "webhook.deleted": "Webhook endpoint deleted",
};

const ACTORS: Record<AuditJson["actor"]["type"], string> = {
  person: "person",
  api_key: "API key",
  operator: "operator",
  system: "system",
};

export function activityAction(action: string): string {
  return ACTIONS[action] ?? action;
}

/** "API key tg_live_…a1b2", "operator admin token", "system Stripe". */
export function activityActor(actor: AuditJson["actor"]): string {
  return actor.type === "person" ? actor.label : `${ACTORS[actor.type]} ${actor.label}`;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const int = (v: unknown): number | null => (Number.isInteger(v) ? (v as number) : null);
const planName = (v: unknown): string => {
  const id = str(v);
  return id && id in PLANS ? PLANS[id as PlanId].name : (id ?? "unknown");
};
const signed = (n: number) => `${n > 0 ? "+" : "−"}${formatCredits(Math.abs(n))}`;

/** One line of what changed, from the entry's details; "" when there is nothing to add. */
export function activityDetail(entry: Pick<AuditJson, "action" | "details">): string {
  const d = entry.details;
  switch (entry.action) {
    case "member.invited":
    case "member.role_changed":
    case "member.removed":
      return `${str(d.email) ?? ""} (${str(d.role) ?? ""})`;
    case "member.joined":
      return `as ${str(d.role) ?? ""}`;
    case "sign_in_link.sent":
      return `to ${str(d.email) ?? ""}`;
    case "account.suspended":
      return str(d.reason) ?? "";
    case "person.signed_in":
      return d.method === "passkey" ? "with a passkey" : "";
    case "passkey.added":
    case "passkey.removed":
      return `passkey …${(str(d.passkey_id) ?? "").slice(-8)}`;
    case "key.created":
    case "key.revoked": {
      const key = `${str(d.prefix) ?? ""}…${str(d.last4) ?? ""}`;
      const name = str(d.name);
      return `${name ? `“${name}” ` : ""}${key}, ${d.scope === "full" ? "full" : "classify only"}`;
    }
    case "auto_recharge.updated": {
      const pkg = str(d.package);
      const what =
        pkg && isPackageId(pkg) ? `, ${formatCredits(PACKAGES[pkg].credits)} credits` : "";
      return `${d.enabled === true ? "on" : "off"}${what}`;
    }
    case "auto_recharge.disabled": {
      // Short on purpose: the page says elsewhere, once, what to do about a payment that waits.
      const code = str(d.reason);
      return code === "authentication_required" || code === "requires_action"
        ? "a payment needed authentication"
        : `a payment failed${code ? ` (${code})` : ""}`;
    }
    case "limits.updated": {
      const parts: string[] = [];
      if ("monthly_spend_limit_cents" in d) {
        const cents = int(d.monthly_spend_limit_cents);
        parts.push(
          cents === null ? "no spending limit" : `spending limit ${formatPrice(cents)} a month`,
        );
      }
      if ("rate_limit_per_minute" in d) {
        const rate = int(d.rate_limit_per_minute);
        parts.push(
          rate === null
            ? "rate limit back to the plan's"
            : `rate limit ${formatCredits(rate)} requests a minute`,
        );
      }
      return parts.join("; ");
    }
    case "alerts.updated": {
      const level = int(d.low_balance_credits);
      return level === null ? "off" : `at ${formatCredits(level)} credits or below`;
    }
    case "top_up.started": {
      const credits = int(d.credits);
      const cents = int(d.amount_cents);
      return credits === null || cents === null
        ? ""
        : `${formatCredits(credits)} credits for ${formatPrice(cents)}`;
    }
    case "checkout.started":
      return planName(d.plan);
    case "plan.changed":
      return `${planName(d.from)} → ${planName(d.to)}`;
    case "credits.adjusted": {
      const parts: string[] = [];
      const monthly = int(d.monthly) ?? 0;
      const purchased = int(d.purchased) ?? 0;
      if (monthly !== 0) parts.push(`${signed(monthly)} monthly`);
      if (purchased !== 0) parts.push(`${signed(purchased)} purchased`);
      const reason = str(d.reason);
      return `${parts.join(", ")}${reason ? `: ${reason}` : ""}`;
    }
    case "account.created":
      return `${planName(d.plan)} plan${d.complimentary === true ? " (complimentary)" : ""}`;
    case "payment_method.attached": {
      const card = d.card as { brand?: unknown; last4?: unknown } | null | undefined;
      return card ? `${str(card.brand) ?? "card"} ending ${str(card.last4) ?? ""}` : "";
    }
    default:
      return "";
  }
}
