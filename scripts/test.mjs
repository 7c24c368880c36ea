#!/usr/bin/env node
// Runs every test file under test/ with node's test runner through tsx.
// Node 20 neither expands quoted globs nor finds .ts files by itself, so the list is explicit.
// Usage: npm test [-- substring …]   (only files whose path contains one of the substrings)
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("test").filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 4}`, ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
