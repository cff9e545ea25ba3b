import type { FC } from "hono/jsx";
import { BrandProduct, type Notice, NoticeBox } from "../kit/layout";

/** The Billing page's address, where every form comes back to. */
export const BILLING_PATH = "/account/billing";

/** Signed out: one field, the API key (and, when sign-up is on, a link to it). */
export const SignInPage: FC<{
  notice?: Notice | null;
  unavailable?: boolean;
  signUp?: boolean;
  /** The form's double-submit token (see `signInToken`). */
  csrf?: string;
}> = ({ notice, unavailable, signUp, csrf }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="signin-h">
        <h1 id="signin-h">Sign in to Account / Billing</h1>
        <p class="lead">
          Use one of your <BrandProduct /> API keys. You stay signed in for 12 hours, or until that
          key is revoked.
        </p>
        <NoticeBox
          notice={
            notice ??
            (unavailable
              ? {
                  tone: "bad",
                  text: "Sign-in is not available: this server has no SESSION_SECRET (or ADMIN_TOKEN) configured.",
                }
              : null)
          }
        />
        <form method="post" action="/account/sign-in">
          <input type="hidden" name="csrf" value={csrf ?? ""} />
          <label class="field" for="api-key">
            API key
          </label>
          <input
            type="password"
            id="api-key"
            name="api_key"
            required
            autocomplete="off"
            spellcheck={false}
            placeholder="tg_live_…"
            aria-describedby="api-key-hint"
          />
          <p class="hint" id="api-key-hint">
            It starts with <code>tg_live_</code> or <code>tg_test_</code>.
          </p>
          <div class="actions">
            <button type="submit">Sign in</button>
          </div>
        </form>
        {signUp ? (
          <p>
            No account yet? <a href="/account/sign-up">Create a free account</a>
          </p>
        ) : null}
      </section>
    </div>
  </main>
);

/** An error on the page, as a page: HTML here, while the API keeps its JSON envelope. */
export const ErrorPage: FC<{ title: string; message: string }> = ({ title, message }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="error-h">
        <h1 id="error-h">{title}</h1>
        <p>{message}</p>
        <p>
          <a href={BILLING_PATH}>Back to Account / Billing</a>
        </p>
      </section>
    </div>
  </main>
);

/**
 * Shown to a cross-site arrival (such as the return link of Stripe's portal) with no session:
 * a SameSite=Strict cookie is not sent on that navigation, but it is sent on this page's own
 * refresh, so a signed-in person lands on their page instead of the sign-in form.
 */
export const ResumePage: FC<{ href: string }> = ({ href }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card">
        <h1>Account / Billing</h1>
        <p>
          <a href={href}>Continue to Account / Billing</a>
        </p>
      </section>
    </div>
  </main>
);
