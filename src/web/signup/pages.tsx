/** The sign-up pages: plain forms, no JavaScript, the Billing page's layout and styles. */
import type { FC } from "hono/jsx";
import {
  CONFIRM_PATH,
  INVITE_PATH,
  INVITE_TTL_MS,
  LINK_TTL_MS,
  SIGN_IN_CONFIRM_PATH,
  SIGN_IN_PATH,
  SIGN_UP_PATH,
} from "../../accounts/signup-config";
import { PLANS } from "../../pricing";
import { formatCredits } from "../kit/format";
import { BrandCompany, type Notice, NoticeBox } from "../kit/layout";

const MINUTES = LINK_TTL_MS / 60_000;

const Card: FC<{ title: string; children?: unknown }> = ({ title, children }) => (
  <main id="main" class="wrap">
    <div class="signin">
      <section class="card" aria-labelledby="page-h">
        <h1 id="page-h">{title}</h1>
        {children}
      </section>
    </div>
  </main>
);

const Csrf: FC<{ token: string }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token} />
);

/** One field, the email address; the link comes by email. */
export const SignUpPage: FC<{ csrf: string; email?: string; notice?: Notice | null }> = ({
  csrf,
  email,
  notice,
}) => (
  <Card title="Create a free account">
    <p class="lead">
      The free plan includes {formatCredits(PLANS.free.monthlyCredits)} credits a month. We email
      you a link: open it and confirm to create the account. You are then signed in and shown its
      first API key.
    </p>
    <NoticeBox notice={notice} />
    <form method="post" action={SIGN_UP_PATH}>
      <Csrf token={csrf} />
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
        The sign-up link works once, for {MINUTES} minutes.
      </p>
      <div class="actions">
        <button type="submit">Email me a sign-up link</button>
      </div>
    </form>
    <p>
      Already have an account? <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

/** The same page whatever the address: nothing here says whether it has an account. */
export const CheckEmailPage: FC<{ email: string }> = ({ email }) => (
  <Card title="Check your email">
    <p role="status">
      We sent a message to <strong>{email}</strong>. It contains a link that works once, for{" "}
      {MINUTES} minutes.
    </p>
    <p class="hint">
      Nothing after a few minutes? Check the spam folder and the spelling of the address, or{" "}
      <a href={SIGN_UP_PATH}>start again</a>.
    </p>
  </Card>
);

/**
 * What the emailed link opens. Opening it changes nothing (mail scanners fetch links); the
 * button's post uses the link and creates the account.
 */
export const ConfirmPage: FC<{ email: string; token: string; csrf: string }> = ({
  email,
  token,
  csrf,
}) => (
  <Card title="Create your account">
    <p class="lead">
      Create your free <BrandCompany /> account for <strong>{email}</strong>. You will be signed in
      and see your first API key.
    </p>
    <form method="post" action={CONFIRM_PATH}>
      <Csrf token={csrf} />
      <input type="hidden" name="token" value={token} />
      <div class="actions">
        <button type="submit">Create my account</button>
      </div>
    </form>
  </Card>
);

export const LinkUnusablePage: FC = () => (
  <Card title="This sign-up link cannot be used">
    <p>
      It has expired or it was already used: each link works once, for {MINUTES} minutes. If you
      already created your account with it, sign in with your email address.
    </p>
    <p>
      <a href={SIGN_UP_PATH}>Start again</a> · <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

export const AlreadyRegisteredPage: FC<{ email: string }> = ({ email }) => (
  <Card title="You already have an account">
    <p>
      <strong>{email}</strong> already has an account with <BrandCompany />, so no new one was
      created. Sign in with your email address.
    </p>
    <p>
      <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

export const RateLimitedPage: FC<{ retryAfterSeconds: number }> = ({ retryAfterSeconds }) => (
  <Card title="Too many sign-up requests">
    <p role="alert">
      Too many sign-up links were asked for from here or for this address. Try again in{" "}
      {Math.max(1, Math.ceil(retryAfterSeconds / 60))} minute
      {Math.ceil(retryAfterSeconds / 60) > 1 ? "s" : ""}. A link already sent still works.
    </p>
    <p>
      <a href={SIGN_UP_PATH}>Back to sign-up</a>
    </p>
  </Card>
);

export const SignupMessagePage: FC<{ title: string; message: string }> = ({ title, message }) => (
  <Card title={title}>
    <p>{message}</p>
    <p>
      <a href={SIGN_UP_PATH}>Back to sign-up</a>
    </p>
  </Card>
);

/** `SIGNUP_ENABLED` is off: say so, and point at the way in that remains. */
export const SignupOffPage: FC = () => (
  <Card title="Sign-up is not available">
    <p>
      This server does not offer self-service sign-up. Ask its operator for an account, or an owner
      of one for an invitation, then sign in with your email address.
    </p>
    <p>
      <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

// ---------------------------------------------------------------- sign-in and invitations

/** The same page whatever the address: nothing here says whether it is a member anywhere. */
export const SignInSentPage: FC<{ email: string }> = ({ email }) => (
  <Card title="Check your email">
    <p role="status">
      If <strong>{email}</strong> is a member of an account, we sent it a sign-in link. It works
      once, for {MINUTES} minutes.
    </p>
    <p class="hint">
      Nothing after a few minutes? Check the spam folder and the spelling of the address, or{" "}
      <a href={SIGN_IN_PATH}>try again</a>.
    </p>
  </Card>
);

/**
 * What the emailed sign-in link opens. Opening it changes nothing (mail scanners fetch links);
 * each button's post uses the link and signs in to that account. A person in several accounts
 * picks one here.
 */
export const SignInConfirmPage: FC<{
  email: string;
  token: string;
  csrf: string;
  accounts: { accountId: string; accountEmail: string; role: string }[];
  /** Where the choice posts: the emailed link's confirm, or a passkey sign-in's. */
  action?: string;
}> = ({ email, token, csrf, accounts, action = SIGN_IN_CONFIRM_PATH }) => (
  <Card title="Sign in">
    <p class="lead">
      Sign in as <strong>{email}</strong>
      {accounts.length > 1 ? ". You are a member of several accounts: choose one." : "."}
    </p>
    {/* One form per account (no list markup: a button each is the whole choice). */}
    {accounts.map((a) => (
      <form method="post" action={action}>
        <Csrf token={csrf} />
        <input type="hidden" name="token" value={token} />
        <input type="hidden" name="account_id" value={a.accountId} />
        <div class="actions">
          <button type="submit">
            {accounts.length > 1 ? `Sign in to ${a.accountEmail} (${a.role})` : "Sign in"}
          </button>
        </div>
      </form>
    ))}
  </Card>
);

export const SignInLinkUnusablePage: FC = () => (
  <Card title="This sign-in link cannot be used">
    <p>
      It has expired or it was already used: each link works once, for {MINUTES} minutes. Ask for a
      new one.
    </p>
    <p>
      <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

/** A passkey sign-in that was refused (its words say why, never which account exists). */
export const PasskeySignInRefusedPage: FC<{ message: string }> = ({ message }) => (
  <Card title="Your passkey did not sign you in">
    <p>{message}</p>
    <p>
      <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);

/** What an invitation's link opens; the button's post accepts it and signs in. */
export const InvitationPage: FC<{
  email: string;
  accountEmail: string;
  role: string;
  token: string;
  csrf: string;
}> = ({ email, accountEmail, role, token, csrf }) => (
  <Card title="Join an account">
    <p class="lead">
      <strong>{email}</strong> is invited to the <BrandCompany /> account{" "}
      <strong>{accountEmail}</strong> as <strong>{role}</strong>.
    </p>
    <form method="post" action={INVITE_PATH}>
      <Csrf token={csrf} />
      <input type="hidden" name="token" value={token} />
      <div class="actions">
        <button type="submit">Accept and sign in</button>
      </div>
    </form>
  </Card>
);

export const InvitationUnusablePage: FC = () => (
  <Card title="This invitation cannot be used">
    <p>
      It has expired, it was already used, or it was withdrawn: each invitation works once, for{" "}
      {INVITE_TTL_MS / 86_400_000} days. Ask an owner of the account to invite you again.
    </p>
    <p>
      <a href={SIGN_IN_PATH}>Sign in</a>
    </p>
  </Card>
);
