/**
 * A SoftHSM2 token for tests: a temporary token directory and configuration file (SOFTHSM2_CONF is
 * set for this process, before any PKCS#11 module is initialised), and a token initialised with
 * `softhsm2-util --init-token`. A missing SoftHSM2 always throws with an install hint.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SOFTHSM_MODULE = process.env.TPMTRUST_SOFTHSM_MODULE ?? "/usr/lib/softhsm/libsofthsm2.so";

export interface SoftHsm {
  module: string;
  dir: string;
  /** Initialises a token; returns its label and user PIN. */
  initToken(label: string, pin?: string): { label: string; pin: string };
  cleanup(): void;
}

export function startSoftHsm(): SoftHsm {
  if (!existsSync(SOFTHSM_MODULE)) {
    const why = process.env.CI === "true" ? "CI=true requires SoftHSM2" : "tests need a real PKCS#11 token and never skip";
    throw new Error(`${SOFTHSM_MODULE} not found (${why}). Install as root: scripts/setup.sh, or apt-get install -y softhsm2`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-softhsm-"));
  mkdirSync(join(dir, "tokens"));
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  return {
    module: SOFTHSM_MODULE,
    dir,
    initToken(label, pin = "4321-test") {
      execFileSync("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", "so-secret", "--pin", pin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: "pipe" });
      return { label, pin };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
