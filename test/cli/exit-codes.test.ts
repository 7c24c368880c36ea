/**
 * Exit codes come from the one error table: 1 only when something was judged and refused, 2 when
 * nothing was (unusable input, no TPM, no service). A missing TPM is exit 2 from every command.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERRORS, type ErrorClass } from "../../src/errors.js";
import { cli } from "../helpers/cli.js";

test("every code's exit code follows its class: 2 exactly when nothing was judged", () => {
  const noVerdict: ErrorClass[] = ["input", "unavailable", "internal"];
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.equal(spec.exit, noVerdict.includes(spec.class) ? 2 : 1, code);
    assert.ok(spec.http >= 400 && spec.http < 600, code);
  }
});

test("a missing TPM exits 2 with ERR_TPM_TRANSPORT from every command that uses one", async () => {
  const state = mkdtempSync(join(tmpdir(), "tpmtrust-exit-"));
  const tpm = ["--tpm", "/dev/no-such-tpm0"];
  const server = ["--server", "http://127.0.0.1:1"];
  const commands = [
    ["agent", "identify", ...tpm],
    ["agent", "register", ...server, ...tpm, "--state-dir", state],
    ["agent", "enroll-cert", "--template", "t", "--subject", "CN=h", ...server, ...tpm, "--state-dir", state],
    ["agent", "acme", "--directory", "http://127.0.0.1:1/acme/t/directory", ...tpm, "--state-dir", state],
    ["device", "provision", "--id-scope", "s", ...server, ...tpm],
  ];
  for (const args of commands) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error ERR_TPM_TRANSPORT: cannot open TPM device \/dev\/no-such-tpm0/m, args.join(" "));
  }
});
