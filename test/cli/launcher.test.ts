/**
 * bin/tpmtrust.js picks what to run: the build in dist/ when its stamp is newer than every file
 * under src/ (its bundles when there are: the one-shot bundle for the command lines it accepts), else
 * src/ through tsx. Checked on a scratch installation whose entry points say which one ran.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

test("the launcher runs dist/ (its bundles if any) when its build is newer than every source, src/ through tsx otherwise", () => {
  const root = mkdtempSync(join(tmpdir(), "tpmtrust-launcher-"));
  try {
    for (const d of ["bin", "dist/cli", "src/cli/commands"]) mkdirSync(join(root, d), { recursive: true });
    for (const f of ["bin/tpmtrust.js", "bin/package.json"]) copyFileSync(resolve(f), join(root, f));
    symlinkSync(resolve("node_modules"), join(root, "node_modules"));
    writeFileSync(join(root, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(join(root, "dist/cli/main.js"), 'console.log("dist");\n');
    writeFileSync(join(root, "src/cli/main.ts"), 'const from: string = "src";\nconsole.log(from);\n');
    writeFileSync(join(root, "src/cli/commands/a.ts"), "export {};\n");
    const run = (...args: string[]) => execFileSync(process.execPath, [join(root, "bin/tpmtrust.js"), ...args], { encoding: "utf8" }).trim();
    const at = (path: string, seconds: number) => utimesSync(join(root, path), seconds, seconds);
    const t = Math.floor(Date.now() / 1000);
    for (const f of ["src/cli/main.ts", "src/cli/commands/a.ts"]) at(f, t - 100);

    assert.equal(run(), "src", "no build yet");
    writeFileSync(join(root, "dist/.built"), "");
    at("dist/.built", t - 50);
    assert.equal(run(), "dist", "the build is newer than every source");
    at("src/cli/commands/a.ts", t - 10);
    assert.equal(run(), "src", "a source (in a subfolder) edited after the build");
    at("dist/.built", t);
    assert.equal(run(), "dist", "rebuilt");
    mkdirSync(join(root, "dist/bundle"));
    writeFileSync(join(root, "dist/bundle/main.js"), 'console.log("bundle");\n');
    assert.equal(run(), "bundle", "the build's bundle (where esbuild is installed)");
    writeFileSync(join(root, "dist/bundle/one-shot.cjs"), 'exports.runOneShot = async (argv) => argv[2] === "verify" && (console.log("one-shot"), true);\n');
    assert.equal(run("verify"), "one-shot", "the one-shot bundle, for a command line it accepts");
    assert.equal(run("serve"), "bundle", "the bundle, for one the one-shot bundle declines");
    writeFileSync(join(root, "dist/bundle/one-shot.cjs.cache"), "not V8's code cache");
    assert.equal(run("verify"), "one-shot", "a code cache V8 rejects: compiled from the source");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
