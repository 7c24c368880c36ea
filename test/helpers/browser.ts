/**
 * Debian's chromium, headless, driven by playwright-core (never a downloaded browser). A fresh
 * profile per launch. Missing chromium throws with the install hint (tests never skip silently).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
/** Screenshots of UI tests: kept for humans, never committed (.gitignore). */
export const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts");

export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: UI tests need Debian's chromium. Install as root: scripts/setup.sh, or apt-get install -y chromium`);
  mkdirSync(ARTIFACTS, { recursive: true });
  // A launch that never answers (seen once on a loaded machine: chromium started, the DevTools pipe
  // stayed silent) is stopped by playwright at `timeout` and tried again in a fresh profile.
  let context: BrowserContext | undefined;
  let profile = "";
  for (let attempt = 1; !context; attempt++) {
    profile = mkdtempSync(join(tmpdir(), "tpmtrust-chromium-"));
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        timeout: 90_000,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        viewport: { width: 1360, height: 860 },
      });
    } catch (e) {
      rmSync(profile, { recursive: true, force: true });
      if (attempt === 3 || !(e instanceof Error && e.name === "TimeoutError")) throw e;
    }
  }
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
