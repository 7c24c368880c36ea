/**
 * HGS policy files as administrators handle them: code-integrity policies from the policy file
 * (signed with openssl as an independent client) found in a Windows SI policy event, and
 * reference-log validation of `policy baseline create`.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { codeIntegrityPolicy, evaluateCodeIntegrity } from "../../src/policy/code-integrity.js";
import { verifyLogAgainstQuotes } from "../../src/verify/attestation.js";
import { cli } from "../helpers/cli.js";
import { requireTool } from "../helpers/swtpm.js";
import { ALG, agileRecord, specId03 } from "../verify/eventlog/build.js";

const EVENTLOGS = join(import.meta.dirname, "../fixtures/eventlogs");
const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-cli-hgs-policy-"));
const f = (n: string) => join(tmp, n);
const db = f("ci.db");

/** A SIPA item (wbcl.h): u32 id, u32 size, data. */
const sipa = (id: number, data: Buffer) => Buffer.concat([Buffer.from(new Uint32Array([id, data.length]).buffer), data]);

/** SIPAEVENT_SI_POLICY_PAYLOAD (wbcl.h): u64 version, u16 name length, u16 HashAlgID, u32 digest length, UTF-16 name with NUL, digest. */
function siPolicyPayload(name: string, digest: Buffer): Buffer {
  const n = Buffer.from(`${name}\0`, "utf16le");
  const head = Buffer.alloc(16);
  head.writeBigUInt64LE(0x000a000000000001n, 0);
  head.writeUInt16LE(n.length, 8);
  head.writeUInt16LE(ALG.sha256, 10);
  head.writeUInt32LE(digest.length, 12);
  return Buffer.concat([head, n, digest]);
}

/** A crypto-agile sha256 log with one EV_EVENT_TAG (SIPA) event in PCR 12. */
const windowsLog = (items: Buffer[]) => Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(12, 6, Buffer.concat(items), [ALG.sha256])]);

after(() => rmSync(tmp, { recursive: true, force: true }));

test("ci add --policy: the SHA-256 of the deployed policy file (a .p7b signed by openssl, a .bin), found in a Windows SI policy event; --digest stays", async () => {
  requireTool("openssl");
  const bin = Buffer.concat([Buffer.from([7, 0, 0, 0]), createHash("sha512").update("a binary SI policy").digest()]);
  writeFileSync(f("policy.bin"), bin);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("signer.key"), "-out", f("signer.pem"), "-subj", "/CN=policy signer", "-days", "2"], { stdio: "ignore" });
  execFileSync("openssl", ["cms", "-sign", "-binary", "-nodetach", "-in", f("policy.bin"), "-signer", f("signer.pem"), "-inkey", f("signer.key"), "-outform", "DER", "-out", f("SiPolicy.p7b")], { stdio: "ignore" });
  const p7b = readFileSync(f("SiPolicy.p7b"));
  writeFileSync(f("policy.xml"), '<?xml version="1.0"?>\n<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>\n');
  writeFileSync(f("fake.p7b"), bin);

  const signed = await cli(["ci", "add", "--name", "corp-ci", "--policy", f("SiPolicy.p7b"), "--db", db, "--json"]);
  assert.equal(signed.code, 0, signed.stderr);
  const stored = signed.json();
  assert.equal(stored.document.digest, createHash("sha256").update(p7b).digest("hex"));
  const unsigned = await cli(["ci", "add", "--name", "lab-ci", "--policy", f("policy.bin"), "--policy-version", "v1", "--db", db, "--json"]);
  assert.equal(unsigned.code, 0, unsigned.stderr);
  assert.equal(unsigned.json().document.digest, createHash("sha256").update(bin).digest("hex"));
  const byDigest = await cli(["ci", "add", "--name", "by-digest", "--digest", "AB".repeat(32), "--db", db, "--json"]);
  assert.equal(byDigest.json().document.digest, "ab".repeat(32));

  const show = await cli(["policy", "show", stored.id, "--db", db]);
  assert.match(JSON.parse(show.stdout).measuredAs, /^SIPAEVENT_SI_POLICY \(0x0005000F\) in an EV_EVENT_TAG \(SIPA\) event: .* in PCR 12, 13, 14$/);

  const [xml, fake, both, neither] = await Promise.all([
    cli(["ci", "add", "--name", "x", "--policy", f("policy.xml"), "--db", db]),
    cli(["ci", "add", "--name", "x", "--policy", f("fake.p7b"), "--db", db]),
    cli(["ci", "add", "--name", "x", "--policy", f("policy.bin"), "--digest", "ab".repeat(32), "--db", db]),
    cli(["ci", "add", "--name", "x", "--db", db]),
  ]);
  assert.equal(xml.code, 2);
  assert.match(xml.stderr, /XML source of a policy; .*ConvertFrom-CIPolicy/);
  assert.equal(fake.code, 2);
  assert.match(fake.stderr, /not a signed policy/);
  assert.equal(both.code, 2);
  assert.equal(neither.code, 2);

  // the digest is what a Windows log carries in its SI policy event, and the CI policy finds it there
  const items = [sipa(0x0005000f, siPolicyPayload("corp-ci", createHash("sha256").update(p7b).digest()))];
  // the PCR 12 a TPM would quote after that one event: SHA-256(zeros ‖ SHA-256(event data))
  const pcr12 = createHash("sha256").update(Buffer.concat([Buffer.alloc(32), createHash("sha256").update(Buffer.concat(items)).digest()])).digest();
  const { log } = verifyLogAgainstQuotes(windowsLog(items), { sha256: { 12: pcr12 } }, [{ bank: "sha256", pcrs: [12] }]);
  assert.equal(evaluateCodeIntegrity(codeIntegrityPolicy("corp-ci", stored.document.digest), log).pass, true);
  assert.equal(evaluateCodeIntegrity(codeIntegrityPolicy("lab-ci", unsigned.json().document.digest), log).pass, false);
});

test("policy baseline create refuses reference logs with Secure Boot off, debugging or test signing unless --skip-validation", async () => {
  const laptop = join(EVENTLOGS, "laptop-startup-locality3.bin");
  const off = await cli(["policy", "baseline", "create", "--name", "kiosk", "--from", laptop]);
  assert.equal(off.code, 1);
  assert.equal(off.stdout, "");
  assert.match(off.stderr, /^warning: .*laptop-startup-locality3\.bin: Secure Boot is off$/m);
  assert.match(off.stderr, /^error ERR_BASELINE_UNSAFE: refusing to learn a baseline .* --skip-validation to accept it anyway$/m);
  const skipped = await cli(["policy", "baseline", "create", "--name", "kiosk", "--from", laptop, "--skip-validation", "--out", f("kiosk.json")]);
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.match(skipped.stderr, /^warning: .*Secure Boot is off$/m);
  assert.equal(JSON.parse(readFileSync(f("kiosk.json"), "utf8")).name, "kiosk");

  // a Windows log measuring test signing and boot debugging (SIPA OS/pre-OS parameters, one byte each)
  writeFileSync(f("debug.log"), windowsLog([sipa(0x00050003, Buffer.from([1])), sipa(0x00040001, Buffer.from([1]))]));
  const debug = await cli(["policy", "baseline", "create", "--name", "w", "--from", f("debug.log"), "--pcrs", "12"]);
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /^warning: .*debug\.log: boot debugging is on$/m);
  assert.match(debug.stderr, /^warning: .*debug\.log: test signing is on$/m);
  writeFileSync(f("clean.log"), windowsLog([sipa(0x00050003, Buffer.from([0])), sipa(0x00040001, Buffer.from([0]))]));
  const clean = await cli(["policy", "baseline", "create", "--name", "w", "--from", f("clean.log"), "--pcrs", "12"]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.equal(clean.stderr, "");
  const rhel = await cli(["policy", "baseline", "create", "--name", "gce", "--from", join(EVENTLOGS, "rhel8-gce-uefi.bin")]);
  assert.equal(rhel.code, 0, rhel.stderr);
});
