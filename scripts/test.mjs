#!/usr/bin/env node
// Runs every test file under test/ with node's test runner through tsx (reflect-metadata, which
// @peculiar/x509 needs, loaded first, as src/cli/program.ts loads it for the CLI), each file in its own
// `node --test` process group, TEST_CONCURRENCY (4) at a time, and prints a file's output when it
// ends. No file can stall the suite or pass without running its tests:
// - a file running past TEST_FILE_TIMEOUT seconds (420) is stopped with every process it started
//   and fails, naming the test it was in;
// - a file that has registered no test TEST_LOAD_TIMEOUT seconds (120) after it started is stuck
//   loading its modules: it is stopped and run once more, and says so;
// - a file that ends before every test it registered has run fails, and so does one that skips a
//   test (skip or todo). (Hence no --test-force-exit:
//   on Node 20 it sometimes ends a file early and still reports success.)
// With TEST_OUTPUT=brief (the default when CI is set) a passing file is one line; a failing file is
// always printed whole.
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
const loadTimeout = positive("TEST_LOAD_TIMEOUT", 120);
const brief = (process.env.TEST_OUTPUT ?? (process.env.CI ? "brief" : "full")) === "brief";

const filters = process.argv.slice(2);
const files = walk("test").filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}

const scratch = mkdtempSync(join(tmpdir(), "tpmtrust-test-run-"));
let fileNo = 0;

/** The lines of a file's running-reporter log: "=" registered, "+" began, "-" ended, and the test's name. */
function events(log) {
  let text = "";
  try {
    text = readFileSync(log, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line.length > 2)
    .map((line) => ({ kind: line[0], name: line.slice(2) }));
}

/** The tests that had begun and not ended, of a file's events (innermost last). */
function stillRunning(evts) {
  const open = [];
  for (const e of evts) {
    if (e.kind === "+") open.push(e.name);
    else if (e.kind === "-") open.splice(open.lastIndexOf(e.name), 1);
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

// Each file runs in its own process group, out of reach of the terminal's Ctrl-C: pass it on.
const live = new Set();
for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]]) {
  process.on(sig, () => {
    for (const pid of live) signalGroup(pid, "SIGTERM");
    rmSync(scratch, { recursive: true, force: true });
    process.exit(code);
  });
}

/** One run of a file: its output and how it ended. */
function attempt(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const running = join(scratch, `${fileNo++}.log`);
    const args = ["--import", "reflect-metadata", "--import", "tsx", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout"];
    args.push("--test-reporter=./scripts/running-reporter.mjs", `--test-reporter-destination=${running}`, file);
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    live.add(child.pid);
    const out = [];
    child.stdout.on("data", (c) => out.push(c));
    child.stderr.on("data", (c) => out.push(c));
    let stopped; // "load" | "time"
    const stop = (why) => {
      stopped = why;
      signalGroup(child.pid, "SIGTERM");
      setTimeout(() => signalGroup(child.pid, "SIGKILL"), 5000).unref();
    };
    const timer = setTimeout(() => stop("time"), fileTimeout * 1000);
    // A file registers its tests as it loads, within seconds; one that has registered none after
    // TEST_LOAD_TIMEOUT is stuck loading its modules (seen, rarely, with Node 20's loader hooks).
    const loadTimer = setTimeout(() => {
      if (!events(running).some((e) => e.kind === "=" && !e.name.endsWith(file))) stop("load");
    }, loadTimeout * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(loadTimer);
      signalGroup(child.pid, "SIGKILL"); // anything of this file's still running
      live.delete(child.pid);
      resolve({ text: Buffer.concat(out).toString("utf8"), code, signal, stopped, running, secs: (Date.now() - t0) / 1000 });
    });
  });
}

async function runFile(file) {
  let r = await attempt(file);
  let retried = "";
  if (r.stopped === "load") {
    retried = `(its first run registered no test in ${loadTimeout} s and was stopped; this is its second run)\n`;
    r = await attempt(file);
  }
  // every test the file registered must have run: a file must not end early and still pass
  const own = events(r.running).filter((e) => !e.name.endsWith(file));
  const registered = own.filter((e) => e.kind === "=").length;
  const unrun = registered - own.filter((e) => e.kind === "-").length;
  const counts = {};
  for (const key of Object.keys(totals)) {
    const m = new RegExp(`^ℹ ${key} (\\d+)$`, "m").exec(r.text);
    counts[key] = m ? Number(m[1]) : 0;
    totals[key] += counts[key];
  }
  const skipped = counts.skipped + counts.todo;
  const ok = r.code === 0 && !r.stopped && unrun === 0 && skipped === 0;
  const summaryAt = r.text.search(/^ℹ tests \d+$/m);
  let report = retried + (summaryAt >= 0 ? r.text.slice(0, summaryAt).trimEnd() : r.text.trimEnd());
  if (r.stopped === "load") {
    report += `\n✖ ${file} registered no test within ${loadTimeout} s, twice, and was stopped`;
  } else if (r.stopped === "time") {
    const open = stillRunning(own);
    report += `\n✖ ${file} was still running after ${fileTimeout} s and was stopped`;
    report += open.length > 0 ? `, in: ${open.join(" › ")}` : " (after its last test)";
  } else if (r.code !== 0) {
    report += `\n✖ ${file} exited with ${r.signal ?? `code ${r.code}`}`;
  } else if (unrun > 0) {
    report += `\n✖ ${file} ended with ${unrun} of its ${registered} tests never run`;
  } else if (skipped > 0) {
    report += `\n✖ ${file} skipped ${skipped} test(s) (skip or todo): a test that does not run proves nothing`;
  }
  if (!ok) failed.push(file);
  const secs = r.secs.toFixed(1);
  if (ok && brief && !retried) {
    console.log(`✔ ${file}: ${counts.pass} passed (${secs} s)`);
  } else {
    console.log(`── ${file} (${secs} s)${ok ? "" : " FAILED"}\n${report}\n`);
  }
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
