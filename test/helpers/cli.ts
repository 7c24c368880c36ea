/** Runs the real `tpmtrust` CLI (bin/tpmtrust.js) as operators do, capturing exit code and output. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/tpmtrust.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: () => any;
}

export function cli(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd, maxBuffer: 64 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 99) : 0;
      resolve({ code, stdout, stderr, json: () => JSON.parse(stdout) });
    });
    child.stdin?.on("error", () => undefined); // the CLI may exit before reading its input
    child.stdin?.end(opts.input ?? "");
  });
}
