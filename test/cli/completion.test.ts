/**
 * `tpmtrust completion bash|zsh`: scripts generated from the live commander tree, exercised in real
 * shells — bash through its completion variables, zsh through an interactive shell on a
 * pseudo-terminal (zsh/zpty) where Tab really completes the line.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildProgram } from "../../src/cli/program.js";
import { completionTree } from "../../src/cli/commands/completion.js";
import { cli } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-completion-"));
const work = join(dir, "work");
let bashScript: string;
let zshDir: string;

before(async () => {
  mkdirSync(work);
  writeFileSync(join(work, "ak-public.pem"), "");
  writeFileSync(join(work, "quote.bin"), "");
  const b = await cli(["completion", "bash"]);
  assert.equal(b.code, 0, b.stderr);
  bashScript = join(dir, "tpmtrust.bash");
  writeFileSync(bashScript, b.stdout);
  const z = await cli(["completion", "zsh"]);
  assert.equal(z.code, 0, z.stderr);
  zshDir = join(dir, "zfunc");
  mkdirSync(zshDir);
  writeFileSync(join(zshDir, "_tpmtrust"), z.stdout);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** What bash offers for the words typed so far (the last word is the one being completed). */
function bashComplete(...words: string[]): string[] {
  const script = `source ${JSON.stringify(bashScript)}; COMP_WORDS=(tpmtrust ${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length}; _tpmtrust; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync("bash", ["-c", script], { cwd: work, encoding: "utf8" }).split("\n").filter(Boolean).sort();
}

test("the tree covers every command commander knows, with its options", async () => {
  const program = await buildProgram(["node", "tpmtrust"]);
  const nodes = completionTree(program);
  const root = nodes.find((n) => n.path === "")!;
  assert.deepEqual(root.subcommands.map((s) => s.name), program.commands.map((c) => c.name()));
  const verifyQuote = nodes.find((n) => n.path === "verify quote")!;
  assert.ok(verifyQuote.options.some((o) => o.flags.includes("--ak") && o.takesValue));
  assert.ok(verifyQuote.options.some((o) => o.flags.includes("--json") && !o.takesValue));
  assert.deepEqual(nodes.find((n) => n.path === "admin token create")!.options.find((o) => o.flags.includes("--role"))!.choices, ["admin", "auditor", "enroller"]);
});

test("bash: subcommands per command path, options, option choices, file names for values", async () => {
  assert.deepEqual(bashComplete(""), (await buildProgram(["node", "tpmtrust"])).commands.map((c) => c.name()).sort());
  assert.deepEqual(bashComplete("trust", "allowlist", "a"), ["add"]);
  assert.deepEqual(bashComplete("audit", "verify", "--j"), ["--json"]);
  assert.deepEqual(bashComplete("admin", "token", "create", "--role", ""), ["admin", "auditor", "enroller"]);
  assert.deepEqual(bashComplete("verify", "quote", "--ak", "ak"), ["ak-public.pem"]);
  // options already given do not change the path: subcommands still complete after them
  assert.deepEqual(bashComplete("--help", "trust", "allowlist-dir", "r"), ["remove"]);
  assert.deepEqual(bashComplete("no-such-command", "x"), []);
});

test("zsh: Tab completes commands, options and file arguments in an interactive shell", () => {
  if (!existsSync("/usr/bin/zsh")) throw new Error("zsh not found: install it as root with scripts/setup.sh (apt-get install -y zsh)");
  const driver = `
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=(${zshDir} $fpath); autoload -Uz compinit && compinit -u -D; tpmtrust() { print -r -- "ARGS:$*:END" }; print -r -- RE""ADY'
# wait for conditions, not time: the shell is ready when it printed READY (its echo reads RE""ADY);
# each line is done when its command printed ARGS (ZLE completes on Tab before it reads the Enter)
local out="" chunk
zpty -r z chunk '*READY*'
for line in $'tpmtrust trust allow\\t' $'tpmtrust audit verify --js\\t' $'tpmtrust admin token create --role aud\\t' $'tpmtrust verify quote --ak ak-\\t' $'tpmtrust completi\\t'; do
  zpty -w -n z "$line"$'\\n'
  zpty -r z chunk '*ARGS:*:END*'
  out+=$chunk
done
print -r -- "$out" | grep -a '^ARGS:'
zpty -d z
`;
  const out = execFileSync("zsh", ["-f", "-c", driver], { cwd: work, encoding: "utf8", timeout: 30_000 });
  const lines = out.split(/\r?\n/).filter((l) => l.startsWith("ARGS:"));
  assert.deepEqual(lines, [
    "ARGS:trust allowlist:END",
    "ARGS:audit verify --json:END",
    "ARGS:admin token create --role auditor:END",
    "ARGS:verify quote --ak ak-public.pem:END",
    "ARGS:completion:END",
  ]);
});

test("an unknown shell is a usage error", async () => {
  const r = await cli(["completion", "fish"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ERR_USAGE: completion: unknown shell "fish"; use bash or zsh/);
});
