import type { LowBalanceSituation } from "../ledger/domain/low-balance";
import type { Brand } from "../platform/brand";
import { formatCents } from "../platform/money";

/** Plain-text bodies for the billing emails; one function per message. */

export function rechargeSucceeded(input: {
  kind: "auto_recharge" | "top_up";
  credits: number;
  amountCents: number;
  rechargeId: string;
  balanceTotal: number | null;
  dashboardUrl: string;
}) {
  const what = input.kind === "auto_recharge" ? "Auto-recharge" : "Your credit purchase";
  return {
    subject: `${what}: ${input.credits.toLocaleString("en-US")} credits added`,
    text: [
      `${what} charged ${formatCents(input.amountCents)} to your payment method on file and added ${input.credits.toLocaleString("en-US")} purchased credits to your account.`,
      input.balanceTotal === null
        ? ""
        : `Your balance is now ${input.balanceTotal.toLocaleString("en-US")} credits.`,
      "Purchased credits do not expire; they are used after your monthly credits.",
      `Reference: ${input.rechargeId}`,
      `Billing: ${input.dashboardUrl}`,
    ]
      .filter(Boolean)
      .join("\n\n"),
  };
}

export function rechargeFailed(input: {
  kind: "auto_recharge" | "top_up";
  amountCents: number;
  code: string;
  message: string;
  rechargeId: string;
  /** The purchase's Stripe invoice page, when it got that far. */
  invoiceUrl?: string | null;
  dashboardUrl: string;
}) {
  return {
    subject: "Action needed: your credit purchase failed",
    text: [
      `We could not charge ${formatCents(input.amountCents)} to your payment method (${input.code}: ${input.message}). No credits were added.`,
      "Auto-recharge is now turned off. Your service stops when your credits reach zero.",
      "Update your payment method in the customer portal, then re-enable auto-recharge on the Account / Billing page.",
      input.invoiceUrl ? `Invoice: ${input.invoiceUrl}` : "",
      `Reference: ${input.rechargeId}`,
      `Billing: ${input.dashboardUrl}`,
    ]
      .filter(Boolean)
      .join("\n\n"),
  };
}

/** The payment needs the customer to authenticate it (3-D Secure) on Stripe's invoice page. */
export function rechargeNeedsAction(input: {
  kind: "auto_recharge" | "top_up";
  amountCents: number;
  credits: number;
  actionUrl: string | null;
  rechargeId: string;
  dashboardUrl: string;
}) {
  const what = input.kind === "auto_recharge" ? "auto-recharge" : "credit purchase";
  return {
    subject: "Action needed: confirm your credit purchase",
    text: [
      `Your bank asks you to confirm the ${what} of ${formatCents(input.amountCents)} (${input.credits.toLocaleString("en-US")} credits). Nothing has been charged and no credits were added yet.`,
      input.actionUrl
        ? `Complete the payment here: ${input.actionUrl}`
        : `Complete the payment from the Account / Billing page: ${input.dashboardUrl}`,
      "The credits are added as soon as the payment is complete. If it is not completed within 3 days, the purchase is cancelled and nothing is charged.",
      "Auto-recharge is turned off meanwhile; re-enable it on the Account / Billing page once the payment works.",
      `Reference: ${input.rechargeId}`,
      `Billing: ${input.dashboardUrl}`,
    ].join("\n\n"),
  };
}

export function autoRechargePaused(input: {
  limitCents: number;
  resumesAt: string;
  dashboardUrl: string;
}) {
  return {
    subject: "Auto-recharge is paused: monthly spending limit reached",
    text: [
      `Your balance reached the auto-recharge threshold, but buying another package would take this month's purchases over your spending limit of ${formatCents(input.limitCents)}. No purchase was made and nothing was charged.`,
      "Your API requests continue until your credits reach zero; then they are refused with HTTP 403.",
      `Auto-recharge resumes by itself on ${input.resumesAt.slice(0, 10)} (UTC), or at once if you raise the limit on the Account / Billing page.`,
      `Billing: ${input.dashboardUrl}`,
    ].join("\n\n"),
  };
}

const credits = (n: number) => `${n.toLocaleString("en-US")} credit${n === 1 ? "" : "s"}`;

/**
 * The low-balance alert: the total fell to or below the customer's level. What it asks of
 * them depends on auto-recharge at that moment (see `lowBalanceSituation`).
 */
export function lowBalance(input: {
  brand: Brand;
  level: number;
  total: number;
  situation: LowBalanceSituation;
  dashboardUrl: string;
}) {
  const s = input.situation;
  const fell = `Your ${input.brand.company} balance is ${credits(input.total)}, at or below the low-balance level of ${credits(input.level)} you set.`;
  const stops =
    "When your credits reach zero, API requests are refused with HTTP 403 until credits are added.";
  const again = `We email you again the next time your balance falls to ${credits(input.level)} after it has been above it. Change or turn off this alert on the Account / Billing page.`;
  let subject: string;
  let body: string[];
  switch (s.auto_recharge) {
    case "on":
      subject = `Low balance: ${credits(input.total)} left (auto-recharge is on)`;
      body = [
        s.pending
          ? `Auto-recharge is buying ${credits(s.credits)} for ${formatCents(s.amount_cents)} with your payment method on file now. No action is needed.`
          : `Auto-recharge is on: when your balance reaches ${credits(s.threshold)}, it buys ${credits(s.credits)} for ${formatCents(s.amount_cents)} with your payment method on file. No action is needed.`,
      ];
      break;
    case "paused":
      subject = `Action needed: low balance, ${credits(input.total)} left (auto-recharge is paused)`;
      body = [
        `Auto-recharge is paused by your monthly spending limit of ${formatCents(s.limit_cents)}: another package would take this month's purchases over it, so none is bought until ${s.resumes_at.slice(0, 10)} (UTC).`,
        "To keep your requests running, raise or remove the spending limit on the Account / Billing page; auto-recharge then resumes at once.",
        stops,
      ];
      break;
    case "failed": {
      const what = s.kind === "top_up" ? "credit purchase" : "auto-recharge";
      subject = `Action needed: low balance, ${credits(input.total)} left (your last ${what} failed)`;
      body = [
        s.action_url
          ? `Your last ${what} is waiting for you to confirm the payment (${s.code}: ${s.message}), so no credits will be bought until you do.`
          : `Your last ${what} did not go through (${s.code}: ${s.message}), so auto-recharge is off and no credits will be bought.`,
        s.action_url
          ? `Your bank asks you to confirm the payment: complete the authentication here: ${s.action_url}`
          : "Update your payment method in the customer portal (Manage plan and billing on the Account / Billing page), then turn auto-recharge back on, or buy credits there.",
        stops,
      ];
      break;
    }
    case "off":
      subject = `Action needed: low balance, ${credits(input.total)} left`;
      body = [
        "Auto-recharge is off, so no credits will be bought for you.",
        "To keep your requests running, turn on auto-recharge or buy credits on the Account / Billing page.",
        stops,
      ];
      break;
  }
  return {
    subject,
    text: [fell, ...body, again, `Billing: ${input.dashboardUrl}`].join("\n\n"),
  };
}

/** The sign-up link; the link is the whole secret, and it works once. */
export function signupLink(input: { brand: Brand; link: string; expiresInMinutes: number }) {
  const { company } = input.brand;
  return {
    subject: `Your ${company} sign-up link`,
    text: [
      `Someone, hopefully you, asked to create an account with ${company} for this email address.`,
      `To create it, open this link and confirm:\n${input.link}`,
      `The link works once and expires in ${input.expiresInMinutes} minutes. If it has expired, start again on the sign-up page.`,
      "If you did not ask for this, ignore this email: no account is created unless the link is opened and confirmed.",
    ].join("\n\n"),
  };
}

/**
 * Key emails name the key by its prefix and last four only, never by its name: the name is
 * whatever the caller typed (a leaked key's holder included), and an email from the operator's
 * domain must not carry a stranger's text or links. The name is shown on the Billing page.
 */
export function keyCreated(input: {
  brand: Brand;
  prefix: string;
  last4: string;
  scope: string;
  dashboardUrl: string;
}) {
  const label = `${input.prefix}…${input.last4}`;
  return {
    subject: "A new API key was created on your account",
    text: [
      `A new ${input.scope} API key ${label} was created on your ${input.brand.company} account.`,
      "If you did not do this, revoke the key on the Account / Billing page and rotate your other keys.",
      `Keys: ${input.dashboardUrl}`,
    ].join("\n\n"),
  };
}

export function keyRevoked(input: { prefix: string; last4: string; dashboardUrl: string }) {
  const label = `${input.prefix}…${input.last4}`;
  return {
    subject: "An API key was revoked on your account",
    text: [
      `The API key ${label} was revoked. Requests with it are refused from now on.`,
      "If you did not do this, sign in and check your account's keys.",
      `Keys: ${input.dashboardUrl}`,
    ].join("\n\n"),
  };
}

/**
 * Sent instead of a sign-up link when an account uses the address but it is a member of none
 * (an owner removed it): nothing to create, and no way in without an invitation.
 */
export function signupExistingAccount(input: { brand: Brand; signInUrl: string }) {
  const { company } = input.brand;
  return {
    subject: `You already have a ${company} account`,
    text: [
      `Someone, hopefully you, asked to create an account with ${company} for this email address, but an account already uses it, so no new one was made.`,
      `This address is not a member of any account now. Ask an owner of the account to invite you, then sign in: ${input.signInUrl}`,
      "If you did not ask for this, ignore this email: nothing has changed.",
    ].join("\n\n"),
  };
}

/** The sign-in link; the link is the whole secret, and it works once. */
export function signInLink(input: {
  brand: Brand;
  link: string;
  expiresInMinutes: number;
  fromSignup?: boolean;
  /** Sent by an operator (a customer who wrote to support), not asked for on the page. */
  fromSupport?: boolean;
}) {
  return {
    subject: `Your ${input.brand.company} sign-in link`,
    text: [
      input.fromSignup
        ? `Someone, hopefully you, asked to create an account with ${input.brand.company} for this email address. It already belongs to an account, so here is a sign-in link instead.`
        : input.fromSupport
          ? `${input.brand.company} support sent you this link to sign in with this email address.`
          : `Someone, hopefully you, asked to sign in to ${input.brand.company} with this email address.`,
      `To sign in, open this link and confirm:\n${input.link}`,
      `The link works once and expires in ${input.expiresInMinutes} minutes.`,
      "If you did not ask for this, ignore this email: nobody is signed in unless the link is opened and confirmed.",
    ].join("\n\n"),
  };
}

/** Sent when an address that is no member asks to sign in: the same work, no link. */
export function signInNoAccount(input: { brand: Brand; signUpUrl: string | null }) {
  return {
    subject: `Signing in to ${input.brand.company}`,
    text: [
      `Someone, hopefully you, asked to sign in to ${input.brand.company} with this email address, but it is not a member of any account, so no sign-in link was made.`,
      input.signUpUrl
        ? `To create an account, sign up: ${input.signUpUrl}. To join an existing one, ask its owner to invite you.`
        : "To join an account, ask its owner to invite you.",
      "If you did not ask for this, ignore this email.",
    ].join("\n\n"),
  };
}

/** An invitation to an account; the link is the whole secret, and it works once. */
export function invitation(input: {
  brand: Brand;
  link: string;
  accountEmail: string;
  role: string;
  invitedBy: string;
  expiresInDays: number;
}) {
  return {
    subject: `You are invited to a ${input.brand.company} account`,
    text: [
      `${input.invitedBy} invited you to the ${input.brand.company} account ${input.accountEmail}, as ${input.role}.`,
      `To accept, open this link and confirm:\n${input.link}`,
      `The link works once and expires in ${input.expiresInDays} days.`,
      "If you do not know this account, ignore this email: nothing happens unless the link is opened and confirmed.",
    ].join("\n\n"),
  };
}

/** To the operator: the global sign-up ceiling refused a request (at most once an hour). */
export function signupCeilingReached(input: { brand: Brand; limit: number; hour: string }) {
  return {
    subject: `${input.brand.company}: sign-up email ceiling reached`,
    text: [
      `Sign-up requests reached the ceiling of ${input.limit.toLocaleString("en-US")} sign-up emails an hour (hour starting ${input.hour}). Every sign-up is refused with 429 until requests of the last hour age out.`,
      "This usually means someone is requesting sign-up links from many networks at once. Check the sign-up emails (GET /admin/signup-emails) and the logs; raise SIGNUP_EMAILS_PER_HOUR only if the traffic is genuine.",
    ].join("\n\n"),
  };
}

/**
 * The end of every email: who sent it, for what, and where to write. Added when the email is
 * recorded, so the stored copy and the sent one are the same text.
 */
export function signature(brand: Brand): string {
  return [
    "--",
    `${brand.company} · ${brand.product}`,
    brand.supportEmail ? `Questions? Write to ${brand.supportEmail}` : "",
  ]
    .filter(Boolean)
    .join("\n");
}
