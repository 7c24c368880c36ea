import { isVersionOnly, VERSION } from "./version.js";

if (isVersionOnly(process.argv.slice(2))) {
  process.stdout.write(`${VERSION}\n`);
} else {
  await (await import("./program.js")).runProgram(process.argv);
}
