// autocannon 9 ships no type declarations; bench/run.mjs uses it as documented in its README.
declare module "autocannon";
