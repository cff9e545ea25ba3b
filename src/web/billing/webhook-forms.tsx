/**
 * The Billing page's webhook forms: add an endpoint, send it a test event, delete it. Each calls
 * the same function as its `/v1/account/webhooks` route (accounts/webhook-endpoints) and needs
 * the permission that route needs (`developer_tools`). An add answers with a redirect whose
 * read-once flash carries the signing secret (shown on that page view only, never again); a
 * refused add answers with the page itself, at the API's status (400 for the URL, 409 at 5
 * endpoints), the form filled in again and the reason beside it.
 */
import type { Context } from "hono";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import type { Session } from "../../accounts/sessions";
import { addEndpoint, deleteEndpoint, sendTestEvent } from "../../accounts/webhook-endpoints";
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from "../../delivery/webhook-events";
import type { AppEnv } from "../../http/context";
import { pageWords, refusalStatus } from "../../platform/refusals";
import { formSession, parseFields, readFields } from "../kit/forms";
import { redirectWith, refused } from "./form-replies";
import { eventField, type WebhookDraft } from "./webhooks-section";

const AddForm = z.object({
  url: z.string().trim().min(1, { error: "enter the endpoint's URL" }).max(2048),
});

/** Renders the Billing page for this session, at `status`, with a refused add shown again. */
export type RenderWithDraft = (
  c: Context<AppEnv>,
  session: Session,
  secret: string,
  options: { status: ContentfulStatusCode; webhookDraft: WebhookDraft },
) => Promise<Response>;

/** Mounted by ./routes at `/account`; `render` is its Billing page. */
export function webhookFormRoutes(render: RenderWithDraft) {
  return new Hono<AppEnv>()
    .post("/billing/webhooks", async (c) => {
      const fields = await readFields(c);
      const { session, secret } = await formSession(c, "webhooks", fields, "developer_tools");
      const form = parseFields(fields, AddForm);
      const events = WEBHOOK_EVENT_TYPES.filter((t) => fields[eventField(t)] === "on");
      const result = await addEndpoint(
        c.env,
        c.get("db"),
        session.accountId,
        { url: form.url, events: events as WebhookEventType[] },
        c.get("actor"),
      );
      if (!result.ok) {
        const draft = { url: form.url, events };
        if (result.reason === "invalid_url") {
          return render(c, session, secret, {
            status: 400,
            webhookDraft: { ...draft, error: `No endpoint added: the URL ${result.problem}.` },
          });
        }
        const words = pageWords(result.reason);
        return render(c, session, secret, {
          status: refusalStatus(result.reason) as ContentfulStatusCode,
          webhookDraft: { ...draft, error: `${words.text} ${words.action ?? ""}`.trim() },
        });
      }
      return redirectWith(c, secret, session, {
        newWebhook: { id: result.endpoint.id, url: result.endpoint.url, secret: result.secret },
      });
    })
    .post("/billing/webhooks/:id/test", async (c) => {
      const fields = await readFields(c);
      const { session, secret } = await formSession(c, "webhooks", fields, "developer_tools");
      const sent = await sendTestEvent(
        c.env,
        c.get("db"),
        session.accountId,
        c.req.param("id"),
        "the Billing page",
      );
      if (!sent) return refused(c, secret, session, "webhook_not_found");
      return redirectWith(c, secret, session, {
        notice: {
          tone: "ok",
          text: `Test event sent to ${sent.endpoint.url}.`,
          detail: "Its delivery is listed under Webhooks; reload the page to see its status.",
        },
      });
    })
    .post("/billing/webhooks/:id/delete", async (c) => {
      const fields = await readFields(c);
      const { session, secret } = await formSession(c, "webhooks", fields, "developer_tools");
      const row = await deleteEndpoint(
        c.get("db"),
        session.accountId,
        c.req.param("id"),
        c.get("actor"),
      );
      if (!row) return refused(c, secret, session, "webhook_not_found");
      return redirectWith(c, secret, session, {
        notice: {
          tone: "ok",
          text: `Webhook endpoint ${row.url} deleted: nothing more is sent to it.`,
        },
      });
    });
}
