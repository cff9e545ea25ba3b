import { describe, expect, it } from "vitest";
import { isRole, keyPermission, may, type Permission, ROLES } from "../../src/accounts/roles";

const ALL: Permission[] = ["billing", "classify_keys", "full_keys", "developer_tools", "members"];

describe("the role table", () => {
  it("gives each role exactly what the contract says", () => {
    const granted = Object.fromEntries(ROLES.map((r) => [r, ALL.filter((p) => may(r, p))]));
    expect(granted).toEqual({
      owner: ALL,
      billing: ["billing"],
      developer: ["classify_keys", "developer_tools"],
      viewer: [],
    });
  });

  it("lets only owners manage members and full keys", () => {
    expect(ROLES.filter((r) => may(r, "members"))).toEqual(["owner"]);
    expect(ROLES.filter((r) => may(r, keyPermission("full")))).toEqual(["owner"]);
    expect(ROLES.filter((r) => may(r, keyPermission("classify")))).toEqual(["owner", "developer"]);
  });

  it("knows the four roles and nothing else", () => {
    for (const r of ROLES) expect(isRole(r)).toBe(true);
    for (const v of ["admin", "Owner", "", null, 1]) expect(isRole(v)).toBe(false);
  });
});
