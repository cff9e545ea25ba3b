/**
 * How the business is named to its customers: pages, emails, Stripe descriptions. The vars are
 * wrangler.toml's (PRODUCT_NAME, COMPANY_NAME, SUPPORT_EMAIL, EMAIL_FROM); unset or empty, the
 * local defaults keep what local mode and the tests have always said.
 */
export interface BrandVars {
  PRODUCT_NAME?: string;
  COMPANY_NAME?: string;
  SUPPORT_EMAIL?: string;
  EMAIL_FROM?: string;
}

export interface Brand {
  /** What customers buy access to ("Product Classifier"). */
  product: string;
  /** Who sells it, the name accounts are "with" ("Tollgate"). */
  company: string;
  /** Where customers write; EMAIL_FROM when unset, empty when neither is. */
  supportEmail: string;
}

export const DEFAULT_BRAND: Brand = {
  product: "Product Classifier",
  company: "Tollgate",
  supportEmail: "",
};

const given = (value: string | undefined) => value?.trim() || undefined;

export function brandOf(env: BrandVars): Brand {
  return {
    product: given(env.PRODUCT_NAME) ?? DEFAULT_BRAND.product,
    company: given(env.COMPANY_NAME) ?? DEFAULT_BRAND.company,
    supportEmail: given(env.SUPPORT_EMAIL) ?? given(env.EMAIL_FROM) ?? DEFAULT_BRAND.supportEmail,
  };
}
