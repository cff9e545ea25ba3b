/**
 * Who made a change, for the audit log (money rule 12): a person signed in to the Billing
 * page, an API key, an operator, or the system itself (the ledger, the recharge consumer,
 * a Stripe webhook). `label` is what a reader sees (an email, a key's prefix and last four).
 */
export type ActorType = "person" | "api_key" | "operator" | "system";

export interface Actor {
  type: ActorType;
  id: string;
  label: string;
}

export const SYSTEM_ACTOR: Actor = { type: "system", id: "system", label: "Tollgate" };

export function keyActor(keyId: string, label = keyId): Actor {
  return { type: "api_key", id: keyId, label };
}

/** Changes Stripe's webhooks decide (a plan change). */
export const STRIPE_ACTOR: Actor = { type: "system", id: "stripe", label: "Stripe" };

/** A person signed in to the Billing page: their member id, labelled by their email. */
export function personActor(memberId: string, email: string): Actor {
  return { type: "person", id: memberId, label: email };
}

/** An operator: the email Cloudflare Access vouched for, or the shared ADMIN_TOKEN. */
export function operatorActor(email: string | null): Actor {
  return email
    ? { type: "operator", id: email, label: email }
    : { type: "operator", id: "admin_token", label: "admin token" };
}
