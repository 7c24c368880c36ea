/**
 * The provisioning master key: 32 random bytes in a file outside the database (64 hex digits),
 * created with mode 0600 on first start. Every instance sharing one database needs the same file.
 * Default location: $TPMTRUST_PROVISIONING_KEY_FILE, else beside the SQLite database, else
 * `.tpmtrust/provisioning-key` (PostgreSQL and in-memory databases).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { TpmTrustError } from "../errors.js";

const PROVISIONING_KEY_ENV = "TPMTRUST_PROVISIONING_KEY_FILE";

export function defaultProvisioningKeyFile(db: string): string {
  const fromEnv = process.env[PROVISIONING_KEY_ENV];
  if (fromEnv) return resolve(fromEnv);
  const beside = !/^postgres(ql)?:\/\//i.test(db) && db !== ":memory:";
  return resolve(beside ? join(dirname(db), "provisioning-key") : join(".tpmtrust", "provisioning-key"));
}

/** Reads the key file, creating it (0600, in a 0700 folder) when it does not exist. */
export function loadProvisioningKey(path: string): { key: Buffer; created: boolean } {
  if (!existsSync(path)) {
    const key = randomBytes(32);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
      return { key, created: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new TpmTrustError("ERR_IO", `cannot create the provisioning key file ${path}: ${(e as Error).message}`);
      // another instance created it first: use theirs
    }
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot read the provisioning key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new TpmTrustError("ERR_PARSE_FORMAT", `${path} must hold 64 hex digits (a 32-byte key)`);
  return { key: Buffer.from(text, "hex"), created: false };
}
