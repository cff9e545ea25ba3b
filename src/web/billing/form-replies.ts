/**
 * How a Billing page form answers: back to the page with a one-time message (post/redirect/get),
 * or a refusal in the refusal table's words.
 */
/**
 * Account / Billing, the server-rendered dashboard page, mounted at `/account`. It works
 * without JavaScript. Every form post that acts is answered by a redirect (303, post/redirect/
 * get): what the next page view shows once (a notice, a new key) travels in the encrypted,
 * read-once flash cookie (see `setFlash` in ../session), never in the URL, so reloading the page
 * repeats nothing and shows no notice twice. Posts that are refused outright (bad CSRF token,
 * invalid fields) answer with an error page: repeating them changes nothing either.
 */

import type { Context } from "hono";
import { type Flash, type Session, setFlash } from "../../accounts/sessions";
import type { AppEnv } from "../../http/context";
import { pageWords, type RefusalType, refusalStatus } from "../../platform/refusals";
import { insufficientRole, PageError } from "../kit/forms";
import type { Notice } from "../kit/layout";
import { BILLING_PATH } from "./pages";

/** Every Billing page's title ends with the page's name and the business's. */

export const NOTICES = {
  autoRechargeSaved: { tone: "ok", text: "Auto-recharge settings saved." },
  keyRevoked: {
    tone: "ok",
    text: "The key was revoked. Requests with it are refused within seconds.",
  },
  signedOut: { tone: "ok", text: "You are signed out." },
  signedOutEverywhere: {
    tone: "ok",
    text: "You are signed out, here and in every other browser.",
  },
  removedYourself: { tone: "ok", text: "You left the account, and are signed out." },
  memberRemoved: { tone: "ok", text: "The member was removed; their sessions have ended." },
  passkeyRemoved: { tone: "ok", text: "The passkey was removed: it signs in no more." },
  passkeyGone: { tone: "warn", text: "No such passkey of yours: nothing was removed." },
  passkeyAdded: {
    tone: "ok",
    text: "Passkey added. Next time, sign in with it instead of an email link.",
  },
} satisfies Record<string, Notice>;

/** Back to the page with a one-time message: post/redirect/get. */
export async function redirectWith(
  c: Context<AppEnv>,
  secret: string,
  session: Session | null,
  flash: Flash,
) {
  await setFlash(c, secret, session?.sessionId ?? null, flash);
  return c.redirect(BILLING_PATH, 303);
}

/** A refusal as the page says it: the refusal table's words (../../refusals), as a notice. */
export function refusalNotice(reason: RefusalType, retryAfterSeconds?: number): Notice {
  const words = pageWords(reason);
  return {
    tone: words.tone ?? "bad",
    text: words.text,
    detail:
      retryAfterSeconds !== undefined
        ? `Try again in ${Math.ceil(retryAfterSeconds / 60)} minutes.`
        : words.action,
  };
}

/** A refusal as an error page, with the status the API answers it with. */
export function refusalPage(reason: RefusalType): PageError {
  const words = pageWords(reason);
  return new PageError(refusalStatus(reason), words.title, words.text);
}

/**
 * A form post the account's rules refused. What it acted on is gone (a 404: the account, the
 * key): an error page, as there is nothing on the Billing page to act on. Otherwise back to the
 * page, which says why and what to do.
 */
export async function refused(
  c: Context<AppEnv>,
  secret: string,
  session: Session,
  reason: RefusalType,
  retryAfterSeconds?: number,
) {
  if (refusalStatus(reason) === 404) throw refusalPage(reason);
  // Beyond the person's role: the page never offered the form, so this is no notice but a 403.
  if (reason === "insufficient_role") throw insufficientRole();
  return redirectWith(c, secret, session, { notice: refusalNotice(reason, retryAfterSeconds) });
}
