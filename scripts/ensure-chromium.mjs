// @ts-check
/**
 * The browser test drives Debian's Chromium. On a machine without it, install it when we can
 * (root with apt-get, as on CI and the project's dev machines). Without a browser the run
 * fails: a green `npm test` must mean the browser tests ran, never that they were skipped.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const CHROMIUM = "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"], { encoding: "utf8" }).status === 0;
  if (isRoot && hasApt) {
    console.log("Installing Debian's chromium for the browser test (about a minute)…");
    const run = (args) =>
      spawnSync("apt-get", args, {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
    if (
      run(["update", "-qq"]).status !== 0 ||
      run(["install", "-y", "-qq", "chromium"]).status !== 0
    ) {
      console.error("installing chromium failed: the browser tests cannot run.");
    }
  } else {
    console.error(
      `${CHROMIUM} is missing and cannot be installed here (needs root and apt-get): the browser tests cannot run.`,
    );
  }
  if (!existsSync(CHROMIUM)) process.exit(1);
}
