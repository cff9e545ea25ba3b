import { describe, expect, it } from "vitest";
import { PACKAGES, PLANS, RECHARGE_THRESHOLD, routeCost } from "../../src/pricing";

describe("the pricing table", () => {
  it("sells the packages of the product document, in cents", () => {
    expect(PACKAGES.credits_1000).toMatchObject({ credits: 1000, priceCents: 700 });
    expect(PACKAGES.credits_3000).toMatchObject({ credits: 3000, priceCents: 1700 });
    expect(PACKAGES.credits_9000).toMatchObject({ credits: 9000, priceCents: 3700 });
  });
  it("has the plans of the product document", () => {
    expect(PLANS.starter).toMatchObject({ monthlyCredits: 3000, priceCents: 1900 });
    expect(PLANS.pro).toMatchObject({ monthlyCredits: 8000, priceCents: 3900 });
    expect(PLANS.free.monthlyCredits).toBeGreaterThan(RECHARGE_THRESHOLD);
  });
  it("recharges at 100 credits", () => {
    expect(RECHARGE_THRESHOLD).toBe(100);
  });
  it("charges 1 credit by default and honours the table", () => {
    expect(routeCost("POST", "/v1/classify")).toBe(1);
    expect(routeCost("POST", "/v1/classify/")).toBe(1);
    expect(routeCost("GET", "/v1/categories")).toBe(0);
    expect(routeCost("POST", "/v1/anything-else")).toBe(1);
  });
});
