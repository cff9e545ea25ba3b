/** The Account / Billing page: its header and the sections, in order, each from its own file. */
import type { FC } from "hono/jsx";
import { may, type Permission, type Role } from "../../accounts/roles";
import { retryableFailure } from "../../accounts/transactions";
import { pageWords } from "../../platform/refusals";
import { BrandLine, type Notice, NoticeBox } from "../kit/layout";
import {
  Activating,
  AlertsSection,
  BalanceSection,
  BuyCreditsSection,
  PaymentWaiting,
  SpendLimitSection,
} from "./balance-sections";
import type { BillingModel } from "./data";
import { ActivitySection, HistorySection } from "./history-sections";
import { KeysSection, NewKey } from "./keys-sections";
import { MembersSection } from "./members-section";
import { type Activation, Csrf, type CsrfTokens } from "./parts";
import { type PasskeysModel, PasskeysSection } from "./passkeys-section";
import { AdviceSection, UsageSection } from "./usage-sections";
import { type NewWebhook, type WebhookDraft, WebhooksSection } from "./webhooks-section";

export interface BillingPageProps {
  model: BillingModel;
  tokens: CsrfTokens;
  /** The person signed in: their role decides which forms the page shows. */
  viewer: { memberId: string; email: string; role: Role };
  notice?: Notice | null;
  /** A key just created: its only appearance. */
  newKey?: { key: string; name: string | null } | null;
  /** Where the API answers (this page's origin), for the new key's quickstart. */
  apiBase?: string;
  /** Back from a paid plan Checkout that the webhooks have not mirrored yet. */
  activation?: Activation | null;
  /** The person's passkeys and "Add a passkey"'s options. */
  passkeys?: PasskeysModel | null;
  /** A webhook endpoint just added: its secret's only appearance. */
  newWebhook?: NewWebhook | null;
  /** A webhook endpoint's add just refused: the form again, with why. */
  webhookDraft?: WebhookDraft | null;
}

/** The signed-in Account / Billing page. */
export const BillingPage: FC<BillingPageProps> = ({
  model,
  tokens,
  viewer,
  notice,
  newKey,
  activation,
  apiBase = "",
  passkeys,
  newWebhook,
  webhookDraft,
}) => {
  const can = (p: Permission) => may(viewer.role, p);
  return (
    <>
      <header class="top">
        <div class="wrap">
          <div class="brand">
            <BrandLine />
          </div>
          <div class="who">
            <span>
              {viewer.email} <span class="tag">{viewer.role}</span>
              {viewer.email === model.email ? null : <span class="muted"> · {model.email}</span>}
            </span>
            <form method="post" action="/account/sign-out">
              <Csrf token={tokens["sign-out"]} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
            <form method="post" action="/account/sign-out">
              <Csrf token={tokens["sign-out"]} />
              <input type="hidden" name="everywhere" value="on" />
              <button type="submit" class="secondary">
                Sign out everywhere
              </button>
            </form>
          </div>
        </div>
      </header>
      <main id="main" class="wrap">
        <h1>Account / Billing</h1>
        <p class="lead">
          Balances and usage are read when this page loads and include every request served. Times
          are UTC.
        </p>
        <NoticeBox notice={notice} />
        {model.account.suspension ? (
          // The refusal's words, and the operator's reason: the people of the account see why.
          <NoticeBox
            notice={{
              tone: "bad",
              text: pageWords("account_suspended").text,
              detail: `Reason: ${model.account.suspension.reason ?? "none given"}. ${pageWords("account_suspended").action ?? ""}`,
            }}
          />
        ) : null}
        {activation ? <Activating activation={activation} /> : null}
        <PaymentWaiting model={model} />
        {newKey ? <NewKey created={newKey} apiBase={apiBase} /> : null}
        <BalanceSection
          model={model}
          tokens={tokens}
          activation={activation ?? null}
          billing={can("billing")}
        />
        {can("billing") ? <BuyCreditsSection model={model} /> : null}
        <SpendLimitSection model={model} token={can("billing") ? tokens.limits : null} />
        <AlertsSection model={model} token={can("billing") ? tokens.alerts : null} />
        <UsageSection model={model} />
        <AdviceSection model={model} />
        <HistorySection
          transactions={model.transactions}
          page={model.history}
          // Only the newest page knows which failure is the latest one.
          retry={
            model.purchases.canBuy && !model.history.paged
              ? retryableFailure(model.transactions)
              : null
          }
        />
        <KeysSection keys={model.keys} token={tokens.keys} can={can} />
        <MembersSection
          members={model.members}
          token={can("members") ? tokens.members : null}
          viewer={viewer}
        />
        <WebhooksSection
          webhooks={model.webhooks}
          token={can("developer_tools") ? tokens.webhooks : null}
          created={newWebhook}
          draft={webhookDraft}
        />
        {passkeys ? <PasskeysSection passkeys={passkeys} token={tokens.passkeys} /> : null}
        <ActivitySection activity={model.activity} />
      </main>
    </>
  );
};
