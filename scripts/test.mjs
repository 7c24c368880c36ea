#!/usr/bin/env node
// Runs every test file under test/ with node's test runner through tsx, each file in its own
// `node --test` process, TEST_CONCURRENCY (4) at a time. A file's output is printed whole when it
// ends, under its path and time. No file can stall the suite: a file runs at most TEST_FILE_TIMEOUT
// seconds (420); past that it and every process it started are stopped and it counts as failed,
// with the output it had. A file whose tests are done exits even if something it opened is still
// alive (--test-force-exit). With TEST_OUTPUT=brief (the default when CI is set) a passing file
// is one line; a failing file is always printed whole.
// Node 20 neither expands quoted globs nor finds .ts files by itself, so the list is explicit.
// Usage: npm test [-- substring …]   (only files whose path contains one of the substrings)
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const positive = (name, fallback) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`${name} must be a positive number`);
    process.exit(2);
  }
  return v;
};
const concurrency = Math.max(1, Math.floor(positive("TEST_CONCURRENCY", 4)));
const fileTimeout = positive("TEST_FILE_TIMEOUT", 420);
const brief = (process.env.TEST_OUTPUT ?? (process.env.CI ? "brief" : "full")) === "brief";

const filters = process.argv.slice(2);
const files = walk("test").filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}

const scratch = mkdtempSync(join(tmpdir(), "tpmtrust-test-run-"));
let fileNo = 0;

/** The tests a file had started and not ended, from its running-reporter log (innermost last). */
function stillRunning(log) {
  let text = "";
  try {
    text = readFileSync(log, "utf8");
  } catch {
    return [];
  }
  const open = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("+ ")) open.push(line.slice(2));
    else if (line.startsWith("- ")) open.splice(open.lastIndexOf(line.slice(2)), 1);
  }
  return open;
}

const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
const failed = [];
const started = Date.now();

/** Sends `signal` to the file's process group: its node processes and the servers its tests started. */
function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function runFile(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const running = join(scratch, `${fileNo++}.log`);
    const args = ["--import", "tsx", "--test", "--test-force-exit", "--test-reporter=spec", "--test-reporter-destination=stdout"];
    args.push("--test-reporter=./scripts/running-reporter.mjs", `--test-reporter-destination=${running}`, file);
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out = [];
    child.stdout.on("data", (c) => out.push(c));
    child.stderr.on("data", (c) => out.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup(child.pid, "SIGTERM");
      setTimeout(() => signalGroup(child.pid, "SIGKILL"), 5000).unref();
    }, fileTimeout * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      signalGroup(child.pid, "SIGKILL"); // anything of this file's still running
      const text = Buffer.concat(out).toString("utf8");
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      let ok = code === 0;
      const counts = {};
      for (const key of Object.keys(totals)) {
        const m = new RegExp(`^ℹ ${key} (\\d+)$`, "m").exec(text);
        counts[key] = m ? Number(m[1]) : 0;
        totals[key] += counts[key];
      }
      const summaryAt = text.search(/^ℹ tests \d+$/m);
      let report = summaryAt >= 0 ? text.slice(0, summaryAt).trimEnd() : text.trimEnd();
      if (timedOut) {
        ok = false;
        const open = stillRunning(running).filter((name) => !name.endsWith(file));
        report += `\n✖ ${file} was still running after ${fileTimeout} s and was stopped`;
        report += open.length > 0 ? `, in: ${open.join(" › ")}` : " (after its last test)";
      } else if (!ok) {
        report += `\n✖ ${file} exited with ${signal ?? `code ${code}`}`;
      }
      if (!ok) failed.push(file);
      if (ok && brief) {
        const notRun = counts.skipped + counts.todo > 0 ? `, ${counts.skipped + counts.todo} not run` : "";
        console.log(`✔ ${file}: ${counts.pass} passed${notRun} (${secs} s)`);
      } else {
        console.log(`── ${file} (${secs} s)${ok ? "" : " FAILED"}\n${report}\n`);
      }
      resolve();
    });
  });
}

const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    while (queue.length > 0) await runFile(queue.shift());
  }),
);

rmSync(scratch, { recursive: true, force: true });
const lines = Object.entries(totals).map(([k, v]) => `ℹ ${k} ${v}`);
console.log([`ℹ files ${files.length}`, ...lines, `ℹ duration_s ${((Date.now() - started) / 1000).toFixed(1)}`].join("\n"));
if (failed.length > 0) {
  console.log(`\nfailed files:\n${failed.map((f) => `  ${f}`).join("\n")}`);
  process.exit(1);
}
