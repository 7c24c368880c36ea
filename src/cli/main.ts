import { isVersionOnly, VERSION } from "./version.js";

if (isVersionOnly(process.argv.slice(2))) {
  process.stdout.write(`${VERSION}\n`);
} else {
  const { buildProgram } = await import("./program.js");
  const { exitCodeFor, printError } = await import("./run.js");
  const program = await buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    await printError(e);
    process.exitCode = exitCodeFor(e);
  }
}
