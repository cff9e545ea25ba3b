import { describe, expect, it } from "vitest";
import { retryableFailure } from "../../src/accounts/transactions";

const row = (id: string, type: string, status: string) => ({ id, type, status });

describe("which failed purchase offers a retry (newest first)", () => {
  it("the newest purchase, when it failed; grants and adjustments after it do not count", () => {
    expect(
      retryableFailure([
        row("adj", "adjustment", "succeeded"),
        row("grant", "monthly_grant", "succeeded"),
        row("f2", "top_up", "failed"),
        row("f1", "auto_recharge", "failed"),
      ]),
    ).toBe("f2");
  });

  it("none once a later purchase succeeded, or while one is in flight", () => {
    for (const status of ["succeeded", "pending", "requires_action"]) {
      expect(
        retryableFailure([row("later", "top_up", status), row("f1", "auto_recharge", "failed")]),
      ).toBeNull();
    }
  });

  it("none without purchases", () => {
    expect(retryableFailure([row("grant", "monthly_grant", "succeeded")])).toBeNull();
    expect(retryableFailure([])).toBeNull();
  });
});
