/**
 * Runs Debian's tpm2-tools against a test swtpm (TPM2TOOLS_TCTI set from the swtpm's tcti).
 * swtpm has no resource manager and libtpms only 3 object slots, so by default every call is
 * followed by flushing transient objects, loaded sessions and saved sessions (harness pitfall 1).
 */
import { execFile } from "node:child_process";
import { requireTool } from "./swtpm.js";

export interface ToolOptions {
  /** bytes for the tool's stdin */
  input?: Buffer;
  /** flush transient objects and sessions afterwards (default true); false keeps a session across calls */
  flush?: boolean;
  cwd?: string;
}

export class ToolError extends Error {
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${tool} exited with ${exitCode}: ${stderr.trim() || stdout.trim()}`);
  }
}

/** Runs a tool; resolves with stdout as bytes, rejects with ToolError (stderr in the message). */
export function runTool(tool: string, args: string[], opts: ToolOptions & { env?: NodeJS.ProcessEnv } = {}): Promise<Buffer> {
  requireTool(tool);
  return new Promise((resolve, reject) => {
    const child = execFile(
      tool,
      args,
      { env: opts.env ?? process.env, cwd: opts.cwd, encoding: "buffer", maxBuffer: 64 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof err.code === "number" ? err.code : null;
          reject(new ToolError(tool, code, stderr.toString("utf8"), stdout.toString("utf8")));
        } else resolve(stdout);
      },
    );
    child.stdin?.on("error", () => undefined); // tools that never read stdin close it early
    child.stdin?.end(opts.input ?? Buffer.alloc(0));
  });
}

export interface TctiTarget {
  tcti: string;
}

function tctiEnv(tpm: TctiTarget): NodeJS.ProcessEnv {
  return { ...process.env, TPM2TOOLS_TCTI: tpm.tcti, TPM2OPENSSL_TCTI: tpm.tcti };
}

/** Flushes all transient objects, loaded sessions and saved sessions. */
export async function flushAll(tpm: TctiTarget): Promise<void> {
  for (const flag of ["-t", "-l", "-s"]) await runTool("tpm2_flushcontext", [flag], { env: tctiEnv(tpm) });
}

/** Runs `tool args` against `tpm`; returns stdout as bytes. */
export async function tpm2Raw(tpm: TctiTarget, tool: string, args: string[], opts: ToolOptions = {}): Promise<Buffer> {
  try {
    return await runTool(tool, args, { ...opts, env: tctiEnv(tpm) });
  } finally {
    if (opts.flush !== false) await flushAll(tpm);
  }
}

/** Runs `tool args` against `tpm`; returns stdout as text. */
export async function tpm2(tpm: TctiTarget, tool: string, args: string[], opts: ToolOptions = {}): Promise<string> {
  return (await tpm2Raw(tpm, tool, args, opts)).toString("utf8");
}
