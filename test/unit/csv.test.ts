import { describe, expect, it } from "vitest";
import { keyedSeries } from "../../src/accounts/usage";
import { csvField, csvLine } from "../../src/http/csv";

describe("CSV fields", () => {
  it("quotes what needs quoting and defuses formulas, numbers unchanged", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField("=SUM(A1)")).toBe("'=SUM(A1)");
    expect(csvField("-5 credits, back")).toBe(`"'-5 credits, back"`);
    expect(csvField(-5)).toBe("-5");
    expect(csvField(null)).toBe("");
    expect(csvField(undefined)).toBe("");
    expect(csvLine(["a", 1, null])).toBe("a,1,\r\n");
  });
});

describe("usage per key", () => {
  it("sums rows per bucket and key, keeps only periods with traffic, null for no key", () => {
    const range = { granularity: "hour" as const, start: 7_200, end: 18_000 };
    const points = keyedSeries(
      [
        { at: 7_260, requests: 2, credits: 3, key_id: "key_b" },
        { at: 7_320, requests: 1, credits: 1, key_id: "key_b" },
        { at: 7_260, requests: 1, credits: 2, key_id: "key_a" },
        { at: 10_800, requests: 0, credits: 0, key_id: "key_a" },
        { at: 14_400, requests: 4, credits: 4, key_id: "" },
        { at: 18_000, requests: 9, credits: 9, key_id: "key_a" },
      ],
      range,
    );
    expect(points).toEqual([
      { start: "1970-01-01T02:00:00.000Z", key_id: "key_a", requests: 1, credits: 2 },
      { start: "1970-01-01T02:00:00.000Z", key_id: "key_b", requests: 3, credits: 4 },
      { start: "1970-01-01T04:00:00.000Z", key_id: null, requests: 4, credits: 4 },
    ]);
  });
});
