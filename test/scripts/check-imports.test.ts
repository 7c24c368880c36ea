/** The CI import check (scripts/check-imports.mjs) passes the tree and fails each kind of violation. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
// @ts-expect-error: a plain .mjs script without types
import { graph, violations } from "../../scripts/check-imports.mjs";

type Check = (root: string) => string[];
const check: Check = (root) => violations(graph(root), root);

function tree(files: Record<string, string>): string {
  const root = relative(".", mkdtempSync(join(tmpdir(), "tpmtrust-imports-")));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}

test("the source tree passes", () => {
  assert.deepEqual(check("src"), []);
});

test("upward, sideways, dangling and unlayered imports and run-time cycles fail; type-only cycles do not", () => {
  const root = tree({
    "errors.ts": "export const E = 1;\n",
    "tpm/a.ts": 'import { V } from "../verify/v.js";\nexport const A = V;\n',
    "verify/v.ts": 'import { E } from "../errors.js";\nexport const V = E;\n',
    "agent/x.ts": 'import { S } from "../server/s.js";\nexport const X = S;\n',
    "server/s.ts": 'export const S = 1;\nexport { gone } from "./gone.js";\n',
    "nowhere/n.ts": 'import { E } from "../errors.js";\nexport const N = E;\n',
    "store/p.ts": 'import { Q } from "./q.js";\nexport const P = Q;\n',
    "store/q.ts": 'export const Q = 1;\nexport const later = () => import("./p.js");\n',
    "crypto/t1.ts": 'import type { T2 } from "./t2.js";\nexport type T1 = T2 | 1;\n',
    "crypto/t2.ts": 'import type { T1 } from "./t1.js";\nexport type T2 = Exclude<T1, 1> | 2;\n',
  });
  const found = check(root).map((v) => v.replaceAll(`${root}/`, ""));
  assert.deepEqual(found.sort(), [
    "agent/x.ts imports server/s.ts: sideways (agent and server are peers)",
    "import cycle: store/p.ts <-> store/q.ts",
    "nowhere/n.ts: nowhere has no layer in scripts/check-imports.mjs",
    "server/s.ts imports server/gone.ts, which does not exist",
    "tpm/a.ts imports verify/v.ts: upward (tpm is below verify)",
  ]);
});
