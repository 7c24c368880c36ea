import { test } from "node:test";
import assert from "node:assert/strict";
import { interpretEvents, parseEventLog, replayEventLog, verifyEventLog, type VerifiedEventLog } from "../../../src/verify/eventlog/index.js";
import { fixture, quotedOf, split } from "./build.js";

/** A log verified against its own replay: every PCR it touches becomes verified (the shape a quote of all of them gives). */
function selfVerified(bytes: Buffer): VerifiedEventLog {
  return verifyEventLog(bytes, replayEventLog(parseEventLog(bytes)).pcrs);
}

test("RHEL on GCE: Secure Boot on, databases, authorities and the shim → GRUB → kernel chain", () => {
  const i = interpretEvents(verifyEventLog(fixture("rhel8-gce-uefi.bin"), quotedOf("rhel8-gce-uefi.bin")).events);
  const sb = i.secureBoot;
  assert.equal(sb.enabled, true);
  assert.deepEqual(sb.databases.map((d) => d.name), ["PK", "KEK", "db", "dbx"]);
  const db = sb.databases.find((d) => d.name === "db")!;
  assert.deepEqual(db.certificates.map((c) => c.subject?.replace(/.*CN=/, "")), ["Microsoft Corporation UEFI CA 2011", "Microsoft Windows Production PCA 2011"]);
  assert.equal(sb.databases.find((d) => d.name === "dbx")!.hashes.sha256, 183);
  assert.deepEqual(
    sb.authorities.map((a) => [a.variable, a.certificate?.subject?.replace(/.*CN=([^,]*).*/, "$1"), a.before]),
    [["db", "Microsoft Corporation UEFI CA 2011", 23], ["Shim", "Red Hat Secure Boot CA 5", 77]],
  );
  const bc = i.bootChain;
  assert.deepEqual(bc.applications.map((a) => [a.record, a.role, a.path]), [[23, "shim", "\\EFI\\redhat\\shimx64.efi"], [26, "grub", "\\EFI\\redhat\\grubx64.efi"], [77, "kernel", undefined]]);
  assert.deepEqual(bc.bootloaders.map((b) => b.role), ["shim", "grub"]);
  assert.deepEqual(bc.kernels.map((k) => [k.pcr, k.path]), [[4, undefined], [9, "(hd0,gpt2)/boot/vmlinuz-4.18.0-240.22.1.el8_3.x86_64"]]);
  assert.deepEqual(bc.initrds.map((k) => k.path), ["(hd0,gpt2)/boot/initramfs-4.18.0-240.22.1.el8_3.x86_64.img"]);
  assert.equal(bc.cmdline?.source, "grub");
  assert.equal(bc.cmdline?.text, "root=UUID=f3948fb4-cce7-4193-940a-c50052e93bf3 ro net.ifnames=0 biosdevname=0 scsi_mod.use_blk_mq=Y crashkernel=auto console=ttyS0,38400n8");
  assert.equal(bc.kernels[0].digests.sha256.length, 64);
  assert.equal(i.windows, undefined);
  assert.deepEqual(i.warnings, []);
});

test("laptop: Secure Boot off, GRUB straight from firmware, option ROM driver", () => {
  const i = interpretEvents(verifyEventLog(fixture("laptop-startup-locality3.bin"), quotedOf("laptop-startup-locality3.bin")).events);
  assert.equal(i.secureBoot.enabled, false);
  assert.deepEqual(i.secureBoot.authorities, []);
  assert.deepEqual(i.bootChain.applications.map((a) => [a.role, a.path]), [["grub", "\\EFI\\DEBIAN\\GRUBX64.EFI"]]);
  assert.deepEqual(i.bootChain.drivers.map((d) => [d.pcr, d.role]), [[2, "driver"]]);
});

test("Windows: boot manager, and SIPA facts from PCRs 12-14", () => {
  const i = interpretEvents(selfVerified(fixture("windows-option-rom-sha1.bin")).events);
  assert.equal(i.secureBoot.enabled, true);
  assert.deepEqual(i.bootChain.bootloaders.map((b) => [b.role, b.path]), [["windows-boot-manager", "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"]]);
  const w = i.windows!;
  assert.equal(w.bootCount, "0");
  assert.equal(w.codeIntegrity, true);
  assert.equal(w.testSigning, false);
  assert.equal(w.kernelDebug, false);
  assert.equal(w.safeMode, false);
  assert.equal(w.winPE, false);
  assert.equal(w.systemRoot, "\\WINDOWS");
  assert.deepEqual(w.bitlocker[0], { flags: 4, methods: ["tpm"] });
  assert.deepEqual(w.elam.map((e) => e.keyName), ["Windows Defender"]);
  const winload = w.loadedModules.find((m) => m.path === "\\WINDOWS\\system32\\winload.efi")!;
  assert.equal(winload.imageValidated, true);
  assert.equal(winload.issuer, "Microsoft Windows Production PCA 2011");
  assert.ok(w.loadedModules.length > 100);
});

test("Windows facts need PCRs 12-14 verified: a quote of 0-7 yields none", () => {
  const i = interpretEvents(verifyEventLog(fixture("windows-option-rom-sha1.bin"), quotedOf("windows-option-rom-sha1.bin")).events);
  assert.equal(i.windows, undefined);
});

test("event data altered under an intact digest: the fact is not used and a warning names the event", () => {
  const bytes = fixture("rhel8-gce-uefi.bin");
  const log = parseEventLog(bytes);
  const recs = split(bytes, log.events.map((e) => e.offset)).map((r) => Buffer.from(r));
  const sbRec = recs[3];
  assert.equal(sbRec[sbRec.length - 1], 1);
  sbRec[sbRec.length - 1] = 0; // SecureBoot=0 in the data; the digests still say 1
  const v = verifyEventLog(Buffer.concat(recs), quotedOf("rhel8-gce-uefi.bin"));
  const i = interpretEvents(v.events);
  assert.equal(i.secureBoot.enabled, undefined);
  assert.deepEqual(i.warnings.map((w) => w.record), [3]);
});
