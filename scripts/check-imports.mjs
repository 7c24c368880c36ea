#!/usr/bin/env node
// Checks the import graph of src/: imports point down the layers of docs/architecture.md, never up
// or sideways to a peer (type-only imports included), and no module imports itself back through
// others at run time (no cycles; an `import type` is erased, so it cannot make one). Exit 1 with every violation listed. Usage: node scripts/check-imports.mjs
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/** Top to bottom. A module may import its own directory and any directory in a lower row. */
export const LAYERS = [
  ["cli"],
  ["agent", "server"],
  ["attest", "provisioning"],
  ["ca"],
  ["keys"],
  ["trust", "tokens"],
  ["store"],
  ["policy"],
  ["verify"],
  ["crypto"],
  ["tpm"],
  ["encoding"],
  ["errors"],
];

const rank = new Map(LAYERS.flatMap((row, i) => row.map((name) => [name, i])));

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** The unit a file belongs to: its top directory under the root, or the file's own name at the top. */
const unitOf = (root, file) => relative(root, file).split("/")[0].replace(/\.ts$/, "");

// static imports and re-exports (any line layout), and dynamic import("…")
const IMPORT_RE = /(?:^|[;\n])\s*(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every .ts file under `root` with the relative imports it makes (paths relative to the working directory). */
export function graph(root = "src") {
  const files = walk(root);
  const edges = new Map(files.map((f) => [f, []]));
  for (const f of files) {
    const text = readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[2] ?? m[3];
      if (!spec.startsWith(".")) continue;
      const target = relative(".", resolve(dirname(f), spec)).replace(/\.js$/, ".ts");
      edges.get(f).push({ target, typeOnly: Boolean(m[1]) });
    }
  }
  return edges;
}

export function violations(edges, root = "src") {
  const out = [];
  for (const [from, tos] of edges) {
    const a = unitOf(root, from);
    for (const { target: to } of tos) {
      if (!edges.has(to)) {
        out.push(`${from} imports ${to}, which does not exist`);
        continue;
      }
      const b = unitOf(root, to);
      if (a === b) continue;
      const ra = rank.get(a), rb = rank.get(b);
      if (ra === undefined) out.push(`${from}: ${root}/${a} has no layer in scripts/check-imports.mjs`);
      else if (rb === undefined) out.push(`${to}: ${root}/${b} has no layer in scripts/check-imports.mjs`);
      else if (rb < ra) out.push(`${from} imports ${to}: upward (${a} is below ${b})`);
      else if (rb === ra) out.push(`${from} imports ${to}: sideways (${a} and ${b} are peers)`);
    }
  }
  // cycles: strongly connected components of more than one file (Tarjan)
  let index = 0;
  const idx = new Map(), low = new Map(), stack = [], on = new Set();
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const { target: w, typeOnly } of edges.get(v) ?? []) {
      if (typeOnly || !edges.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(`import cycle: ${scc.sort().join(" <-> ")}`);
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) strong(v);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const found = violations(graph());
  for (const v of found) console.error(v);
  if (found.length) {
    console.error(`check-imports: ${found.length} violation(s); the layers are in docs/architecture.md`);
    process.exit(1);
  }
  console.log("check-imports: every import points down; no cycles");
}
