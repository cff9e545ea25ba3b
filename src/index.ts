import { createApp } from "./app";
import type { Bindings } from "./env";

export { AccountLedger } from "./ledger/account-ledger";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Bindings>;
