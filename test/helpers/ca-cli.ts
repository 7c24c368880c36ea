/**
 * The setting of the `tpmtrust ca …` CLI tests (test/ca/cli-*.test.ts): a temporary directory that is
 * also the key directory ($TPMTRUST_KEY_DIR: master key files must be in it), a SQLite file, and the
 * CLI run as separate processes on it; optionally the CA already initialised as operators do it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, type CliResult } from "./cli.js";

export interface CaCliSetting {
  dir: string;
  db: string;
  /** `tpmtrust ca ARGS… --db DB` */
  ca(...args: string[]): Promise<CliResult>;
  close(): void;
}

export async function setup(o: { init?: boolean } = {}): Promise<CaCliSetting> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ca-cli-"));
  process.env.TPMTRUST_KEY_DIR = dir;
  const db = join(dir, "db.sqlite");
  const ca = (...args: string[]) => cli(["ca", ...args, "--db", db]);
  if (o.init) {
    const r = await ca("init", "--alg", "rsa-2048", "--key-dir", join(dir, "keys"));
    if (r.code !== 0) throw new Error(`ca init failed: ${r.stderr}`);
  }
  return { dir, db, ca, close: () => rmSync(dir, { recursive: true, force: true }) };
}
