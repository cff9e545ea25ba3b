// Bench only: stands in for the optional schema libraries (SCHEMA_LIBRARY_ALIASES in run.mjs).
export {};
