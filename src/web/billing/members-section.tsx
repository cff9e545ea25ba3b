/** The Billing page's Members section: each role sees what it may do; owners invite, change roles, remove. */
import type { FC } from "hono/jsx";
import { ROLES, type Role } from "../../accounts/roles";
import type { ListedMember } from "../../db/members";
import { formatDate } from "../kit/format";
import { BILLING_PATH } from "./pages";
import { Csrf } from "./parts";

const ROLE_HELP: Record<Role, string> = {
  owner: "everything, members included",
  billing: "plans, cards, purchases, limits and alerts",
  developer: "classify keys and usage",
  viewer: "reads everything, changes nothing",
};

/**
 * The account's people. Everyone sees who they are; an owner (`token` set) invites, changes
 * roles and removes. The last owner's row offers no demotion or removal (the server refuses
 * them anyway, also when two owners race).
 */
export const MembersSection: FC<{
  members: ListedMember[];
  token: string | null;
  viewer: { memberId: string };
}> = ({ members, token, viewer }) => {
  const owners = members.filter((m) => m.role === "owner" && m.status === "active").length;
  return (
    <section class="card" aria-labelledby="members-h">
      <h2 id="members-h">Members</h2>
      <div class="table-scroll">
        <table id="members" class="stack">
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
              <th scope="col">Last sign-in</th>
              {token ? (
                <th scope="col">
                  <span class="muted">Action</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {members.map((m) => {
              const lastOwner = m.role === "owner" && m.status === "active" && owners === 1;
              return (
                <tr>
                  <td data-label="Email">
                    {m.email}
                    {m.id === viewer.memberId ? <span class="tag">you</span> : null}
                  </td>
                  <td data-label="Role">
                    {token && !lastOwner ? (
                      <form
                        method="post"
                        action={`${BILLING_PATH}/members/${m.id}/role`}
                        class="inline-form"
                      >
                        <Csrf token={token} />
                        <select id={`role-${m.id}`} name="role" aria-label={`Role of ${m.email}`}>
                          {ROLES.map((r) => (
                            <option value={r} selected={r === m.role}>
                              {r}
                            </option>
                          ))}
                        </select>
                        <button
                          type="submit"
                          class="secondary"
                          aria-label={`Change the role of ${m.email}`}
                        >
                          Change
                        </button>
                      </form>
                    ) : (
                      m.role
                    )}
                  </td>
                  <td data-label="Status">{m.status === "invited" ? "invited" : "active"}</td>
                  <td data-label="Last sign-in">
                    {m.last_sign_in_at ? (
                      formatDate(m.last_sign_in_at)
                    ) : (
                      <span class="muted">never</span>
                    )}
                  </td>
                  {token ? (
                    <td data-label="Action" class="action">
                      {lastOwner ? (
                        <span class="muted">The last owner stays</span>
                      ) : (
                        <form method="post" action={`${BILLING_PATH}/members/${m.id}/remove`}>
                          <Csrf token={token} />
                          <button type="submit" class="danger" aria-label={`Remove ${m.email}`}>
                            Remove
                          </button>
                        </form>
                      )}
                    </td>
                  ) : null}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {token ? (
        <>
          <h3>Invite someone</h3>
          <form method="post" action={`${BILLING_PATH}/members`} class="new-key">
            <Csrf token={token} />
            <div>
              <label class="field" for="invite-email">
                Email address
              </label>
              <input type="email" id="invite-email" name="email" required maxlength={254} />
            </div>
            <div>
              <label class="field" for="invite-role">
                Role
              </label>
              <select id="invite-role" name="role" aria-describedby="invite-role-help">
                {ROLES.map((r) => (
                  <option value={r} selected={r === "developer"}>
                    {r}
                  </option>
                ))}
              </select>
            </div>
            <button type="submit">Send invitation</button>
          </form>
          <p class="hint" id="invite-role-help">
            {ROLES.map((r) => `${r}: ${ROLE_HELP[r]}`).join("; ")}. The invitation link works once,
            for 7 days.
          </p>
        </>
      ) : null}
    </section>
  );
};
