#!/usr/bin/env node
// Runs the compiled CLI (dist/, from `npm ci` or `npm run build`; what the published package ships)
// when its build is newer than every file under src/: its bundles (dist/bundle/, made where esbuild
// is installed) or else the compiled modules. Otherwise (no build, or sources edited since) loads
// src/ through tsx, a development dependency.
//
// CommonJS (bin/package.json), like the one-shot bundle: an ES module entry point would start Node's
// ES module loader, a few milliseconds of a one-shot command's start-up.
"use strict";
const { existsSync, readdirSync, readFileSync, statSync } = require("node:fs");
const { createRequire } = require("node:module");
const { dirname, join } = require("node:path");
const { Script } = require("node:vm");

const root = join(__dirname, "..");

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
    return statSync(join(root, "dist/.built")).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Compiles and runs the one-shot bundle (`file`, CommonJS) with the V8 code cache the build wrote
 * beside it, `file`.cache: V8 rejects a cache from another V8 version or other flags, and then
 * compiles the source as if there were none. Returns its exports and the compiled script, whose
 * cache the build writes after a run (scripts/build.mjs).
 */
function loadOneShot(file) {
  const source = readFileSync(file, "utf8");
  let cachedData;
  try {
    cachedData = readFileSync(`${file}.cache`);
  } catch {
    // no cache: compiled from the source
  }
  // the function Node wraps a CommonJS module in
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return { exports: module.exports, script };
}

async function main() {
  if (builtAt() >= newest(join(root, "src"))) {
    // the build removes dist/ first, so a bundle is never older than the rest of dist/
    const oneShot = join(root, "dist/bundle/one-shot.cjs");
    if (existsSync(oneShot) && (await loadOneShot(oneShot).exports.runOneShot(process.argv))) return;
    await import(existsSync(join(root, "dist/bundle/main.js")) ? "../dist/bundle/main.js" : "../dist/cli/main.js");
    return;
  }
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
  const tsconfig = join(root, "tsconfig.json");
  register(existsSync(tsconfig) ? { tsconfig } : {});
  await import("../src/cli/main.ts");
}

if (require.main === module) main();
else module.exports = { loadOneShot }; // for scripts/build.mjs, which writes the code cache
