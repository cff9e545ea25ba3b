/**
 * Account / Billing, the server-rendered dashboard page, mounted at `/account`. It works
 * without JavaScript. Every form post that acts is answered by a redirect (303, post/redirect/
 * get): what the next page view shows once (a notice, a new key) travels in the encrypted,
 * read-once flash cookie (see `setFlash` in ../session), never in the URL, so reloading the page
 * repeats nothing and shows no notice twice. Posts that are refused outright (bad CSRF token,
 * invalid fields) answer with an error page: repeating them changes nothing either.
 */

import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { recordAudit } from "../../accounts/audit";
import { authenticationOptions, listPasskeys, registrationOptions } from "../../accounts/passkeys";
import { may } from "../../accounts/roles";
import {
  type CsrfPurpose,
  csrfToken,
  endSession,
  type Flash,
  readSession,
  type Session,
  sessionSecret,
  signInToken,
  takeFlash,
  verifyCsrf,
} from "../../accounts/sessions";
import { signupEnabled } from "../../accounts/signup-config";
import { endSessionsOf } from "../../db/members";
import type { AppEnv } from "../../http/context";
import { type After, decodeCursor } from "../../http/cursor";
import { postedFromThisOrigin } from "../../http/form-token";
import { personActor } from "../../platform/actor";
import { brandOf } from "../../platform/brand";
import { randomBase62 } from "../../platform/crypto";
import { ApiError, serviceUnavailable } from "../../platform/errors";
import { PLANS } from "../../pricing";
import { formatCredits } from "../kit/format";
import {
  forbidden,
  insufficientRole,
  PageError,
  parseFields,
  readFields,
  SignedOutError,
} from "../kit/forms";
import { Document, type Notice, renderHtml } from "../kit/layout";
import { relyingParty } from "../kit/passkey-form";
import { pageSecurityHeaders } from "../kit/security";
import { BillingPage } from "./billing-view";
import {
  ACTIVATION_MAX_LOOKS,
  ACTIVATION_REFRESH_SECONDS,
  type CheckoutFacts,
  checkoutReturn,
  readCheckoutSession,
  SESSION_ID,
} from "./checkout-return";
import { type BillingModel, loadBilling } from "./data";
import { NOTICES, redirectWith, refusalNotice, refusalPage } from "./form-replies";
import { moneyFormRoutes, TopUpForm } from "./money-forms";
import { BILLING_PATH, ErrorPage, ResumePage, SignInPage } from "./pages";
import type { Activation, CsrfTokens } from "./parts";
import { peopleFormRoutes } from "./people-forms";
import { TopUpConfirmPage } from "./top-up-page";
import { webhookFormRoutes } from "./webhook-forms";
import type { NewWebhook, WebhookDraft } from "./webhooks-section";

/** Every Billing page's title ends with the page's name and the business's. */
const TITLE = (c: Context<AppEnv>) => `Account / Billing · ${brandOf(c.env).company}`;
const PURPOSES: CsrfPurpose[] = [
  "auto-recharge",
  "portal",
  "checkout",
  "keys",
  "sign-out",
  "top-up",
  "limits",
  "alerts",
  "members",
  "passkeys",
  "webhooks",
];

async function signInPage(
  c: Context<AppEnv>,
  status: ContentfulStatusCode,
  options: { notice?: Notice | null; unavailable?: boolean } = {},
) {
  const secret = await sessionSecret(c.env);
  const csrf = secret ? await signInToken(c, secret) : "";
  const passkeyOptions = secret
    ? await authenticationOptions(c.get("db"), relyingParty(c))
    : undefined;
  return renderHtml(
    c,
    <Document title={`Sign in · ${TITLE(c)}`}>
      <SignInPage
        notice={options.notice}
        unavailable={options.unavailable || !secret}
        signUp={signupEnabled(c.env)}
        csrf={csrf}
        passkeyOptions={passkeyOptions}
      />
    </Document>,
    status,
  );
}

/** The signed-in page (a completed sign-up lands here too, its first key in the flash). */
async function billingPage(
  c: Context<AppEnv>,
  session: Session,
  secret: string,
  options: {
    notice?: Notice | null;
    newKey?: { key: string; name: string | null };
    model?: BillingModel;
    activation?: Activation;
    /** Reloads this address after a few seconds (the activation's poll, no script needed). */
    refreshTo?: string;
    /** The Activity section's page (`?activity=<cursor>`). */
    activityAfter?: After;
    /** The history's page (`?history=<cursor>`). */
    historyAfter?: After;
    /** A webhook endpoint just added (its secret shown once), or an add refused. */
    newWebhook?: NewWebhook;
    webhookDraft?: WebhookDraft;
    /** The answer's status: a refused form shown again says what the API would. */
    status?: ContentfulStatusCode;
  } = {},
) {
  const model =
    options.model ??
    (await loadBilling(
      c.env,
      c.get("db"),
      session.accountId,
      Date.now(),
      options.activityAfter,
      options.historyAfter,
    ));
  if (!model) throw refusalPage("not_initialized");
  const tokens = await tokensFor(secret, session);
  const passkeys = {
    list: await listPasskeys(c.get("db"), session.emailKey),
    options: await registrationOptions(c.get("db"), relyingParty(c), session),
  };
  return renderHtml(
    c,
    <Document
      title={TITLE(c)}
      refreshTo={options.refreshTo}
      refreshAfter={ACTIVATION_REFRESH_SECONDS}
    >
      <BillingPage
        model={model}
        tokens={tokens}
        viewer={{ memberId: session.memberId, email: session.email, role: session.role }}
        notice={options.notice}
        newKey={options.newKey}
        apiBase={new URL(c.req.url).origin}
        activation={options.activation}
        passkeys={passkeys}
        newWebhook={options.newWebhook}
        webhookDraft={options.webhookDraft}
      />
    </Document>,
    options.status,
  );
}

/**
 * Back from a plan Checkout (`?checkout=subscribed&session_id=cs_…`): Stripe says whether it was
 * paid, D1 and the ledger whether its webhooks arrived. Paid but not mirrored yet, the page
 * says the plan is being activated, offers no second Subscribe, and reloads itself every few
 * seconds (`wait` counts the looks) until it shows, or stops after about a minute and says so.
 */
async function checkoutReturnPage(
  c: Context<AppEnv>,
  session: Session,
  secret: string,
  sessionId: string,
) {
  const looks = Math.min(
    ACTIVATION_MAX_LOOKS,
    Number.parseInt(c.req.query("wait") ?? "0", 10) || 0,
  );
  let facts: CheckoutFacts | null;
  try {
    facts = await readCheckoutSession(c.env, sessionId);
  } catch (err) {
    // Stripe unreachable: say what is known (Checkout sent them back as paid), as before.
    console.error("checkout session read failed", c.get("requestId"), String(err));
    return redirectWith(c, secret, session, { notice: CHECKOUT_NOTICES.subscribed });
  }
  const model = await loadBilling(c.env, c.get("db"), session.accountId);
  if (!model) throw refusalPage("not_initialized");
  const result = checkoutReturn(facts, {
    accountId: session.accountId,
    subscriptionId: model.subscriptionId,
    subscriptionStatus: model.account.subscription?.status ?? null,
    plan: model.account.plan,
    ledgerPlan: model.snapshot.plan,
  });
  switch (result.state) {
    case "unknown":
      return c.redirect(BILLING_PATH, 303);
    case "not_completed":
      return redirectWith(c, secret, session, { notice: CHECKOUT_NOTICES.cancelled });
    case "active": {
      const plan = PLANS[result.plan];
      return redirectWith(c, secret, session, {
        notice: {
          tone: "ok",
          text: `Your ${plan.name} plan is active: ${formatCredits(plan.monthlyCredits)} credits a month. Thank you.`,
        },
      });
    }
    case "activating": {
      const refreshing = looks < ACTIVATION_MAX_LOOKS;
      const next = new URLSearchParams({
        checkout: "subscribed",
        session_id: sessionId,
        wait: String(looks + 1),
      });
      return billingPage(c, session, secret, {
        model,
        activation: { plan: result.plan, paid: result.paid, refreshing },
        refreshTo: refreshing ? `${BILLING_PATH}?${next}` : undefined,
      });
    }
  }
}

async function tokensFor(secret: string, session: Session): Promise<CsrfTokens> {
  return Object.fromEntries(
    await Promise.all(PURPOSES.map(async (p) => [p, await csrfToken(secret, session, p)])),
  ) as CsrfTokens;
}

function errorPage(
  c: Context<AppEnv>,
  status: ContentfulStatusCode,
  title: string,
  message: string,
) {
  return renderHtml(
    c,
    <Document title={`${title} · ${TITLE(c)}`}>
      <ErrorPage title={title} message={message} />
    </Document>,
    status,
  );
}

/**
 * What the page says once on the way back from Checkout (its `success_url` / `cancel_url` carry
 * `?checkout=`). The plan or card itself arrives by webhook, usually within seconds.
 */
const CHECKOUT_NOTICES: Record<string, NonNullable<Flash["notice"]>> = {
  subscribed: {
    tone: "ok",
    // Only when the session could not be read (no id in the URL, Stripe unreachable): it says
    // nothing it cannot know. With a readable session the page says paid, activating or active.
    text: "Back from Checkout: thank you.",
    detail:
      "Your plan shows here as soon as Stripe confirms the payment, usually within seconds; reload this page if it does not show yet.",
  },
  card_added: {
    tone: "ok",
    text: "Card saved.",
    detail:
      "It becomes your default payment method within seconds; reload if it does not show yet.",
  },
  cancelled: { tone: "warn", text: "Checkout was cancelled: nothing was charged or changed." },
};

function checkoutOutcome(c: Context<AppEnv>): string | null {
  const outcome = c.req.query("checkout");
  return outcome !== undefined && Object.hasOwn(CHECKOUT_NOTICES, outcome) ? outcome : null;
}

/** The Checkout session the return URL names (`{CHECKOUT_SESSION_ID}`), if it looks like one. */
function checkoutSessionId(c: Context<AppEnv>): string | null {
  const id = c.req.query("session_id");
  return id !== undefined && SESSION_ID.test(id) ? id : null;
}

/** `/account/*`: the Billing page and its form posts. */
export const billingPageRoutes = new Hono<AppEnv>()
  .use(pageSecurityHeaders)
  .get("/", (c) => c.redirect(BILLING_PATH, 303))
  .get("/billing", async (c) => {
    const secret = await sessionSecret(c.env);
    const session = secret ? await readSession(c) : null;
    // Read once: this response clears the flash cookie, so a reload shows neither again.
    const outcome = checkoutOutcome(c);
    const checkoutSession = checkoutSessionId(c);
    if (secret && session && outcome === "subscribed" && checkoutSession) {
      return checkoutReturnPage(c, session, secret, checkoutSession);
    }
    if (secret && session && outcome) {
      // One-time, like every notice: a reload of the page does not say it again.
      return redirectWith(c, secret, session, { notice: CHECKOUT_NOTICES[outcome] });
    }
    const flash = secret ? await takeFlash(c, secret, session?.sessionId ?? null) : null;
    if (secret && session) {
      // An unreadable cursor shows the newest entries: a link, never an error page.
      const activity = c.req.query("activity");
      const history = c.req.query("history");
      return billingPage(c, session, secret, {
        notice: flash?.notice,
        newKey: flash?.newKey,
        newWebhook: flash?.newWebhook,
        activityAfter: (activity && decodeCursor(activity)) || undefined,
        historyAfter: (history && decodeCursor(history)) || undefined,
      });
    }
    const crossSite =
      c.req.header("Sec-Fetch-Site") === "cross-site" &&
      c.req.header("Sec-Fetch-Mode") === "navigate";
    if (crossSite && c.req.query("resumed") === undefined) {
      const href = `${BILLING_PATH}?resumed=1${outcome ? `&checkout=${outcome}` : ""}${
        outcome && checkoutSession ? `&session_id=${checkoutSession}` : ""
      }`;
      return renderHtml(
        c,
        <Document title={TITLE(c)} refreshTo={href}>
          <ResumePage href={href} />
        </Document>,
      );
    }
    return signInPage(c, 200, { notice: flash?.notice, unavailable: !secret });
  })
  .get("/billing/top-up", async (c) => {
    const secret = await sessionSecret(c.env);
    const session = secret ? await readSession(c) : null;
    if (!secret || !session) throw new SignedOutError();
    if (!may(session.role, "billing")) throw insufficientRole();
    const pkg = parseFields(
      { package: c.req.query("package") ?? "" },
      z.object({ package: TopUpForm.shape.package }),
    ).package;
    const model = await loadBilling(c.env, c.get("db"), session.accountId);
    if (!model) throw refusalPage("not_initialized");
    // Nothing is offered while a payment waits: the page says what waits and where to finish it.
    if (!model.purchases.canBuy) {
      return redirectWith(c, secret, session, { notice: refusalNotice("payment_pending") });
    }
    const tokens = await tokensFor(secret, session);
    return renderHtml(
      c,
      <Document title={`Buy credits · ${TITLE(c)}`}>
        <TopUpConfirmPage
          model={model}
          pkg={pkg}
          token={tokens["top-up"]}
          request={randomBase62(24)}
        />
      </Document>,
    );
  })
  .post("/sign-out", async (c) => {
    const fields = await readFields(c);
    const secret = await sessionSecret(c.env);
    // Another site's post never signs anyone out. Its request carries no SameSite=Strict
    // cookie, so no session (and no token) can be checked; but the browser would still apply
    // this answer's Set-Cookie and clear the live session. Hence the origin check first.
    if (!(await postedFromThisOrigin(c))) throw forbidden();
    const session = secret ? await readSession(c) : null;
    // Clearing a cookie that no longer works needs no token; ending a live session does.
    if (secret && session && !(await verifyCsrf(secret, session, "sign-out", fields.csrf))) {
      throw forbidden();
    }
    // "Sign out everywhere": every session of this person, in every account and browser, ends
    // at its next request (their epoch is raised); this one is cleared now as well.
    const everywhere = session !== null && fields.everywhere === "on";
    if (everywhere) {
      await endSessionsOf(c.get("db"), session.emailKey);
      await recordAudit(
        c.get("db"),
        session.accountId,
        personActor(session.memberId, session.email),
        "person.signed_out_everywhere",
      );
    }
    endSession(c);
    return secret
      ? redirectWith(c, secret, null, {
          notice: everywhere ? NOTICES.signedOutEverywhere : NOTICES.signedOut,
        })
      : c.redirect(BILLING_PATH, 303);
  })
  // Settings and purchases: auto-recharge, top-ups, limits, alerts, Stripe (./money-forms).
  .route("/", moneyFormRoutes)
  // Keys, passkeys and members: the people and access forms (./people-forms).
  .route("/", peopleFormRoutes)
  // Webhook endpoints: add (secret shown once), test send, delete (./webhook-forms).
  .route("/", webhookFormRoutes(billingPage))
  .all("/*", (c) =>
    errorPage(c, 404, "Page not found", `There is no page at ${c.req.method} ${c.req.path}.`),
  )
  .onError((err, c) => {
    if (err instanceof SignedOutError) {
      return signInPage(c, 401, { notice: { tone: "warn", text: err.message } });
    }
    if (err instanceof PageError) return errorPage(c, err.status, err.title, err.message);
    if (err instanceof ApiError) {
      // e.g. 429 with its Retry-After, when an action's hourly limit is reached.
      for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
      return errorPage(c, err.status, "That did not work", err.message);
    }
    if (err instanceof HTTPException && err.status < 500) {
      return errorPage(c, err.status, "That did not work", "The request could not be processed.");
    }
    const unavailable = serviceUnavailable(err);
    if (unavailable) {
      for (const [name, value] of Object.entries(unavailable.headers)) c.header(name, value);
      return errorPage(c, unavailable.status, "Try again in a moment", unavailable.message);
    }
    console.error(
      "billing page error",
      c.get("requestId"),
      err instanceof Error ? (err.stack ?? err.message) : String(err),
    );
    return errorPage(
      c,
      500,
      "Something went wrong",
      `Something went wrong on our side. Quote request id ${c.get("requestId")} to support.`,
    );
  });
