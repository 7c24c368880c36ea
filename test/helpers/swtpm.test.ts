import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSwtpm } from "./swtpm.js";
import { ToolError, tpm2, tpm2Raw } from "./tpm2tools.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("cheap swtpm: answers tpm2-tools, four banks, stop() ends the process and removes its state", async () => {
  const tpm = await startSwtpm();
  try {
    assert.equal(tpm.tcti, `swtpm:host=127.0.0.1,port=${tpm.port}`);
    assert.equal(tpm.ctrlPort, tpm.port + 1);
    assert.equal((await tpm2Raw(tpm, "tpm2_getrandom", ["16"])).length, 16);
    const banks = await tpm2(tpm, "tpm2_getcap", ["pcrs"]);
    for (const b of ["sha1", "sha256", "sha384", "sha512"]) assert.match(banks, new RegExp(`${b}:`));
    assert.equal(tpm.caDir, undefined);
  } finally {
    await tpm.stop();
  }
  assert.equal(alive(tpm.pid), false);
  assert.equal(existsSync(tpm.stateDir), false);
});

test("ekCerts: EK certificates in NV chain to the private CA; chosen banks only", async () => {
  const tpm = await startSwtpm({ ekCerts: true, pcrBanks: ["sha1", "sha256"] });
  const dir = mkdtempSync(join(tmpdir(), "swtpm-test-"));
  try {
    assert.ok(tpm.ca && tpm.caDir);
    const root = new X509Certificate(tpm.ca.rootPem);
    const inter = new X509Certificate(tpm.ca.intermediatePem);
    assert.ok(inter.verify(root.publicKey));
    for (const index of ["0x01c00002", "0x01c00016", "0x01c08000"]) {
      await tpm2(tpm, "tpm2_nvread", [index, "-C", "o", "-o", join(dir, "c.der")]);
      const cert = new X509Certificate(readFileSync(join(dir, "c.der")));
      assert.ok(cert.verify(inter.publicKey), `${index} issued by the private CA`);
    }
    const banks = await tpm2(tpm, "tpm2_getcap", ["pcrs"]);
    assert.match(banks, /sha1: \[ 0,/);
    assert.match(banks, /sha256: \[ 0,/);
    assert.match(banks, /sha384: \[ \]/);
  } finally {
    await tpm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("startupClear false: the TPM is off until initialised", async () => {
  const tpm = await startSwtpm({ startupClear: false });
  try {
    await assert.rejects(tpm2(tpm, "tpm2_getrandom", ["4"], { flush: false }), ToolError);
  } finally {
    await tpm.stop();
  }
});
