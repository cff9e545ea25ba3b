import { describe, expect, it } from "vitest";
import { nextRetrySeconds } from "../../src/delivery/webhook-consumer";
import { endpointUrlProblem } from "../../src/delivery/webhook-url";

describe("endpointUrlProblem", () => {
  it.each([
    "https://10.0.0.1/x",
    "https://127.0.0.1/x",
    "https://127.1/x",
    "https://0x7f000001/x",
    "https://2130706433/x",
    "https://169.254.169.254/x",
    "https://172.16.0.1/x",
    "https://192.168.0.1/x",
    "https://100.64.0.1/x",
    "https://0.0.0.0/x",
    "https://[::1]/x",
    "https://[::]/x",
    "https://[fe80::1]/x",
    "https://[fd00::1]/x",
    "https://[::ffff:127.0.0.1]/x",
    "https://localhost/x",
    "https://LOCALHOST./x",
    "https://a.localhost/x",
    "https://printer.local/x",
    "https://intranet/x",
    "http://hooks.example.org/x",
    "https://user:pw@hooks.example.org/x",
    "not a url",
  ])("refuses %s outside local mode", (url) => {
    expect(endpointUrlProblem(url, false)).not.toBeNull();
  });

  it.each(["https://hooks.example.org/x", "https://8.8.8.8/x", "https://[2606:4700::1111]/x"])(
    "accepts %s",
    (url) => {
      expect(endpointUrlProblem(url, false)).toBeNull();
    },
  );

  it("local mode allows http and loopback, never other schemes", () => {
    expect(endpointUrlProblem("http://127.0.0.1:8788/hook", true)).toBeNull();
    expect(endpointUrlProblem("ftp://127.0.0.1/hook", true)).not.toBeNull();
  });
});

describe("nextRetrySeconds", () => {
  const t0 = new Date("2026-12-06T00:00:00Z");
  const at = (s: number) => new Date(t0.getTime() + s * 1000);

  it("the first retry is within 30 seconds, then the delays grow", () => {
    expect(nextRetrySeconds(1, t0, at(0))).toBe(5);
    expect(nextRetrySeconds(2, t0, at(5))).toBe(300);
    expect(nextRetrySeconds(3, t0, at(305))).toBe(1800);
    expect(nextRetrySeconds(6, t0, at(30_000))).toBe(36_000);
    expect(nextRetrySeconds(9, t0, at(30_000))).toBe(36_000);
  });

  it("the last retry lands on the day's end; after it there is none", () => {
    expect(nextRetrySeconds(7, t0, at(86_400 - 100))).toBe(100);
    expect(nextRetrySeconds(8, t0, at(86_400))).toBeNull();
  });
});
