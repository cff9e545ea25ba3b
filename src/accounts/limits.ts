import { z } from "zod";

/** Cents a limit may be set to: up to $1,000,000 a month; larger numbers are typos. */
export const spendLimitCents = z
  .number({ error: "must be a whole number of cents or null" })
  .int("must be a whole number of cents or null")
  .min(0)
  .max(100_000_000)
  .nullable();
