import { readFileSync } from "node:fs";
import { TpmTrustError } from "../errors.js";

/** Reads a file named on the command line ("-" is standard input); failures are ERR_IO naming the option. */
export function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path === "-" ? 0 : path);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
}

/** A hex command-line argument (an optional 0x prefix is allowed). */
export function hexArg(value: string, what: string): Buffer {
  const s = value.trim().replace(/^0x/i, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new TpmTrustError("ERR_USAGE", `${what} must be hex digits, got "${value}"`);
  return Buffer.from(s, "hex");
}
