#!/usr/bin/env node
// Compiles src/ into dist/ (what bin/tpmtrust.js runs) and stamps dist/.built when the whole build
// succeeded. Run by `npm ci` (prepare), `npm pack`/`npm publish` (the package ships dist/, not src/)
// and `npm run build`. Where TypeScript is not installed (npm ci --omit=dev) it leaves dist/ alone.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  console.error("build: TypeScript is not installed; dist/ is left as it is");
  process.exit(0);
}
rmSync("dist", { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync("dist/.built", `${new Date().toISOString()}\n`);
