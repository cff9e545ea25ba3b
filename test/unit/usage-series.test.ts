import { describe, expect, it } from "vitest";
import { bucketRange, type UsageRange, zeroFilledSeries } from "../../src/accounts/usage";

const sec = (iso: string) => Date.parse(iso) / 1000;

describe("zero-filled usage series", () => {
  it("aligns a range to whole UTC buckets covering it", () => {
    expect(
      bucketRange("hour", Date.parse("2026-01-01T10:30:00Z"), Date.parse("2026-01-01T12:10:00Z")),
    ).toEqual({
      granularity: "hour",
      start: sec("2026-01-01T10:00:00Z"),
      end: sec("2026-01-01T13:00:00Z"),
    });
    // An aligned end stays exclusive: the 12:00 bucket is not included.
    expect(
      bucketRange("hour", Date.parse("2026-01-01T10:00:00Z"), Date.parse("2026-01-01T12:00:00Z"))
        .end,
    ).toBe(sec("2026-01-01T12:00:00Z"));
    expect(
      bucketRange("day", Date.parse("2026-02-27T23:59:59Z"), Date.parse("2026-03-01T00:00:01Z")),
    ).toEqual({
      granularity: "day",
      start: sec("2026-02-27T00:00:00Z"),
      end: sec("2026-03-02T00:00:00Z"),
    });
  });

  it("sums minute rows into their bucket and fills every other bucket with zeros", () => {
    const range: UsageRange = {
      granularity: "hour",
      start: sec("2026-01-01T10:00:00Z"),
      end: sec("2026-01-01T14:00:00Z"),
    };
    const series = zeroFilledSeries(
      [
        { at: sec("2026-01-01T10:00:00Z"), requests: 2, credits: 2 },
        { at: sec("2026-01-01T10:59:00Z"), requests: 3, credits: 5 },
        { at: sec("2026-01-01T13:00:00Z"), requests: 1, credits: 0 },
        // Outside the range on both sides: ignored.
        { at: sec("2026-01-01T09:59:00Z"), requests: 100, credits: 100 },
        { at: sec("2026-01-01T14:00:00Z"), requests: 100, credits: 100 },
      ],
      range,
    );
    expect(series).toEqual([
      { start: "2026-01-01T10:00:00.000Z", requests: 5, credits: 7 },
      { start: "2026-01-01T11:00:00.000Z", requests: 0, credits: 0 },
      { start: "2026-01-01T12:00:00.000Z", requests: 0, credits: 0 },
      { start: "2026-01-01T13:00:00.000Z", requests: 1, credits: 0 },
    ]);
    expect(zeroFilledSeries([], { ...range, end: range.start })).toEqual([]);
  });
});
