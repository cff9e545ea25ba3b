import { describe, expect, it } from "vitest";
import {
  alarmsAfterAlarm,
  cycleAlarm,
  OUTBOX_RETRY_MS,
  SETTLE_EVERY_MS,
  settleDue,
} from "../../src/ledger/domain/alarms";
import { nextMonthStart } from "../../src/ledger/domain/rules";
import type { StateRow } from "../../src/ledger/domain/types";

const NOW = Date.parse("2026-06-15T12:00:30.000Z");
const MINUTE = Math.floor(Date.parse("2026-06-15T12:00:00.000Z") / 1000);
const CYCLE_END = Date.parse("2026-07-01T00:00:00.000Z");

const state = (over: Partial<StateRow> = {}): StateRow =>
  ({
    compacted_until: MINUTE,
    stripe_cycles: 1,
    cycle_ends_at: CYCLE_END,
    paused_period: null,
    ...over,
  }) as StateRow;

describe("when the ledger's alarm is due", () => {
  it("the checkpoint is an hour after the last one", () => {
    expect(settleDue(state())).toBe(MINUTE * 1000 + SETTLE_EVERY_MS);
  });

  it("only an alarm-driven cycle (no subscription) asks for its end", () => {
    expect(cycleAlarm(state({ stripe_cycles: 0 }))).toBe(CYCLE_END);
    expect(cycleAlarm(state({ stripe_cycles: 1 }))).toBeNull();
  });

  const paused = Date.parse("2026-06-01T00:00:00.000Z");
  it.each([
    { name: "no ledger, nothing waiting", s: null, active: true, outbox: false, want: [] },
    {
      name: "no ledger, the outbox waiting",
      s: null,
      active: false,
      outbox: true,
      want: [NOW + OUTBOX_RETRY_MS],
    },
    {
      name: "an idle account on Stripe cycles",
      s: state(),
      active: false,
      outbox: false,
      want: [],
    },
    {
      name: "a busy account: the next checkpoint",
      s: state(),
      active: true,
      outbox: false,
      want: [MINUTE * 1000 + SETTLE_EVERY_MS],
    },
    {
      name: "an alarm-driven cycle: its end",
      s: state({ stripe_cycles: 0 }),
      active: false,
      outbox: false,
      want: [CYCLE_END],
    },
    {
      name: "paused by the spending limit: the month's turn",
      s: state({ paused_period: paused }),
      active: false,
      outbox: false,
      want: [nextMonthStart(paused)],
    },
    {
      name: "all at once, in that order",
      s: state({ stripe_cycles: 0, paused_period: paused }),
      active: true,
      outbox: true,
      want: [
        NOW + OUTBOX_RETRY_MS,
        MINUTE * 1000 + SETTLE_EVERY_MS,
        CYCLE_END,
        nextMonthStart(paused),
      ],
    },
  ])("after the alarm: $name", ({ s, active, outbox, want }) => {
    expect(alarmsAfterAlarm({ s, active, outboxWaiting: outbox, now: NOW })).toEqual(want);
  });
});
