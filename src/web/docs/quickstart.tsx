/**
 * A first request, where a key is shown (the sign-up welcome, the Billing page's new key) and
 * on `/docs`: the API base URL, a `curl` to copy and a link to the reference. The command
 * carries the key's prefix only: the whole key is shown once, in its own field, and never
 * copied anywhere else on the page.
 */
import type { FC } from "hono/jsx";

/** The first call to try: free, and proves the key works. */
export function quickstartCurl(baseUrl: string, keyPrefix: string | null): string {
  const key = keyPrefix ? `${keyPrefix}…` : "YOUR_API_KEY";
  return `curl ${baseUrl}/v1/account/balance -H "Authorization: Bearer ${key}"`;
}

export const Quickstart: FC<{ baseUrl: string; keyPrefix: string | null }> = ({
  baseUrl,
  keyPrefix,
}) => (
  <section class="card quickstart" aria-labelledby="quickstart-h">
    <h2 id="quickstart-h">Quickstart</h2>
    <p>
      API base URL: <code>{baseUrl}</code>
    </p>
    <label class="field" for="quickstart-curl">
      {keyPrefix
        ? "Your first request (paste the whole key in place of the prefix)"
        : "Your first request"}
    </label>
    <textarea id="quickstart-curl" class="secret" rows={2} readonly>
      {quickstartCurl(baseUrl, keyPrefix)}
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
      Every route, its parameters and its errors: <a href="/docs">the API reference</a>.
    </p>
  </section>
);
