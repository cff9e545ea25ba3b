/**
 * A first request, where a key is shown (the sign-up welcome and the Billing page's new key,
 * both the Billing page's one-time box) and on `/docs`: the API base URL, a `curl` to copy and
 * a link to the reference. The command names the key by its prefix and last four, as the key
 * list does: the whole key appears once on the page, in its own field, and nowhere else.
 */
import type { FC } from "hono/jsx";

/** `tg_test_…a1b2`: enough to tell which key, never the key. */
export function keyHint(key: string): string {
  const prefix = /^tg_[a-z]+_/.exec(key)?.[0] ?? "";
  return `${prefix}…${key.slice(-4)}`;
}

/** The first call to try: it costs nothing and proves the key works. */
export function quickstartCurl(baseUrl: string, keyHint: string | null): string {
  return `curl ${baseUrl}/v1/account/balance -H "Authorization: Bearer ${keyHint ?? "YOUR_API_KEY"}"`;
}

export const Quickstart: FC<{ baseUrl: string; keyHint: string | null }> = ({
  baseUrl,
  keyHint,
}) => (
  <section class="quickstart" aria-labelledby="quickstart-h">
    <h2 id="quickstart-h">Quickstart</h2>
    <p>
      API base URL: <code>{baseUrl}</code>
    </p>
    <label class="field" for="quickstart-curl">
      {keyHint
        ? `Your first request: put the whole key in place of ${keyHint}`
        : "Your first request, with your API key"}
    </label>
    <textarea id="quickstart-curl" class="secret" rows={2} readonly spellcheck={false}>
      {quickstartCurl(baseUrl, keyHint)}
    </textarea>
    <div class="actions">
      <button
        type="button"
        class="secondary"
        data-copy="quickstart-curl"
        data-status="quickstart-status"
        hidden
      >
        Copy command
      </button>
      <span id="quickstart-status" role="status" />
    </div>
    <p>
      Every route, its parameters and errors: <a href="/docs">the API reference</a> (
      <a href="/openapi.json">OpenAPI</a>).
    </p>
  </section>
);
