/** The CLI's version, as `tpmtrust --version` prints it. */
export const VERSION = "0.1.0";

/** `tpmtrust --version` (or -V, repeated): main.ts answers it without loading the command tree or commander. */
export function isVersionOnly(args: readonly string[]): boolean {
  return args.length > 0 && args.every((a) => a === "--version" || a === "-V");
}
