#!/usr/bin/env node
// Compiles src/ into dist/ (what bin/tpmtrust.js runs) and stamps dist/.built when the whole build
// succeeded. Run by `npm ci` (prepare), `npm pack`/`npm publish` (the package ships dist/, not src/)
// and `npm run build`. Where TypeScript is not installed (npm ci --omit=dev) it leaves dist/ alone.
//
// Then, where esbuild is installed, it bundles the CLI into dist/bundle/, which bin/tpmtrust.js runs:
// from dist/cli/, a command resolves, reads and links dozens of small modules one by one.
// - one-shot.cjs: `--version` and the one-shot commands (`verify …`, `eventlog …`, operators script
//   them once per file), CommonJS in one file with a V8 code cache (one-shot.cjs.cache): no ES module
//   loader, and compiled code read instead of parsed. Dynamic imports become lazily run parts of it.
// - main.js: every command (the one-shot bundle declines the others), ES modules with code splitting:
//   each dynamic import is a chunk loaded when asked for.
// Both keep packages in node_modules (native addons, files read beside their modules) except
// commander. Without esbuild the CLI runs from dist/ as compiled.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { relative, resolve } from "node:path";

/**
 * The command modules of program.ts's ONE_SHOT: the one-shot bundle has the others as modules that
 * throw, as program.ts never loads them for a command line it accepts (isOneShot).
 */
const ONE_SHOT = ["verify", "credential", "eventlog"].map((m) => resolve(`dist/cli/commands/${m}.js`));

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
  const common = {
    bundle: true,
    platform: "node",
    target: "node20",
    sourcemap: true,
    sourcesContent: false,
    // no comments: fewer bytes to read and parse, and a chunk with any non-ASCII character in a
    // comment is held as a two-byte string; names are kept for stack traces
    minifyWhitespace: true,
    logLevel: "warning",
    metafile: true,
  };
  // packages load from node_modules as they are, except commander, which every command loads; it
  // requires node:child_process (and, with it, net and streams) as it loads, only to spawn executable
  // subcommands, which tpmtrust has none of: the bundles give it node:child_process on first use
  const packages = {
    name: "packages",
    setup(b) {
      b.onResolve({ filter: /^(node:)?child_process$/ }, (a) => (/[/\\]node_modules[/\\]commander[/\\]/.test(a.importer) ? { path: "child_process", namespace: "on-first-use" } : undefined));
      b.onLoad({ filter: /.*/, namespace: "on-first-use" }, () => ({ contents: 'module.exports = new Proxy({}, { get: (_, name) => require("node:child_process")[name] });', loader: "js" }));
      b.onResolve({ filter: /^[^./]/ }, (a) => (a.path === "commander" ? undefined : { path: a.path, external: true }));
    },
  };
  const esm = {
    ...common,
    outdir: "dist/bundle",
    entryNames: "[name]",
    format: "esm",
    // commander (CommonJS) requires Node's modules: the bundle's require resolves them
    banner: { js: 'import { createRequire as __createRequire } from "node:module";\nconst require = __createRequire(import.meta.url);' },
    plugins: [packages],
  };
  await build({ ...esm, entryPoints: [resolve("dist/cli/main.js")], splitting: true });
  // the quote verification threads `serve` starts load quote-worker.js from beside
  // src/attest/quote-verifier.ts's code: one file of its own, which leaves the CLI's chunks as they are
  await build({ ...esm, entryPoints: [resolve("dist/attest/quote-worker.js")], splitting: false });
  const notOneShot = {
    name: "not-one-shot",
    setup(b) {
      b.onResolve({ filter: /\/commands\/[^/]+\.js$/ }, (a) => {
        const path = resolve(a.resolveDir, a.path);
        return ONE_SHOT.includes(path) ? undefined : { path, namespace: "not-one-shot" };
      });
      b.onLoad({ filter: /.*/, namespace: "not-one-shot" }, (a) => ({ contents: `throw new Error(${JSON.stringify(`${relative(".", a.path)} is not in the one-shot bundle`)});` }));
    },
  };
  const cjs = await build({
    ...common,
    entryPoints: [resolve("dist/cli/one-shot.js")],
    outfile: "dist/bundle/one-shot.cjs",
    format: "cjs",
    // strict as the ES modules it was made from; import.meta.url (createRequire) is the bundle's
    banner: { js: '"use strict";\nconst __importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
    define: { "import.meta.url": "__importMetaUrl" },
    plugins: [notOneShot, packages],
  });
  // a package imported statically by the modules every command loads (the one-shot entry point,
  // program.js and theirs) would load for every command
  const { inputs } = cjs.metafile;
  const loaded = new Set(["dist/cli/one-shot.js", "dist/cli/program.js"]);
  for (const file of loaded) {
    for (const i of inputs[file].imports) {
      if (i.kind !== "import-statement") continue;
      if (!i.external) loaded.add(i.path);
      else if (!i.path.startsWith("node:")) {
        console.error(`build: ${file}, which every command loads, imports ${i.path}: import it where it is needed (await import)`);
        process.exit(1);
      }
    }
  }
  // bin/tpmtrust.js runs the one-shot bundle without a callback for import() (Node 20's default one
  // is experimental and says so on stderr): a package it imports dynamically would fail to load, but
  // for reflect-metadata, which program.js loads only for the other modules
  for (const [file, input] of Object.entries(inputs)) {
    for (const i of input.imports) {
      if (i.kind === "dynamic-import" && i.external && !(file === "dist/cli/program.js" && i.path === "reflect-metadata")) {
        console.error(`build: ${file} imports ${i.path} dynamically, which the one-shot bundle cannot: import it statically in a module loaded when needed`);
        process.exit(1);
      }
    }
  }
  codeCache();
}

/**
 * Writes dist/bundle/one-shot.cjs.cache, V8's code for the one-shot bundle once it has run `--help` of
 * each one-shot command (commander and the top level of every module such a command loads) and, in a
 * checkout (test/fixtures/), a quote verification, a structure inspection and event-log replays of
 * the test fixtures, some of which bench/startup.ts also times: the cache holds the functions a run
 * compiled; any other is compiled from the source when first called. Made by a Node started without
 * flags, as bin/tpmtrust.js is (V8 rejects a cache made with other flags or another V8), compiling
 * the bundle as bin/tpmtrust.js does; a warm-up run that fails fails the build.
 */
function codeCache() {
  const helps = [["verify", "quote"], ["verify", "certify"], ["tpm", "inspect"], ["makecredential"], ["eventlog", "replay"], ["eventlog", "show"], ["eventlog", "diff"]];
  const fx = (p) => resolve("test/fixtures", p);
  const fixtures = existsSync(fx("quotes")) && existsSync(fx("eventlogs"));
  const runs = [
    ...helps.map((h) => [...h, "--help"]),
    ...(fixtures
      ? [
          ["verify", "quote", "--ak", fx("quotes/swtpm-pcr16-ak.pem"), "--ak-trusted", "--attest", fx("quotes/swtpm-pcr16-quote.bin"), "--signature", fx("quotes/swtpm-pcr16-sig.bin"), "--pcrs", fx("quotes/swtpm-pcr16-pcr.bin")],
          ["tpm", "inspect", fx("quotes/swtpm-pcr16-quote.bin")],
          ...readdirSync(fx("eventlogs"))
            .filter((f) => f.endsWith(".bin"))
            .map((f) => ["eventlog", "replay", fx(`eventlogs/${f}`)]),
        ]
      : []),
  ];
  const warm = `
const { writeFileSync } = require("node:fs");
const file = ${JSON.stringify(resolve("dist/bundle/one-shot.cjs"))};
const { exports, script } = require(${JSON.stringify(resolve("bin/tpmtrust.js"))}).loadOneShot(file);
(async () => {
  for (const args of ${JSON.stringify(runs)}) {
    await exports.runOneShot(["node", "tpmtrust", ...args]);
    if (process.exitCode) throw new Error(\`tpmtrust \${args.join(" ")} exited \${process.exitCode}\`);
  }
  writeFileSync(file + ".cache", script.createCachedData());
})();`;
  const r = spawnSync(process.execPath, ["-e", warm], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) {
    console.error("build: the one-shot bundle's warm-up for its code cache failed");
    process.exit(r.status ?? 1);
  }
}
