#!/usr/bin/env node
// Compiles src/ into dist/ (what bin/tpmtrust.js runs) and stamps dist/.built when the whole build
// succeeded. Run by `npm ci` (prepare), `npm pack`/`npm publish` (the package ships dist/, not src/)
// and `npm run build`. Where TypeScript is not installed (npm ci --omit=dev) it leaves dist/ alone.
//
// Then, where esbuild is installed, it bundles the CLI into dist/bundle/ (bin/tpmtrust.js runs it
// when present): from dist/cli/, a one-shot command such as `tpmtrust verify quote` resolves, reads
// and links two dozen small modules one by one. Dynamic imports stay dynamic (ES modules
// with code splitting), packages stay in node_modules except commander, and the modules of the
// one-shot commands (ONE_SHOT) share one chunk. Without esbuild the CLI runs from dist/ as compiled.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

/**
 * The modules `tpmtrust verify …`, `makecredential` and `eventlog …` load (with their static
 * imports), which operators script once per file: bench/startup.ts times them. esbuild puts a module
 * in a chunk per set of entry points (the CLI and each dynamic import) that reach it, which spreads
 * these over a dozen small chunks; every entry point but the CLI's own (which answers --version
 * alone) imports them all, so they form one. Other commands load that chunk too: a few hundred kB.
 */
const ONE_SHOT = ["cli/program.js", "cli/commands/verify.js", "cli/commands/credential.js", "cli/commands/eventlog.js"];

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve("typescript/bin/tsc");
} catch {
  console.error("build: TypeScript is not installed; dist/ is left as it is");
  process.exit(0);
}
rmSync("dist", { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);

let esbuild;
try {
  esbuild = require("esbuild");
} catch {
  console.error("build: esbuild is not installed; the CLI runs from dist/ unbundled");
}
if (esbuild) await bundle(esbuild);
writeFileSync("dist/.built", `${new Date().toISOString()}\n`);

async function bundle({ build }) {
  const options = {
    entryPoints: [resolve("dist/cli/main.js")],
    outdir: "dist/bundle",
    entryNames: "[name]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    sourcesContent: false,
    // no comments: fewer bytes to read and parse, and a chunk with any non-ASCII character in a
    // comment is held as a two-byte string; names are kept for stack traces
    minifyWhitespace: true,
    logLevel: "warning",
    // commander (CommonJS) requires Node's modules: the bundle's require resolves them
    banner: { js: 'import { createRequire as __createRequire } from "node:module";\nconst require = __createRequire(import.meta.url);' },
  };
  // packages load from node_modules as they are (native addons, files read beside their modules),
  // except commander, which every command loads
  const packages = {
    name: "packages",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (a) => (a.path === "commander" ? undefined : { path: a.path, external: true }));
    },
  };
  const { metafile } = await build({ ...options, write: false, metafile: true, plugins: [packages] });
  const entries = new Set();
  for (const input of Object.values(metafile.inputs)) {
    for (const i of input.imports) if (i.kind === "dynamic-import" && !i.external) entries.add(resolve(i.path));
  }
  const oneShot = ONE_SHOT.map((p) => JSON.stringify(resolve("dist", p)));
  const together = {
    name: "one-shot",
    setup(b) {
      b.onResolve({ filter: /^tpmtrust:one-shot$/ }, () => ({ path: "one-shot", namespace: "tpmtrust" }));
      b.onLoad({ filter: /.*/, namespace: "tpmtrust" }, () => ({ contents: oneShot.map((p) => `import ${p};`).join("\n"), resolveDir: resolve("dist") }));
      b.onLoad({ filter: /\.js$/ }, (a) => (entries.has(a.path) ? { contents: `${readFileSync(a.path, "utf8")}\nimport "tpmtrust:one-shot";\n`, loader: "js" } : undefined));
    },
  };
  const bundled = await build({ ...options, metafile: true, plugins: [together, packages] });
  // the quote verification threads `serve` starts load quote-worker.js from beside
  // src/attest/quote-verifier.ts's code: one file of its own, which leaves the CLI's chunks as they are
  await build({ ...options, entryPoints: [resolve("dist/attest/quote-worker.js")], splitting: false, plugins: [packages] });
  // every command loads that chunk: a package it imported statically would load for every command
  for (const [file, out] of Object.entries(bundled.metafile.outputs)) {
    if (!out.inputs["dist/cli/program.js"]) continue;
    const loaded = out.imports.filter((i) => i.external && i.kind === "import-statement" && !i.path.startsWith("node:")).map((i) => i.path);
    if (loaded.length) {
      console.error(`build: ${file}, which every command loads, imports ${loaded.join(", ")}: import it where it is needed (await import)`);
      process.exit(1);
    }
  }
}
