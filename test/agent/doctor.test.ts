import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { cli } from "../helpers/cli.js";
import { tpm2 } from "../helpers/tpm2tools.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hintFor } from "../../src/cli/hints.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { offChipEkCertPaths } from "../../src/crypto/offchip-ek.js";
import { createEk, FlushContext, TpmClient } from "../../src/tpm/commands/index.js";
import { RC_MEANINGS, TpmRcError } from "../../src/tpm/rc.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import { fakeEkCertService, intelAnswer } from "../helpers/ek-cert-service.js";
import { testEkCertificate } from "../helpers/ek-trust.js";

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

test("agent doctor: NV use and free slots; off-chip EK certificates of a TPM without NV ones, reachable or not", async () => {
  const service = await fakeEkCertService();
  const cache = mkdtempSync(join(tmpdir(), "tpmtrust-doctor-"));
  try {
    const client = new TpmClient(new SwtpmTransport({ port: bare.port }));
    const ek = await createEk(client, "rsa2048");
    await client.run(FlushContext, { flushHandle: ek.handle });
    await client.close();
    const [path] = offChipEkCertPaths(ek.public, "intel");
    service.routes.set(path, intelAnswer(path, await testEkCertificate(publicKeyFromTpmt(ek.public))));
    const args = ["agent", "doctor", "--tpm", bare.tcti, "--ek-cert-url", service.base, "--ek-cert-vendor", "intel", "--ek-cert-cache", cache];
    const r = await cli([...args, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const d = r.json();
    assert.deepEqual(
      d.offChip.map((c: { kind: string; available: boolean }) => [c.kind, c.available]),
      [
        ["rsa2048", true],
        ["ecc-p256", false],
      ],
    );
    assert.equal(d.offChip[0].url, service.base + path);
    assert.ok(!d.problems.some((p: { problem: string }) => /no EK certificate/.test(p.problem)));
    assert.ok(d.transientSlotsFree >= 1 && d.persistentHandlesFree >= 1);
    assert.equal(typeof d.nv.indexMaxBytes, "number");
    assert.ok(d.nv.indexMaxBytes > 0);

    // the service has nothing (and the cache is gone): the problem names it, with the fix
    service.routes.clear();
    rmSync(cache, { recursive: true, force: true });
    const none = await cli(args);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /off-chip rsa2048: unavailable/);
    assert.match(none.stdout, /problem: no EK certificate in NV, and none from the Intel EK certificate service \(ERR_EK_CERT_UNAVAILABLE: [^\n]*HTTP 404/);
    assert.match(none.stdout, /NV: \d+ indices, \d+ bytes defined/);
    const offline = (await cli([...args, "--offline", "--json"])).json();
    assert.deepEqual(offline.offChip, []);
  } finally {
    await service.close();
    rmSync(cache, { recursive: true, force: true });
  }
});

test("agent doctor: dictionary-attack lockout is shown as TPM_RC_LOCKOUT with its meaning and fix; --rc explains any response code", async () => {
  const t = await startSwtpm();
  try {
    // one failure locks: an NV index with an authorization value and DA protection, read with a wrong one
    await tpm2(t, "tpm2_dictionarylockout", ["-s", "-n", "1", "-t", "600", "-l", "600"]);
    await tpm2(t, "tpm2_nvdefine", ["0x01500001", "-C", "o", "-s", "8", "-a", "authread|authwrite", "-p", "right"]);
    await assert.rejects(tpm2(t, "tpm2_nvread", ["0x01500001", "-C", "0x01500001", "-P", "wrong"]));
    const r = await cli(["agent", "doctor", "--tpm", t.tcti, "--offline", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const d = r.json();
    assert.equal(d.lockout.inLockout, true);
    assert.equal(d.lockout.intervalSeconds, 600);
    const lock = d.problems.find((p: { problem: string }) => p.problem.startsWith("TPM_RC_LOCKOUT: dictionary-attack lockout"));
    assert.ok(lock, JSON.stringify(d.problems));
    assert.match(lock.fix, /retry after 600 s .*tpm2_dictionarylockout --clear-lockout/);
    assert.equal(d.nv.indices >= 1, true);
  } finally {
    await t.stop();
  }
  const rc = await cli(["agent", "doctor", "--rc", "0x921"]);
  assert.equal(rc.code, 0, rc.stderr);
  assert.match(rc.stdout, /^TPM_RC_LOCKOUT: dictionary-attack lockout[^\n]*\nfix: retry after/);
  const fmt1 = (await cli(["agent", "doctor", "--rc", "0x9a2", "--json"])).json();
  assert.deepEqual([fmt1.name, fmt1.subject], ["TPM_RC_BAD_AUTH", { kind: "session", index: 1 }]);
  assert.equal((await cli(["agent", "doctor", "--rc", "lockout"])).code, 2);
  // every named code has a meaning and a fix; a CLI error naming one ends with them as its hint
  for (const [name, m] of Object.entries(RC_MEANINGS)) assert.ok(m.meaning && m.fix, name);
  assert.match(hintFor(new TpmRcError(0x98e, "TPM2_NV_Read")) ?? "", /^TPM_RC_AUTH_FAIL: wrong authorization value/);
});
