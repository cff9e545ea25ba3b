/**
 * The mailbox an address reaches, for counting and for finding an existing account: one person
 * must not get one free account, or one more sign-up email, per spelling of the same inbox.
 * Case never matters; a `+tag` reaches the same inbox at nearly every provider; Gmail also
 * ignores dots in the local part and treats googlemail.com as gmail.com. The address an email
 * is sent to stays the one typed (trimmed, lowercase): this key is only compared.
 */
const DOTLESS_DOMAINS: Record<string, string> = {
  "gmail.com": "gmail.com",
  "googlemail.com": "gmail.com",
};

export function mailboxKey(email: string): string {
  const address = email.trim().toLowerCase();
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return address;
  let local = address.slice(0, at);
  let domain = address.slice(at + 1).replace(/\.+$/, "");
  // A local part that starts with "+" has no tag to strip: keep it whole.
  const plus = local.indexOf("+");
  if (plus > 0) local = local.slice(0, plus);
  const dotless = DOTLESS_DOMAINS[domain];
  if (dotless !== undefined) {
    domain = dotless;
    local = local.replaceAll(".", "");
  }
  return `${local}@${domain}`;
}
