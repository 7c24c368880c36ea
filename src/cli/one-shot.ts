import { isVersionOnly, VERSION } from "./version.js";
import { writeStdout } from "./stdout.js";

/**
 * The entry point of the one-shot bundle (dist/bundle/one-shot.cjs, scripts/build.mjs), which
 * bin/tpmtrust.js tries first: `--version` and the commands of program.ts's one-shot modules run here
 * (true); any other command line is left, untouched, to the ES module bundle (false).
 */
export async function runOneShot(argv: readonly string[]): Promise<boolean> {
  if (isVersionOnly(argv.slice(2))) {
    writeStdout(`${VERSION}\n`);
    return true;
  }
  // commander and the command tree load only for a command
  const { isOneShot, runProgram } = await import("./program.js");
  if (!isOneShot(argv)) return false;
  await runProgram(argv);
  return true;
}
