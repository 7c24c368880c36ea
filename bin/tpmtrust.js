#!/usr/bin/env node
// Runs the compiled CLI (dist/, from `npm ci` or `npm run build`) when its build is newer than every
// file under src/; otherwise (no build, or sources edited since) loads src/ through tsx.
import { readdirSync, statSync } from "node:fs";
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
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}
