/**
 * Every read command of the CLI can speak JSON: it takes --json, or it prints JSON only (and says so
 * in its description). Checked over the live command tree, so a new read command cannot forget it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildProgram } from "../../src/cli/program.js";
import { completionTree } from "../../src/cli/commands/completion.js";

/** Leaf command names that read and report (as opposed to change state or run services). */
const READ = /^(list|show|verify|check|confirm|inspect|replay|diff|deliveries|status|identify|quote|certify)$/;

test("every read command takes --json or prints JSON only", async () => {
  const program = await buildProgram(["node", "tpmtrust"]);
  const byPath = new Map<string, string>();
  const walk = (cmd: typeof program, path: string[]) => {
    for (const c of cmd.commands) {
      const p = [...path, c.name()];
      byPath.set(p.join(" "), c.description());
      walk(c as typeof program, p);
    }
  };
  walk(program, []);
  const reads = completionTree(program).filter((n) => n.subcommands.length === 0 && READ.test(n.path.split(" ").at(-1) ?? ""));
  assert.ok(reads.length >= 20, `${reads.length} read commands found`);
  const missing = reads.filter((n) => !n.options.some((o) => o.flags.includes("--json")) && !/JSON/.test(byPath.get(n.path) ?? "")).map((n) => n.path);
  assert.deepEqual(missing, []);
});
