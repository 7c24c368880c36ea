/**
 * HGS operator commands as administrators run them: registering a TPM without a trusted EK
 * certificate as policy version v1 (its EK allow-listed in the same step), moving a host to another
 * hardware class, removal that asks on a terminal, `audit list`, code-integrity policies from the
 * policy file (signed with openssl as an independent client), and reference-log validation of
 * `policy baseline create`. The TPM is a swtpm identified by `tpmtrust agent identify`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";
import { codeIntegrityPolicy, evaluateCodeIntegrity } from "../../src/policy/code-integrity.js";
import { parseEventLog, selfVerifyEventLog } from "../../src/verify/eventlog/index.js";
import { cli } from "../helpers/cli.js";
import { requireTool, startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { ALG, agileRecord, specId03 } from "../verify/eventlog/build.js";

const BIN = join(import.meta.dirname, "../../bin/tpmtrust.js");
const EVENTLOGS = join(import.meta.dirname, "../fixtures/eventlogs");
const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-cli-hgs-"));
const f = (n: string) => join(tmp, n);
const db = f("hgs.db");
let tpm: Swtpm;

/** Runs the CLI on a pseudo-terminal (util-linux script), typing `input`. */
function onTty(args: string[], input: string): { status: number | null; out: string } {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", input });
  return { status: r.status, out: r.stdout };
}

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

before(async () => {
  tpm = await startSwtpm();
});
after(async () => {
  await tpm?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test("a TPM without an EK certificate: v2 says how to use v1; v1 allow-lists its EK in the same step, audited; audit list filters", async () => {
  const id = await cli(["agent", "identify", "--tpm", `swtpm:host=127.0.0.1,port=${tpm.port}`]);
  assert.equal(id.code, 0, id.stderr);
  writeFileSync(f("host.json"), id.stdout);

  const v2 = await cli(["hosts", "add", f("host.json"), "--name", "lab-01", "--class", "lab", "--db", db]);
  assert.equal(v2.code, 1);
  assert.match(v2.stderr, /^error ERR_EK_CERT_REQUIRED: .*register it as policy version v1 \(tpmtrust hosts add FILE --name lab-01 --class lab --policy-version v1\), which allow-lists its EK/m);

  const v1 = await cli(["hosts", "add", f("host.json"), "--name", "lab-01", "--class", "lab", "--policy-version", "v1", "--db", db, "--json"]);
  assert.equal(v1.code, 0, v1.stderr);
  const host = v1.json();
  assert.deepEqual([host.policyVersion, host.trustMethod, host.ekTrust.eks.every((e: { allowlisted?: boolean }) => e.allowlisted)], ["v1", "ek-key", true]);
  const hashes = host.ekTrust.eks.map((e: { ekHash: string }) => e.ekHash).sort();

  const confirmed = await cli(["confirm", "--ek-hash", hashes[0], "--db", db]);
  assert.equal(confirmed.code, 0, confirmed.stdout);

  const added = await cli(["audit", "list", "--action", "trust.allowlist.add", "--db", db, "--json"]);
  assert.equal(added.code, 0, added.stderr);
  const entries = added.json();
  assert.deepEqual(entries.map((e: { subject: string }) => e.subject).sort(), hashes);
  assert.ok(entries.every((e: { actor: string; details: { via: string; host: string; policyVersion: string } }) => e.actor === "cli" && e.details.via === "host.add" && e.details.host === "lab-01" && e.details.policyVersion === "v1"));

  // --outcome failure: the refused v2 registration; --action with a prefix; text lines; --since
  const [failures, hostActions, text, future, recent, badSince] = await Promise.all([
    cli(["audit", "list", "--outcome", "failure", "--db", db, "--json"]),
    cli(["audit", "list", "--action", "host.*", "--db", db, "--json"]),
    cli(["audit", "list", "--outcome", "failure", "--db", db]),
    cli(["audit", "list", "--since", "2099-01-01T00:00:00Z", "--db", db, "--json"]),
    cli(["audit", "list", "--since", "1h", "--db", db, "--json"]),
    cli(["audit", "list", "--since", "yesterday", "--db", db]),
  ]);
  assert.deepEqual(failures.json().map((e: { action: string; details: { code: string } }) => [e.action, e.details.code]), [["host.add", "ERR_EK_CERT_REQUIRED"]]);
  assert.deepEqual(hostActions.json().map((e: { action: string; outcome: string }) => [e.action, e.outcome]), [["host.add", "success"], ["host.add", "failure"]]);
  assert.match(text.stdout, /^\d+\t\d{4}-\d\d-\d\dT[^\t]+\tcli\thost\.add\tlab-01\tfailure\tERR_EK_CERT_REQUIRED\n$/);
  assert.deepEqual(future.json(), []);
  assert.equal(recent.json().length, entries.length + 3); // + confirm + two host.add
  assert.equal(badSince.code, 2);
  assert.match(badSince.stderr, /--since yesterday: expected an ISO-8601 time/);
});

test("hosts update --class keeps the host's EKs and AKs; hosts remove asks on a terminal", async () => {
  const s = await openStore(db);
  try {
    const h = await s.hosts.get("lab-01");
    assert.ok(h, "registered by the test before");
    await s.aks.bind({ hostName: "lab-01", name: Buffer.concat([Buffer.from([0, 0x0b]), createHash("sha256").update("ak").digest()]), public: Buffer.from("ak public") });
  } finally {
    await s.close();
  }
  const moved = await cli(["hosts", "update", "lab-01", "--class", "lab-gen2", "--db", db]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.equal(moved.stdout, "lab-01 is now in hardware class lab-gen2 (1 AK still bound)\n");
  const shown = (await cli(["hosts", "show", "lab-01", "--db", db, "--json"])).json();
  assert.deepEqual([shown.hardwareClass, shown.aks.length, shown.eks.length, shown.policyVersion], ["lab-gen2", 1, 2, "v1"]);
  const audited = (await cli(["audit", "list", "--action", "host.update", "--db", db, "--json"])).json();
  assert.deepEqual(audited.map((e: { details: unknown }) => e.details), [{ hardwareClass: { from: "lab", to: "lab-gen2" } }]);
  const [unknown, badClass] = await Promise.all([cli(["hosts", "update", "nope", "--class", "x", "--db", db]), cli(["hosts", "update", "lab-01", "--class", "bad\nclass", "--db", db])]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^error ERR_NOT_FOUND: /);
  assert.equal(badClass.code, 2);

  const no = onTty(["hosts", "remove", "lab-01", "--db", db], "n\n");
  assert.match(no.out, /remove host lab-01 \(lab-gen2\) with its 2 EK\(s\), 1 AK\(s\) and attestation history\? \[y\/N\]/);
  assert.match(no.out, /cancelled: nothing was removed/);
  assert.equal(no.status, 1);
  assert.equal((await cli(["hosts", "show", "lab-01", "--db", db])).code, 0);
  const yes = onTty(["hosts", "remove", "lab-01", "--db", db], "y\n");
  assert.equal(yes.status, 0, yes.out);
  assert.match(yes.out, /removed lab-01/);
  assert.equal((await cli(["hosts", "show", "lab-01", "--db", db])).code, 1);
});

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
  const log = selfVerifyEventLog(parseEventLog(windowsLog([sipa(0x0005000f, siPolicyPayload("corp-ci", createHash("sha256").update(p7b).digest()))])));
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
