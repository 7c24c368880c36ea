import { test } from "node:test";
import assert from "node:assert/strict";
import { isTpmTrustError } from "../../src/errors.js";
import { evaluateSoftware, learnSoftware, parseSoftwarePolicy } from "../../src/policy/index.js";
import { parseEventLog, selfVerifyEventLog, verifyEventLog } from "../../src/verify/eventlog/index.js";
import { fixture, quotedOf } from "../verify/eventlog/build.js";

const RHEL = "rhel8-gce-uefi.bin";
const log = (name: string) => parseEventLog(fixture(name));

test("accepted software from a log: boot loaders, kernel (EFI image and GRUB file), initrd", () => {
  const p = learnSoftware("rhel-8.3", [log(RHEL)]);
  assert.deepEqual(p.bootloaders.map((b) => [b.role, b.path]), [["shim", "\\EFI\\redhat\\shimx64.efi"], ["grub", "\\EFI\\redhat\\grubx64.efi"]]);
  assert.deepEqual(p.kernels.map((k) => [k.pcr, k.path]), [[4, undefined], [9, "(hd0,gpt2)/boot/vmlinuz-4.18.0-240.22.1.el8_3.x86_64"]]);
  assert.deepEqual(p.initrds.map((k) => k.path), ["(hd0,gpt2)/boot/initramfs-4.18.0-240.22.1.el8_3.x86_64.img"]);
  assert.deepEqual(Object.keys(p.kernels[0].digests), ["sha1", "sha256", "sha384"]);
  const doc = parseSoftwarePolicy(JSON.parse(JSON.stringify(p)));
  assert.deepEqual(evaluateSoftware(doc, verifyEventLog(fixture(RHEL), quotedOf(RHEL))), { pass: true, policy: "rhel-8.3", diffs: [] });
});

test("learning from several logs takes the union, without duplicates", () => {
  const p = learnSoftware("fleet", [log(RHEL), log(RHEL), log("laptop-startup-locality3.bin"), log("windows-option-rom-sha1.bin")]);
  assert.deepEqual(p.bootloaders.map((b) => b.role), ["shim", "grub", "grub", "windows-boot-manager"]);
  assert.equal(p.kernels.length, 2);
});

test("software not in the policy is named with its digest and meaning", () => {
  const p = learnSoftware("rhel-8.3", [log(RHEL)]);
  const r = evaluateSoftware(p, selfVerifyEventLog(log("laptop-startup-locality3.bin")));
  assert.equal(r.pass, false);
  assert.deepEqual(r.diffs.map((d) => [d.pcr, d.kind, d.record, d.meaning]), [
    [9, "pcr-not-verified", undefined, "PCR 9 was not verified by the quote, so its boot software cannot be judged"],
    [4, "unexpected", 28, "bootloader is not accepted software (bootloader digest differs)"],
  ]);
  assert.equal(r.diffs[1].description, "bootloader \\EFI\\DEBIAN\\GRUBX64.EFI");
  assert.equal(r.diffs[1].actual?.sha256, "0e83d576d2b72bef68479d9d15a16ca20ac86f6c6aed17c78ed9dab5c781e49f");
});

test("a kernel digest that differs fails even with the boot loaders accepted", () => {
  const p = learnSoftware("rhel-8.3", [log(RHEL)]);
  p.kernels[1].digests.sha256 = "00".repeat(32);
  const r = evaluateSoftware(p, verifyEventLog(fixture(RHEL), quotedOf(RHEL)));
  assert.deepEqual(r.diffs.map((d) => [d.pcr, d.record, d.meaning]), [[9, 76, "kernel is not accepted software (kernel digest differs)"]]);
});

test("software documents: strict schema and version", () => {
  const p = JSON.parse(JSON.stringify(learnSoftware("x", [log(RHEL)])));
  for (const bad of [{ ...p, version: 7 }, { ...p, kernels: [{ pcr: 4, role: "kernel" }] }, { ...p, bootloaders: [{ ...p.bootloaders[0], pcr: 99 }] }, { ...p, kind: "tpmtrust.baseline" }]) {
    assert.throws(() => parseSoftwarePolicy(bad), (e) => isTpmTrustError(e) && e.code === "ERR_VALIDATION");
  }
});
