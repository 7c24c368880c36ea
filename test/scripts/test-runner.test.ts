/** The test runner (scripts/test.mjs) fails a file that skips a test, and passes one that runs them all. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const RUNNER = resolve("scripts/test.mjs");

/** Runs the runner in a scratch project holding the given test files. */
function runWith(files: Record<string, string>): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-runner-"));
  mkdirSync(join(dir, "test"));
  mkdirSync(join(dir, "scripts"));
  symlinkSync(resolve("scripts/running-reporter.mjs"), join(dir, "scripts/running-reporter.mjs"));
  symlinkSync(resolve("node_modules"), join(dir, "node_modules"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, "test", name), text);
  const { NODE_TEST_CONTEXT: _nested, ...env } = process.env; // else the inner node --test runs nothing
  return new Promise((done) => {
    execFile(process.execPath, [RUNNER], { cwd: dir, env: { ...env, TEST_OUTPUT: "full" } }, (err, stdout, stderr) => {
      done({ code: err ? Number(err.code) : 0, out: stdout + stderr });
    });
  });
}

const header = 'import { test } from "node:test";\n';

test("a file that skips or leaves a todo fails; a file that runs every test passes", async () => {
  const r = await runWith({
    "runs.test.ts": `${header}test("runs", () => {});\n`,
    "skips.test.ts": `${header}test("runs", () => {});\ntest("skipped", { skip: true }, () => {});\n`,
    "todo.test.ts": `${header}test.todo("later");\n`,
  });
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /✖ test\/skips\.test\.ts skipped 1 test/);
  assert.match(r.out, /✖ test\/todo\.test\.ts skipped 1 test/);
  const failedList = r.out.slice(r.out.indexOf("failed files:"));
  assert.match(failedList, /test\/skips\.test\.ts/);
  assert.match(failedList, /test\/todo\.test\.ts/);
  assert.doesNotMatch(failedList, /runs\.test\.ts/);
});
