/**
 * D1 failing at the edge: the real binding refuses a statement, as an outage would, for the
 * rest of the test. Only the statements named fail; everything else reaches the real D1.
 * The worker's code (Durable Objects included) runs in the tests' isolate with this binding.
 */
import { env } from "cloudflare:workers";
import { onTestFinished, vi } from "vitest";

/** Every write to the customer-visible history (`transactions`) fails until `mockRestore`. */
export function failHistoryWrites() {
  const prepare = env.DB.prepare.bind(env.DB);
  const spy = vi.spyOn(env.DB, "prepare").mockImplementation((query: string) => {
    if (/^insert into "transactions"/i.test(query)) throw new Error("D1_ERROR: unavailable");
    return prepare(query);
  });
  onTestFinished(() => spy.mockRestore());
  return spy;
}

/** Every update of a purchase row (`transactions`) fails until `mockRestore`. */
export function failPurchaseUpdates() {
  const prepare = env.DB.prepare.bind(env.DB);
  const spy = vi.spyOn(env.DB, "prepare").mockImplementation((query: string) => {
    if (/^update "transactions"/i.test(query)) throw new Error("D1_ERROR: unavailable");
    return prepare(query);
  });
  onTestFinished(() => spy.mockRestore());
  return spy;
}
