/**
 * Placement: an account's Durable Object is created where its first `get` says (a location
 * hint) and never moves, so account creation passes the customer's region, or the operator's
 * `location_hint`.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LOCATION_HINTS, locationHintFor } from "../../src/ledger/client";
import { admin, expectError, json } from "../helpers/http";

afterEach(() => vi.restoreAllMocks());

describe("location hints", () => {
  it("map the caller's continent (and longitude) to Cloudflare's hints", () => {
    expect(locationHintFor({ continent: "NA", longitude: "-122.4" })).toBe("wnam");
    expect(locationHintFor({ continent: "NA", longitude: "-74.0" })).toBe("enam");
    expect(locationHintFor({ continent: "SA" })).toBe("sam");
    expect(locationHintFor({ continent: "EU", longitude: "2.35" })).toBe("weur");
    expect(locationHintFor({ continent: "EU", longitude: "21.0" })).toBe("eeur");
    expect(locationHintFor({ continent: "AS", longitude: "55.3" })).toBe("me");
    expect(locationHintFor({ continent: "AS", longitude: "139.7" })).toBe("apac");
    expect(locationHintFor({ continent: "OC" })).toBe("oc");
    expect(locationHintFor({ continent: "AF" })).toBe("afr");
    // Antarctica, Tor, or no cf object (local development): no hint, the runtime decides.
    expect(locationHintFor({ continent: "AN" })).toBeUndefined();
    expect(locationHintFor({ continent: "T1" })).toBeUndefined();
    expect(locationHintFor(undefined)).toBeUndefined();
    for (const cf of [{ continent: "NA" }, { continent: "EU" }, { continent: "AS" }]) {
      expect(LOCATION_HINTS).toContain(locationHintFor(cf));
    }
  });

  it("POST /admin/accounts creates the ledger with the operator's location_hint", async () => {
    const get = vi.spyOn(env.ACCOUNT_LEDGER, "get");
    const res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: "placed@example.com", location_hint: "weur" }),
    });
    expect(res.status).toBe(201);
    const { id } = await json<{ id: string }>(res);
    const creating = get.mock.calls.find(([objectId]) =>
      objectId.equals(env.ACCOUNT_LEDGER.idFromName(id)),
    );
    expect(creating?.[1]).toEqual({ locationHint: "weur" });
  });

  it("refuses a location_hint that is not one of Cloudflare's", async () => {
    const res = await admin("/accounts", {
      method: "POST",
      body: JSON.stringify({ email: "nowhere@example.com", location_hint: "mars" }),
    });
    const body = await expectError(res, 400, "invalid_request");
    expect(body.error.fields?.map((f) => f.field)).toEqual(["location_hint"]);
  });
});
