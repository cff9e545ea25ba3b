import type { Context } from "hono";
import { html } from "hono/html";
import { type Child, createContext, type FC, useContext } from "hono/jsx";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type Brand, brandOf, DEFAULT_BRAND } from "../../platform/brand";
import { STYLES } from "./styles";

/** The business's names, for components that render without the request (see renderHtml). */
const BrandContext = createContext<Brand>(DEFAULT_BRAND);

/** How the page names the business (PRODUCT_NAME, COMPANY_NAME, SUPPORT_EMAIL). */
export function useBrand(): Brand {
  return useContext(BrandContext);
}

/** The business's name, as COMPANY_NAME says it. */
export const BrandCompany: FC = () => <>{useBrand().company}</>;

/** What the business sells, as PRODUCT_NAME says it. */
export const BrandProduct: FC = () => <>{useBrand().product}</>;

/** The header's line: the business and what it sells. */
export const BrandLine: FC = () => {
  const brand = useBrand();
  return (
    <>
      {brand.company} <span>· {brand.product}</span>
    </>
  );
};

/** The HTML document every Billing page response is rendered into. */
export const Document: FC<{
  title: string;
  refreshTo?: string;
  /** Seconds before `refreshTo` is loaded (default at once). */
  refreshAfter?: number;
  children?: Child;
}> = ({ title, refreshTo, refreshAfter = 0, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      {refreshTo ? (
        <meta http-equiv="refresh" content={`${refreshAfter}; url=${refreshTo}`} />
      ) : null}
      <title>{title}</title>
      {/* No icon to fetch: spares a request that would only find the API's JSON 404. */}
      <link rel="icon" href="data:," />
      {/* Raw on purpose: escaping would change the text and break its CSP hash. */}
      <style dangerouslySetInnerHTML={{ __html: STYLES }} />
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      {children}
    </body>
  </html>
);

export function renderHtml(c: Context, page: JSX.Element, status: ContentfulStatusCode = 200) {
  const branded = (
    <BrandContext.Provider value={brandOf(c.env ?? {})}>{page}</BrandContext.Provider>
  );
  return c.html(html`<!doctype html>${branded}`, status);
}

export type NoticeTone = "ok" | "warn" | "bad";

export interface Notice {
  tone: NoticeTone;
  text: string;
  detail?: string;
}

/** A message at the top of the page; errors are announced to screen readers at once. */
export const NoticeBox: FC<{ notice: Notice | null | undefined }> = ({ notice }) =>
  notice ? (
    <div class={`notice ${notice.tone}`} role={notice.tone === "ok" ? "status" : "alert"}>
      <p>{notice.text}</p>
      {notice.detail ? <p>{notice.detail}</p> : null}
    </div>
  ) : null;
