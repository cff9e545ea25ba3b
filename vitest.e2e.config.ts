import { defineConfig } from "vitest/config";

/**
 * The browser end-to-end tests: plain Node (not the workers pool), the whole local stack
 * started by the test itself, one file at a time.
 */
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 180_000,
  },
});
