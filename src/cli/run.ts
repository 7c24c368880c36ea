import { CommanderError } from "commander";
import { exitCodeForCode, isTpmTrustError, TpmTrustError } from "../errors.js";

/** Exit codes: 0 verified/ok, 1 rejected/not trusted, 2 nothing judged (unusable input, no TPM or service, internal); per code in src/errors.ts. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  if (isTpmTrustError(e)) return exitCodeForCode(e.code);
  return 2;
}

export async function printError(e: unknown): Promise<void> {
  if (e instanceof CommanderError) return; // commander already printed its message
  if (isTpmTrustError(e)) {
    // the hints (and the TPM response code table) load only when there is an error to explain
    const hint = (await import("./hints.js")).hintFor(e);
    process.stderr.write(`error ${e.code}: ${e.message}\n${hint ? `hint: ${hint}\n` : ""}`);
    return;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`error ERR_INTERNAL: ${msg}\n`);
}

/** Wraps a command action: typed errors become exit codes, never stack traces. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      if (typeof code === "number") process.exitCode = code;
    } catch (e) {
      await printError(e);
      process.exitCode = exitCodeFor(e);
    }
  };
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, jsonReplacer, 2) + "\n");
}

/** Buffers as hex, bigints as decimal strings: the JSON shape every --json output uses. */
function jsonReplacer(_k: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" && Array.isArray((v as { data?: unknown }).data)) {
    return Buffer.from((v as { data: number[] }).data).toString("hex");
  }
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  return v;
}

export function usage(message: string): TpmTrustError {
  return new TpmTrustError("ERR_USAGE", message);
}
