import type { FC } from "hono/jsx";
import { type Notice, NoticeBox } from "../kit/layout";
import { PasskeyForm } from "../kit/passkey-form";

/** Where "Sign in with a passkey" posts. */
export const PASSKEY_SIGN_IN_PATH = "/account/sign-in/passkey";

/** The Billing page's address, where every form comes back to. */
export const BILLING_PATH = "/account/billing";

/**
 * Signed out: one field, the email address; a sign-in link comes by email (an API key never
 * opens the page). When sign-up is on, a link to it.
 */
export const SignInPage: FC<{
  notice?: Notice | null;
  unavailable?: boolean;
  signUp?: boolean;
  /** The form's double-submit token (see `signInToken`). */
  csrf?: string;
  email?: string;
  /** "Sign in with a passkey": its challenge's options (see ../../accounts/passkeys). */
  passkeyOptions?: unknown;
}> = ({ notice, unavailable, signUp, csrf, email, passkeyOptions }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="signin-h">
        <h1 id="signin-h">Sign in to Account / Billing</h1>
        <p class="lead">
          We email you a link that signs you in. You stay signed in while you use the page, for up
          to 12 hours.
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
          <label class="field" for="email">
            Email address
          </label>
          <input
            type="email"
            id="email"
            name="email"
            required
            maxlength={254}
            autocomplete="email"
            spellcheck={false}
            value={email ?? ""}
            aria-describedby="email-hint"
            aria-invalid={notice?.tone === "bad" ? "true" : undefined}
          />
          <p class="hint" id="email-hint">
            The address you were invited with, or signed up with.
          </p>
          <div class="actions">
            <button type="submit">Email me a sign-in link</button>
          </div>
        </form>
        {passkeyOptions && csrf ? (
          <PasskeyForm
            mode="authenticate"
            action={PASSKEY_SIGN_IN_PATH}
            csrf={csrf}
            options={passkeyOptions}
            label="Sign in with a passkey"
            id="passkey-sign-in"
          />
        ) : null}
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
