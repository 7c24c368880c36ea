import { buildProgram } from "./program.js";
import { exitCodeFor, printError } from "./run.js";

const program = await buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (e) {
  printError(e);
  process.exitCode = exitCodeFor(e);
}
