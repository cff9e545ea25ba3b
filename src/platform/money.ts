/** Formats integer cents for people. Money stays integer everywhere else. */
export function formatCents(cents: number, currency = "usd"): string {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  const dollars = Math.floor(abs / 100).toLocaleString("en-US");
  const rest = String(abs % 100).padStart(2, "0");
  return currency === "usd"
    ? `${sign}$${dollars}.${rest}`
    : `${sign}${dollars}.${rest} ${currency.toUpperCase()}`;
}
