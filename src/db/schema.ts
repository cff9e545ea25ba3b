/**
 * The D1 schema (drizzle), one file per concern; drizzle-kit reads this index
 * (drizzle.config.ts) and every module imports its tables from here.
 */
export * from "./tables/accounts";
export * from "./tables/people";
