// What both browser tests share. Debian's chromium, headless, driven by
// playwright-core: launchChromium(options) gives { context, close }, with a fresh
// profile in the system temp dir that close() removes with the browser.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export async function launchChromium(options = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), "hubcache-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ...options,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// The checks a browser test makes: check(ok, what) prints "ok" or "FAIL" and
// what; finish(name) prints the summary and exits 0 only when none failed.
let failures = 0;

export function check(ok, what) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
  }
}

export function finish(name) {
  console.log(failures === 0 ? `${name}: all checks passed` : `${name}: ${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}
