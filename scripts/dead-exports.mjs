#!/usr/bin/env node
// Lists value exports (functions, constants, classes) of src/ that nothing imports: no other module
// of src/, test/, bench/ or scripts/ names them (one used only inside its own file is listed too:
// drop its `export`). Types are left out: a type in an exported signature is exported with it.
// Heuristic, ts-prune style: named imports and re-exports by name; `import *` and dynamic imports
// count every export of their target as used. Usage: node scripts/dead-exports.mjs (exit 1 if any)
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const walk = (dir) =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mjs)$/.test(p) ? [p] : [];
  });
const strip = (t) => t.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
const files = ["src", "test", "bench", "scripts"].flatMap((d) => walk(d));
const exportsOf = new Map();
for (const f of files.filter((f) => f.startsWith("src/"))) {
  const names = new Set();
  const t = strip(readFileSync(f, "utf8"));
  for (const m of t.matchAll(/^export\s+(?:declare\s+)?(?:async\s+)?(?:function\*?|const|let|class|enum|abstract\s+class)\s+([A-Za-z_$][\w$]*)/gm)) names.add(m[1]);
  for (const m of t.matchAll(/^export\s+\{([^}]*)\}(?!\s*from)/gm)) for (const n of m[1].split(",")) if (n.trim() && !n.trim().startsWith("type ")) names.add(n.trim().split(/\s+as\s+/).pop());
  exportsOf.set(f, names);
}
const used = new Map([...exportsOf.keys()].map((f) => [f, new Set()]));
const all = new Set();
for (const f of files) {
  const t = strip(readFileSync(f, "utf8"));
  for (const m of t.matchAll(/(?:import|export)\s+(type\s+)?(\*\s+as\s+\w+|\*|\{[^}]*\}|[\w$]+(?:\s*,\s*\{[^}]*\})?)\s+from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
    const spec = m[3] ?? m[4];
    if (!spec.startsWith(".")) continue;
    const target = relative(".", resolve(dirname(f), spec)).replace(/\.js$/, ".ts");
    if (!used.has(target)) continue;
    if (m[4] || m[2].startsWith("*")) {
      all.add(target);
      continue;
    }
    for (const n of (m[2].match(/\{([^}]*)\}/)?.[1] ?? "").split(",")) if (n.trim()) used.get(target).add(n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]);
  }
}
/** The entry points bin/tpmtrust.js runs (one-shot.ts as its bundle), which nothing imports. */
const ENTRY_POINTS = ["src/cli/main.ts", "src/cli/one-shot.ts"];
let n = 0;
for (const [f, names] of exportsOf) {
  if (all.has(f) || ENTRY_POINTS.some((e) => f.endsWith(e))) continue;
  for (const name of names) if (!used.get(f).has(name) && name !== "default") {
    console.log(`${f}: ${name}`);
    n++;
  }
}
if (n) console.error(`dead-exports: ${n} export(s) nothing imports`);
process.exitCode = n ? 1 : 0;
