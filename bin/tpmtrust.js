#!/usr/bin/env node
// Runs the compiled CLI (dist/, from `npm ci` or `npm run build`; what the published package ships)
// when its build is newer than every file under src/: its bundle (dist/bundle/, made where esbuild is
// installed) or else the compiled modules. Otherwise (no build, or sources edited since) loads src/
// through tsx, a development dependency.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The newest modification time under `dir` (0 for an installation without sources). */
function newest(dir) {
  let t = 0;
  let entries = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return t;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function builtAt() {
  try {
    return statSync(`${root}dist/.built`).mtimeMs;
  } catch {
    return -1;
  }
}

if (builtAt() >= newest(`${root}src`)) {
  // the build removes dist/ first, so a bundle is never older than the rest of dist/
  await import(existsSync(`${root}dist/bundle/main.js`) ? "../dist/bundle/main.js" : "../dist/cli/main.js");
} else {
  let register;
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    process.stderr.write(
      "tpmtrust: no up-to-date build in dist/ and tsx (a development dependency) is not installed to run the sources: run `npm run build` (needs the development dependencies), or install them (npm install)\n",
    );
    process.exit(2);
  }
  // the project's tsconfig whatever the working folder: its experimentalDecorators is what the
  // ASN.1 schemas' decorators need (tsx would otherwise look for a tsconfig from the cwd)
  const tsconfig = `${root}tsconfig.json`;
  register(existsSync(tsconfig) ? { tsconfig } : {});
  await import("../src/cli/main.ts");
}
