/**
 * The agent's state directory (mode 0700): `agent.json` (which AK is activated for which host, and
 * where the AK lives: a persistent handle or its blobs to load under the EK) and `token.jwt` (the
 * last attestation token). Files are written 0600, atomically (temp file + rename).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TpmTrustError } from "../errors.js";
import { EK_TEMPLATES, type EkKind } from "../tpm/commands/index.js";

export const DEFAULT_STATE_DIR = ".tpmtrust/agent";

export interface AgentState {
  version: 1;
  server: string;
  host: string;
  ekAlg: EkKind;
  /** which EK of `ekAlg` the AK was enrolled under (absent in older states: the one `loadEk` picks) */
  ekSource?: "template" | "persistent";
  akAlg: "rsa" | "ecc";
  akNameHex: string;
  /** base64 TPM2B_PUBLIC of the AK */
  akPublic: string;
  /** the persistent handle the AK was made persistent at, or absent when `akPrivate` is kept here */
  akHandle?: number;
  /** base64 TPM2B_PRIVATE contents of the AK, to load it under the EK again */
  akPrivate?: string;
  /** base64 DER AK certificate (EKU 2.23.133.8.3), when the service issued one */
  akCertificate?: string;
  registeredAt: string;
}

const STATE_FILE = "agent.json";
const TOKEN_FILE = "token.jwt";

function ioError(path: string, e: unknown): TpmTrustError {
  return new TpmTrustError("ERR_IO", `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
}

function writePrivate(dir: string, file: string, data: string): void {
  const path = join(dir, file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, data, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (e) {
    throw ioError(path, e);
  }
}

function bad(path: string, why: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_FORMAT", `${path}: ${why}`, { path });
}

/** The AK activation recorded in `dir`; ERR_USAGE when there is none yet. */
export function readState(dir: string): AgentState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) throw new TpmTrustError("ERR_USAGE", `no AK activation in ${dir}: run \`tpmtrust agent activate\` first (or pass --state-dir)`);
  let s: AgentState;
  try {
    s = JSON.parse(readFileSync(path, "utf8")) as AgentState;
  } catch (e) {
    throw e instanceof SyntaxError ? bad(path, `not JSON: ${e.message}`) : ioError(path, e);
  }
  if (typeof s !== "object" || s === null || s.version !== 1) throw bad(path, "not a tpmtrust agent state (version 1)");
  for (const k of ["server", "host", "akNameHex", "akPublic", "registeredAt"] as const) if (typeof s[k] !== "string") throw bad(path, `${k} is missing`);
  if (!(s.ekAlg in EK_TEMPLATES)) throw bad(path, `ekAlg ${JSON.stringify(s.ekAlg)} is not an EK template`);
  if (s.ekSource !== undefined && s.ekSource !== "template" && s.ekSource !== "persistent") throw bad(path, `ekSource ${JSON.stringify(s.ekSource)} is not template or persistent`);
  if (s.akAlg !== "rsa" && s.akAlg !== "ecc") throw bad(path, `akAlg ${JSON.stringify(s.akAlg)} is not rsa or ecc`);
  if ((s.akHandle === undefined) === (s.akPrivate === undefined)) throw bad(path, "needs exactly one of akHandle and akPrivate");
  if (s.akHandle !== undefined && !(Number.isInteger(s.akHandle) && s.akHandle >>> 24 === 0x81)) throw bad(path, "akHandle is not a persistent handle");
  return s;
}

export function writeState(dir: string, s: AgentState): void {
  writePrivate(dir, STATE_FILE, JSON.stringify(s, null, 2) + "\n");
}

export function writeToken(dir: string, token: string): void {
  writePrivate(dir, TOKEN_FILE, token + "\n");
}

/** Removes the stored token (after a failed attestation it no longer describes the host). */
export function clearToken(dir: string): void {
  rmSync(join(dir, TOKEN_FILE), { force: true });
}

export function readToken(dir: string): string | undefined {
  const path = join(dir, TOKEN_FILE);
  return existsSync(path) ? readFileSync(path, "utf8").trim() : undefined;
}

export const tokenPath = (dir: string): string => join(dir, TOKEN_FILE);
