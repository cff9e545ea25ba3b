/** How the Billing page writes numbers, money and times. Formatting is the only float use. */
import { formatCents } from "../../platform/money";
import { PACKAGES, type PackageId } from "../../pricing";

export function formatCredits(n: number): string {
  return n.toLocaleString("en-US");
}

/** `$7` for whole dollars, `$7.50` otherwise: the way prices are written in the product. */
export function formatPrice(cents: number): string {
  const text = formatCents(cents);
  return cents % 100 === 0 ? text.replace(/\.00$/, "") : text;
}

export function packageLabel(id: PackageId): string {
  const p = PACKAGES[id];
  return `${formatCredits(p.credits)} credits (${formatPrice(p.priceCents)})`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `Apr 5`: a UTC day, for chart labels and the usage table. */
export function formatDay(iso: string): string {
  const d = new Date(iso);
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
}

/** `2026-04-05 14:03 UTC`: no client script, so times are shown in UTC, and say so. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** `2026-04-05`. */
export function formatDate(iso: string): string {
  return new Date(iso).toISOString().slice(0, 10);
}

/** Payment failure codes as a customer reads them; unknown codes fall back to the message. */
const FAILURE_REASONS: Record<string, string> = {
  card_declined: "the card was declined",
  insufficient_funds: "the card has insufficient funds",
  expired_card: "the card has expired",
  incorrect_cvc: "the card's security code was refused",
  processing_error: "the card processor had an error",
  authentication_required: "the bank asks you to confirm the payment",
  requires_action: "the bank asks you to confirm the payment",
  payment_method_required: "there was no card on file",
};

export function failureReason(code: string | null | undefined, message?: string | null): string {
  if (code && FAILURE_REASONS[code]) return FAILURE_REASONS[code];
  if (message) return message.replace(/\.$/, "");
  return code ? `the payment failed (${code})` : "the payment failed";
}

/** Cents as dollars for an input's value: `50`, `12.5` → `12.50`. */
export function centsToDollarsInput(cents: number): string {
  const whole = Math.floor(cents / 100);
  const rest = cents % 100;
  return rest === 0 ? String(whole) : `${whole}.${String(rest).padStart(2, "0")}`;
}
