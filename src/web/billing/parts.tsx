/** Pieces every Billing page section shares: the CSRF field, the one-field form, the activation state. */
import type { FC } from "hono/jsx";
import type { CsrfPurpose } from "../../accounts/sessions";
import type { PlanId } from "../../pricing";

export type CsrfTokens = Record<CsrfPurpose, string>;

export const Csrf: FC<{ token: string }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token} />
);

/** A setting edited in one text field (empty clears it), posted with its CSRF token. */
export const OneFieldForm: FC<{
  action: string;
  token: string;
  id: string;
  name: string;
  label: string;
  inputmode: "decimal" | "numeric";
  value: string;
  submit: string;
  help: string;
}> = (f) => (
  <>
    <form method="post" action={f.action} class="inline-form">
      <Csrf token={f.token} />
      <div>
        <label class="field" for={f.id}>
          {f.label}
        </label>
        <input
          type="text"
          inputmode={f.inputmode}
          id={f.id}
          name={f.name}
          value={f.value}
          aria-describedby={`${f.id}-help`}
          autocomplete="off"
        />
      </div>
      <button type="submit">{f.submit}</button>
    </form>
    <p class="hint" id={`${f.id}-help`}>
      {f.help}
    </p>
  </>
);

/** A plan paid for in Checkout, not yet shown by D1 and the ledger; `refreshing` while the page polls. */
export interface Activation {
  plan: Exclude<PlanId, "free">;
  /** False for a payment method that confirms later: the page does not say "payment received". */
  paid: boolean;
  refreshing: boolean;
}
