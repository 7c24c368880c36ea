import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { cli } from "../helpers/cli.js";
import { tpm2 } from "../helpers/tpm2tools.js";

let bare: Swtpm;
let provisioned: Swtpm;

before(async () => {
  [bare, provisioned] = await Promise.all([startSwtpm({ pcrBanks: ["sha1"] }), startSwtpm({ ekCerts: true })]);
});
after(async () => {
  await bare?.stop();
  await provisioned?.stop();
});

test("agent doctor --json: a provisioned swtpm has EK certificates and a SHA-256 bank; a bare one gets each problem with its fix", async () => {
  const good = await cli(["agent", "doctor", "--tpm", provisioned.tcti, "--json"]);
  assert.equal(good.code, 0, good.stderr);
  const g = JSON.parse(good.stdout);
  assert.equal(g.tpm.family, "2.0");
  assert.ok(g.pcrBanks.includes("sha256"));
  assert.deepEqual(
    g.eks.map((e: { kind: string }) => e.kind),
    ["rsa2048", "ecc-p384"],
  );
  assert.equal(g.lockout.inLockout, false);
  assert.ok(!g.problems.some((p: { problem: string }) => /EK certificate|SHA-256/.test(p.problem)));

  // owner authorization set, SHA-1 bank only, no EK certificate, no SRK
  await tpm2(bare, "tpm2_changeauth", ["-c", "o", "ownerpw"]);
  const r = await cli(["agent", "doctor", "--tpm", bare.tcti, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  assert.equal(d.owned, true);
  assert.deepEqual(d.pcrBanks, ["sha1"]);
  const problems = d.problems.map((p: { problem: string }) => p.problem).join("\n");
  assert.match(problems, /no SHA-256 PCR bank/);
  assert.match(problems, /no EK certificate in NV/);
  assert.match(problems, /no SRK at 0x81000001/);
  for (const p of d.problems) assert.ok(p.fix.length > 0);
  const text = await cli(["agent", "doctor", "--tpm", bare.tcti]);
  assert.match(text.stdout, /problem: no SHA-256 PCR bank[^\n]*\n  fix: /);
});
