/**
 * HGS host administration as operators run it: registering a TPM without a trusted EK certificate
 * as policy version v1 (its EK allow-listed in the same step), `audit list`, moving a host to another
 * hardware class, removal that asks on a terminal. The TPM is a swtpm identified by `tpmtrust agent identify`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

const BIN = join(import.meta.dirname, "../../bin/tpmtrust.js");
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
    await s.aks.bind({ at: Date.now(), hostName: "lab-01", name: Buffer.concat([Buffer.from([0, 0x0b]), createHash("sha256").update("ak").digest()]), public: Buffer.from("ak public") });
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

